"""`shoal.AsyncClient`: the SDK for asyncio applications, on grpc.aio.

Every method is `Client`'s, awaited: the same arguments, the same results and
the same `shoal.errors` exceptions. Requests and replies come from
`shoal.sdk.calls`, as for `Client`; this module only sends them on an asyncio
channel. `tests/unit/test_sdk_clients.py` holds the two method sets equal.
"""

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

import grpc
import numpy as np
import numpy.typing as npt

from shoal import moves as partition_moves
from shoal.runtime.status import from_rpc_error
from shoal.sdk import calls
from shoal.sdk.calls import DEFAULT_BATCH_SIZE, DEFAULT_IN_FLIGHT, Call
from shoal.sdk.channel import (
    DEFAULT_ADDRESS,
    DEFAULT_TIMEOUT,
    PathLike,
    call_metadata,
    client_tls,
    open_aio_channel,
)
from shoal.sdk.columnar import Documents, SearchBatchResult, SearchResult
from shoal.sdk.joining import AsyncSearchJoiner
from shoal.sdk.requests import (
    Consistency,
    Field,
    FusionName,
    MetricName,
    SearchModeName,
    search_fields,
)
from shoal.sdk.results import Collection, Document, DocumentLike, WriteResult
from shoal.sdk.where import Where
from shoal.topology import Topology
from shoal.v1 import shoal_pb2, shoal_pb2_grpc
from shoal.vectors import VectorLike

R = TypeVar("R")


class AsyncClient:
    """A connection to a Shoal coordinator for asyncio code: `Client`'s methods,
    awaited (`scroll` and `scroll_pages` are async iterators). Use it from one
    event loop; close it with `await client.close()` or `async with`.

    `timeout` is the deadline in seconds each call gets.
    """

    def __init__(
        self,
        address: str = DEFAULT_ADDRESS,
        timeout: float = DEFAULT_TIMEOUT,
        *,
        api_key: str | None = None,
        ca_file: PathLike | None = None,
        cert_file: PathLike | None = None,
        key_file: PathLike | None = None,
        server_name: str | None = None,
        tls: bool | None = None,
        join_searches: bool = True,
    ) -> None:
        """As `Client`: TLS and the API key from the arguments, else the environment;
        concurrent searches joined unless `join_searches=False`."""
        self.address = address
        self.timeout = timeout
        self._metadata = call_metadata(api_key)
        self.tls = client_tls(ca_file, cert_file, key_file, server_name, tls)
        self._channel = open_aio_channel(address, self.tls)
        self._stub = shoal_pb2_grpc.ShoalServiceStub(self._channel)
        self._searches = AsyncSearchJoiner(self._send, join_searches)

    async def close(self) -> None:
        await self._channel.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def _send(self, method: str, request: Any, seconds: float) -> Any:
        try:
            return await getattr(self._stub, method)(
                request, timeout=seconds, metadata=self._metadata
            )
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    async def _call(self, call: Call[R]) -> R:
        return call.decode(await self._send(call.method, call.request, self.timeout))

    async def _pipelined(self, batch: Sequence[Call[R]], in_flight: int) -> list[R]:
        """As `Client._pipelined`: answers in order, `in_flight` calls outstanding, the
        first failing call (in order) raises and the rest are cancelled."""
        if in_flight == 1 or len(batch) == 1:  # no task per call
            return [await self._call(call) for call in batch]
        replies: list[R] = []
        pending: deque[asyncio.Task[R]] = deque()
        try:
            for call in batch:
                if len(pending) >= in_flight:
                    replies.append(await pending.popleft())
                pending.append(asyncio.ensure_future(self._call(call)))
            while pending:
                replies.append(await pending.popleft())
        finally:
            for task in pending:
                task.cancel()
        return replies

    # Collections

    async def create_collection(
        self,
        name: str,
        dimension: int = 0,
        metric: MetricName = "cosine",
        embedding_model: str = "",
        hnsw_m: int = 0,
        hnsw_ef_construction: int = 0,
        hnsw_ef: int = 0,
        partitions: int = 0,
        keyword: bool | Mapping[str, Any] | None = None,
        chunking: bool | Mapping[str, int] | None = None,
    ) -> Collection:
        """As `Client.create_collection`."""
        call = calls.create_collection(
            name, dimension, metric, embedding_model, hnsw_m, hnsw_ef_construction,
            hnsw_ef, partitions, keyword, chunking,
        )  # fmt: skip
        return await self._call(call)

    async def get_collection(self, name: str) -> Collection:
        return await self._call(calls.get_collection(name))

    async def list_collections(self) -> list[Collection]:
        return await self._call(calls.list_collections())

    async def delete_collection(self, name: str) -> None:
        await self._call(calls.delete_collection(name))

    # Documents

    async def upsert(
        self,
        collection: str,
        documents: Iterable[DocumentLike],
        consistency: Consistency = "quorum",
    ) -> WriteResult:
        """As `Client.upsert`."""
        return await self._call(calls.upsert(collection, documents, consistency))

    async def get(
        self,
        collection: str,
        ids: Sequence[str],
        include: Iterable[Field] = ("metadata", "text", "vector"),
        consistency: Consistency = "one",
    ) -> Documents:
        """As `Client.get`."""
        return await self._call(calls.get(collection, ids, include, consistency))

    async def delete(
        self,
        collection: str,
        ids: Sequence[str] = (),
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        consistency: Consistency = "quorum",
        delete_all: bool = False,
    ) -> WriteResult:
        """As `Client.delete`."""
        return await self._call(
            calls.delete(collection, ids, where, where_document, consistency, delete_all)
        )

    async def update(
        self,
        collection: str,
        ids: Sequence[str] = (),
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        set_metadata: Mapping[str, Any] | None = None,
        remove_metadata: Sequence[str] = (),
        text: str | None = None,
        consistency: Consistency = "quorum",
        update_all: bool = False,
    ) -> WriteResult:
        """As `Client.update`."""
        call = calls.update(
            collection, ids, where, where_document, set_metadata, remove_metadata,
            text, consistency, update_all,
        )  # fmt: skip
        return await self._call(call)

    async def count(
        self, collection: str, where: Where | None = None, where_document: Where | None = None
    ) -> int:
        """As `Client.count`."""
        return await self._call(calls.count(collection, where, where_document))

    async def scroll(
        self,
        collection: str,
        where: Where | None = None,
        *,
        page_size: int = 100,
        include: Iterable[Field] = ("metadata",),
        where_document: Where | None = None,
    ) -> AsyncIterator[Document]:
        """As `Client.scroll`, an async iterator (`async for document in ...`)."""
        async for page in self.scroll_pages(
            collection, where, page_size=page_size, include=include, where_document=where_document
        ):
            for document in page:
                yield document

    async def scroll_pages(
        self,
        collection: str,
        where: Where | None = None,
        *,
        page_size: int = 100,
        include: Iterable[Field] = ("metadata",),
        where_document: Where | None = None,
    ) -> AsyncIterator[Documents]:
        """As `Client.scroll_pages`, an async iterator."""
        cursor = ""
        while True:
            page = await self._call(
                calls.scroll_page(collection, where, page_size, include, where_document, cursor)
            )
            yield page.documents
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # Search

    async def search(
        self,
        collection: str,
        vector: VectorLike | None = None,
        *,
        text: str | None = None,
        k: int = 10,
        ef: int = 0,
        include: Iterable[Field] = ("metadata",),
        where: Where | None = None,
        score_threshold: float | None = None,
        allow_partial: bool = False,
        where_document: Where | None = None,
        mode: SearchModeName = "vector",
        fusion: FusionName = "rrf",
        alpha: float | None = None,
        rrf_k: int = 0,
        candidates: int = 0,
        explain: bool = False,
        like: str | None = None,
        group_by: str = "",
        group_size: int = 1,
    ) -> SearchResult:
        """As `Client.search`."""
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        call = calls.search(collection, vector, text, mode, fields, like, group_by, group_size)
        return await self._searches.search(call, self.timeout)

    async def search_batch(
        self,
        collection: str,
        vectors: Sequence[VectorLike] | npt.NDArray[np.floating] | None = None,
        *,
        texts: Sequence[str] | None = None,
        k: int = 10,
        ef: int = 0,
        include: Iterable[Field] = ("metadata",),
        where: Where | None = None,
        score_threshold: float | None = None,
        allow_partial: bool = False,
        where_document: Where | None = None,
        mode: SearchModeName = "vector",
        fusion: FusionName = "rrf",
        alpha: float | None = None,
        rrf_k: int = 0,
        candidates: int = 0,
        explain: bool = False,
        batch_size: int = DEFAULT_BATCH_SIZE,
        in_flight: int = DEFAULT_IN_FLIGHT,
        group_by: str = "",
        group_size: int = 1,
    ) -> SearchBatchResult:
        """As `Client.search_batch`."""
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        batch = calls.search_batches(
            collection, vectors, texts, mode, fields, batch_size, in_flight, group_by, group_size
        )
        return SearchBatchResult(await self._pipelined(batch, in_flight))

    async def verify_replicas(
        self, collection: str, repair: bool = False
    ) -> shoal_pb2.VerifyReplicasResponse:
        """As `Client.verify_replicas`."""
        return await self._call(calls.verify_replicas(collection, repair))

    async def cluster_info(self) -> shoal_pb2.GetClusterInfoResponse:
        """As `Client.cluster_info`."""
        return await self._call(calls.cluster_info())

    # Topology

    async def get_topology(self) -> Topology:
        """As `Client.get_topology`."""
        return await self._call(calls.get_topology())

    async def update_topology(self, topology: Topology, expected_version: int) -> Topology:
        """As `Client.update_topology`."""
        return await self._call(calls.update_topology(topology, expected_version))

    async def move_partition(self, partition: int, group: int) -> Topology:
        """As `Client.move_partition`."""
        current = await self.get_topology()
        return await self.update_topology(calls.moved(current, partition, group), current.version)

    # Growing and shrinking: partition moves that copy the data

    async def partition_count(self) -> int:
        """The most partitions any collection has: the partitions a plan spreads."""
        return max((c.partitions for c in await self.list_collections()), default=0)

    async def add_group(self, replicas: Sequence[str]) -> Topology:
        """Add an empty shard group of `replicas` (HOST:PORT, started already); every
        partition stays where it is until a rebalance moves some onto it."""
        current = await self.get_topology()
        added = partition_moves.with_group_added(
            current, list(replicas), await self.partition_count()
        )
        return await self.update_topology(added, current.version)

    async def remove_group(self, group: int) -> Topology:
        """Take a drained shard group (it owns no partition) out of the topology;
        the groups after it move down one place."""
        current = await self.get_topology()
        removed = partition_moves.with_group_removed(current, group, await self.partition_count())
        return await self.update_topology(removed, current.version)

    async def add_replica(self, group: int, address: str) -> Topology:
        """One more replica for `group`; start its process (empty data dir) after:
        it catches up from its peers before it serves reads."""
        current = await self.get_topology()
        changed = partition_moves.with_replica_added(current, group, address)
        return await self.update_topology(changed, current.version)

    async def replace_replica(self, old: str, new: str) -> Topology:
        """`new` in `old`'s place; start `new` (empty data dir) after, stop `old`."""
        current = await self.get_topology()
        changed = partition_moves.with_replica_replaced(current, old, new)
        return await self.update_topology(changed, current.version)

    async def remove_replica(self, address: str) -> Topology:
        current = await self.get_topology()
        changed = partition_moves.with_replica_removed(current, address)
        return await self.update_topology(changed, current.version)

    async def plan_rebalance(self, drain: Sequence[int] = ()) -> list[partition_moves.PlannedMove]:
        """The moves that even out the partitions over the groups (emptying `drain`)."""
        topology = await self.get_topology()
        return partition_moves.plan_rebalance(topology, await self.partition_count(), drain)

    async def start_moves(
        self, planned: Sequence[partition_moves.PlannedMove]
    ) -> list[shoal_pb2.PartitionMoveStatus]:
        """Start partition moves (run one after another by a coordinator); their status."""
        return await self._call(calls.start_moves(planned))

    async def rebalance(self, drain: Sequence[int] = ()) -> list[shoal_pb2.PartitionMoveStatus]:
        """Plan and start the moves that even out the groups; [] when even already."""
        planned = await self.plan_rebalance(drain)
        return await self.start_moves(planned) if planned else []

    async def moves(self, forget_finished: bool = False) -> list[shoal_pb2.PartitionMoveStatus]:
        """Every partition move the cluster knows, with its phase and progress."""
        return await self._call(calls.list_moves(forget_finished))

    async def cancel_moves(self) -> list[shoal_pb2.PartitionMoveStatus]:
        """Stop the unfinished moves: those before their switch roll back, the others
        finish."""
        return await self._call(calls.cancel_moves())
