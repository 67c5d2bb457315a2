"""The Python SDK: `shoal.Client` speaks the public gRPC API with plain values.

Metadata goes in and comes out as Python values, vectors as lists or numpy
arrays, and failures are raised as `shoal.errors` exceptions (NotFound,
InvalidArgument, Unavailable, ...) carrying the server's message. Search, get
and scroll results are columns (`shoal.sdk.columnar`): ids and scores as numpy
arrays, the rest decoded when first used.

Requests and replies are made in `shoal.sdk.calls`, shared with
`shoal.AsyncClient`; this module only sends them, blocking.
"""

from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
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
    open_channel,
)
from shoal.sdk.columnar import Documents, SearchBatchResult, SearchResult
from shoal.sdk.joining import SearchJoiner
from shoal.sdk.requests import (
    Consistency,
    Field,
    FusionName,
    MetricName,
    SearchModeName,
    search_fields,
)
from shoal.sdk.results import Collection, Document, DocumentLike, WriteResult
from shoal.sdk.snapshots import SnapshotMethods
from shoal.sdk.where import Where
from shoal.topology import Topology
from shoal.v1 import shoal_pb2, shoal_pb2_grpc
from shoal.vectors import VectorLike

__all__ = ["DEFAULT_ADDRESS", "Client"]

R = TypeVar("R")


class Client(SnapshotMethods):
    """A connection to a Shoal coordinator.

    `timeout` is the deadline in seconds each call gets; the services pass the
    time that remains on to every shard and to the embedder. `api_key` (else
    the environment's SHOAL_API_KEY) goes with every call, for clusters that
    require keys.

    Share one client among threads: their concurrent `search` calls with the
    same options go joined in SearchBatch calls (`shoal.sdk.joining`).
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
        """TLS: `ca_file` (the CA of the coordinator's certificate), `cert_file` and
        `key_file` (a client certificate), `server_name` (the certificate's name,
        if not the address's host), `tls=True` (TLS against the system's roots);
        each defaults to its environment variable (shoal.sdk.channel), and with
        none of them the connection is plaintext. `api_key` (else SHOAL_API_KEY)
        goes with every call, for clusters that require keys. `join_searches=False`
        sends every `search` as its own call (see the class's docstring)."""
        self.address = address
        self.timeout = timeout
        self._metadata = call_metadata(api_key)
        self.tls = client_tls(ca_file, cert_file, key_file, server_name, tls)
        self._channel = open_channel(address, self.tls)
        self._stub = shoal_pb2_grpc.ShoalServiceStub(self._channel)
        self._searches = SearchJoiner(self._send, join_searches)

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _send(self, method: str, request: Any, seconds: float) -> Any:
        try:
            return getattr(self._stub, method)(request, timeout=seconds, metadata=self._metadata)
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None

    def _call(self, call: Call[R]) -> R:
        return call.decode(self._send(call.method, call.request, self.timeout))

    def _pipelined(self, batch: Sequence[Call[R]], in_flight: int) -> list[R]:
        """Every call's answer in order, `in_flight` of them outstanding at a time; the
        first call (in order) that fails raises, and the ones still out are cancelled."""
        if in_flight == 1 or len(batch) == 1:
            # One call out at a time: blocking calls, each polled by this thread. A
            # future makes grpc start a thread to poll the channel whenever no other
            # call is out, so one call at a time meant a thread per call (a third
            # of the client's CPU for a SearchBatch of 100 queries).
            return [self._call(call) for call in batch]
        replies: list[R] = []
        pending: deque[tuple[Call[R], grpc.Future[Any]]] = deque()
        try:
            for call in batch:
                if len(pending) >= in_flight:
                    replies.append(self._finish(*pending.popleft()))
                method = getattr(self._stub, call.method)
                future = method.future(call.request, timeout=self.timeout, metadata=self._metadata)
                pending.append((call, future))
            while pending:
                replies.append(self._finish(*pending.popleft()))
        finally:
            for _, future in pending:
                future.cancel()
        return replies

    @staticmethod
    def _finish(call: Call[R], future: "grpc.Future[Any]") -> R:
        try:
            reply = future.result()
        except grpc.RpcError as error:
            raise from_rpc_error(error) from None
        return call.decode(reply)

    # Collections

    def create_collection(
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
        """Create a collection; zeros take the server's defaults.

        With `embedding_model` set, documents and queries may be given as text
        and `dimension` may be left 0 to take the model's.
        `keyword` sets up the keyword (BM25) index of the document texts: None
        or True for the defaults (English, stemming, stop words, k1 1.2, b 0.75),
        False for none, or a dict of `enabled`, `language`, `stemming`,
        `stop_words`, `k1`, `b`.
        `chunking` (needs `embedding_model`): True to split long texts into chunks
        of the model's input length (overlapping by an eighth), or a dict of
        `chunk_tokens` and `overlap_tokens` (in the model's tokens); search then
        returns documents scored by their best chunk.
        """
        call = calls.create_collection(
            name, dimension, metric, embedding_model, hnsw_m, hnsw_ef_construction,
            hnsw_ef, partitions, keyword, chunking,
        )  # fmt: skip
        return self._call(call)

    def get_collection(self, name: str) -> Collection:
        return self._call(calls.get_collection(name))

    def list_collections(self) -> list[Collection]:
        return self._call(calls.list_collections())

    def delete_collection(self, name: str) -> None:
        self._call(calls.delete_collection(name))

    # Documents

    def upsert(
        self,
        collection: str,
        documents: Iterable[DocumentLike],
        consistency: Consistency = "quorum",
    ) -> WriteResult:
        """Insert or replace documents (dicts with id, vector, text, metadata)."""
        return self._call(calls.upsert(collection, documents, consistency))

    def get(
        self,
        collection: str,
        ids: Sequence[str],
        include: Iterable[Field] = ("metadata", "text", "vector"),
        consistency: Consistency = "one",
    ) -> Documents:
        """The documents that exist among `ids`, in the order asked: a sequence of
        `Document`s, with `ids`, `metadatas`, `texts` and `vectors` as columns.

        At "quorum" or "all" the coordinator reads that many replicas of each
        shard group, answers with the newest version and repairs stale replicas.
        """
        return self._call(calls.get(collection, ids, include, consistency))

    def delete(
        self,
        collection: str,
        ids: Sequence[str] = (),
        *,
        where: Where | None = None,
        where_document: Where | None = None,
        consistency: Consistency = "quorum",
        delete_all: bool = False,
    ) -> WriteResult:
        """Delete documents by id, or every document matching a `where` (and/or
        `where_document`) filter; every document of the collection only with
        `delete_all=True` (the server refuses a match-all delete without it)."""
        return self._call(
            calls.delete(collection, ids, where, where_document, consistency, delete_all)
        )

    def update(
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
        """Partial update of existing documents by id, or of every document matching
        a `where` (and/or `where_document`) filter: set the keys of `set_metadata`,
        remove those in `remove_metadata`, keep the vector. A `text` (with ids only)
        replaces the text and, for a collection with a model, is embedded again.
        The result's count is how many documents existed and changed. Updating every
        document (no ids and no filter, or an empty one) needs `update_all=True`."""
        call = calls.update(
            collection, ids, where, where_document, set_metadata, remove_metadata,
            text, consistency, update_all,
        )  # fmt: skip
        return self._call(call)

    def count(
        self, collection: str, where: Where | None = None, where_document: Where | None = None
    ) -> int:
        """Live documents, or those matching `where` and `where_document`."""
        return self._call(calls.count(collection, where, where_document))

    def scroll(
        self,
        collection: str,
        where: Where | None = None,
        *,
        page_size: int = 100,
        include: Iterable[Field] = ("metadata",),
        where_document: Where | None = None,
    ) -> Iterator[Document]:
        """Every document (matching `where` and `where_document`) once, in id order,
        fetched a page at a time."""
        for page in self.scroll_pages(
            collection, where, page_size=page_size, include=include, where_document=where_document
        ):
            yield from page

    def scroll_pages(
        self,
        collection: str,
        where: Where | None = None,
        *,
        page_size: int = 100,
        include: Iterable[Field] = ("metadata",),
        where_document: Where | None = None,
    ) -> Iterator[Documents]:
        """As `scroll`, a page (columns: `ids`, `metadatas`, `texts`, `vectors`) at a
        time: for large listings, no object per document unless asked."""
        cursor = ""
        while True:
            page = self._call(
                calls.scroll_page(collection, where, page_size, include, where_document, cursor)
            )
            yield page.documents
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # Search

    def search(
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
        """The k best documents for a vector or a text, or `like` a stored document:
        `ids` and `scores` as numpy arrays, `hits` (a `Hit` each), `distances`,
        `metadatas`, `texts`, `vectors` decoded when first used.

        `mode`: "vector" (default) ranks by similarity to the vector, or to the
        text the server embeds; "keyword" ranks the document texts by BM25 with
        the text (scores use the whole cluster's statistics); "hybrid" fuses
        both rankings: `fusion` "rrf" (reciprocal rank, constant `rrf_k`,
        default 60) or "relative" (min-max normalized scores), weighted by
        `alpha` (0: keyword only, 1: vector only, default 0.5), from candidate
        lists `candidates` deep (default 2k + rrf_k). A hybrid text is embedded
        for the vector side unless `vector` is given too.
        `where` keeps only documents whose metadata match (Chroma-style:
        `{"section": "sound"}`, `{"size": {"$gte": 100}}`, `$and`, `$or`, ...),
        `where_document` those whose text matches (`{"$contains": "phrase"}`);
        `score_threshold` drops hits scoring below it (BM25 in keyword mode,
        the fused score in hybrid mode); `explain` sets each hit's `explanation`.
        `like`: more-like-this, the id of a stored document whose vector (for a
        chunked document the mean of its chunks') is the query; that document is
        left out of the hits. Unknown id: NotFound.
        `group_by`: group search, the hits grouped by this metadata key: `k`
        groups in the order of their best hit, each with at most `group_size`
        hits; hits come group after group, each with `hit.group` set.
        """
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        call = calls.search(collection, vector, text, mode, fields, like, group_by, group_size)
        return self._searches.search(call, self.timeout)

    def search_batch(
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
        """Many searches; result i answers query i (options as in `search`; hybrid
        takes texts, and vectors too when the server cannot embed).

        The result holds `ids` and `scores` as (queries, k) numpy matrices (and
        `counts` per query), and reads as a list of `SearchResult`s. The queries
        go `batch_size` per SearchBatch call with `in_flight` calls outstanding;
        a failing call raises its error, as one call would. `group_by` groups
        each query's hits as in `search` (`counts[i]` then counts query i's hits
        over all its groups).
        """
        fields = search_fields(
            k, ef, include, where, where_document, score_threshold, allow_partial,
            mode, fusion, alpha, rrf_k, candidates, explain,
        )  # fmt: skip
        batch = calls.search_batches(
            collection, vectors, texts, mode, fields, batch_size, in_flight, group_by, group_size
        )
        return SearchBatchResult(self._pipelined(batch, in_flight))

    def verify_replicas(
        self, collection: str, repair: bool = False
    ) -> shoal_pb2.VerifyReplicasResponse:
        """Compare the replicas of every shard group by partition (and repair them)."""
        return self._call(calls.verify_replicas(collection, repair))

    def cluster_info(self) -> shoal_pb2.GetClusterInfoResponse:
        """Shard groups, replicas, their health and document counts."""
        return self._call(calls.cluster_info())

    # Topology

    def get_topology(self) -> Topology:
        """The partition -> shard group -> replica map the coordinator routes with."""
        return self._call(calls.get_topology())

    def update_topology(self, topology: Topology, expected_version: int) -> Topology:
        """Replace the topology (in etcd) with `topology`'s groups and partition map;
        the new one, at version `expected_version + 1`. FailedPrecondition when the
        current version is not `expected_version` (someone changed it first) or the
        cluster runs without etcd.

        Routing follows at once; documents already stored are not moved."""
        return self._call(calls.update_topology(topology, expected_version))

    def move_partition(self, partition: int, group: int) -> Topology:
        """Route `partition` (of every collection) to shard group `group` from now
        on: read the topology, change that one entry, store it (see update_topology)."""
        current = self.get_topology()
        return self.update_topology(calls.moved(current, partition, group), current.version)

    # Growing and shrinking: partition moves that copy the data

    def partition_count(self) -> int:
        """The most partitions any collection has: the partitions a plan spreads."""
        return max((c.partitions for c in self.list_collections()), default=0)

    def add_group(self, replicas: Sequence[str]) -> Topology:
        """Add an empty shard group of `replicas` (HOST:PORT, started already); every
        partition stays where it is until a rebalance moves some onto it."""
        current = self.get_topology()
        added = partition_moves.with_group_added(current, list(replicas), self.partition_count())
        return self.update_topology(added, current.version)

    def remove_group(self, group: int) -> Topology:
        """Take a drained shard group (it owns no partition) out of the topology;
        the groups after it move down one place."""
        current = self.get_topology()
        removed = partition_moves.with_group_removed(current, group, self.partition_count())
        return self.update_topology(removed, current.version)

    def add_replica(self, group: int, address: str) -> Topology:
        """One more replica for `group`; start its process (empty data dir) after:
        it catches up from its peers before it serves reads."""
        current = self.get_topology()
        changed = partition_moves.with_replica_added(current, group, address)
        return self.update_topology(changed, current.version)

    def replace_replica(self, old: str, new: str) -> Topology:
        """`new` in `old`'s place; start `new` (empty data dir) after, stop `old`."""
        current = self.get_topology()
        changed = partition_moves.with_replica_replaced(current, old, new)
        return self.update_topology(changed, current.version)

    def remove_replica(self, address: str) -> Topology:
        current = self.get_topology()
        changed = partition_moves.with_replica_removed(current, address)
        return self.update_topology(changed, current.version)

    def plan_rebalance(self, drain: Sequence[int] = ()) -> list[partition_moves.PlannedMove]:
        """The moves that even out the partitions over the groups (emptying `drain`)."""
        return partition_moves.plan_rebalance(self.get_topology(), self.partition_count(), drain)

    def start_moves(
        self, planned: Sequence[partition_moves.PlannedMove]
    ) -> list[shoal_pb2.PartitionMoveStatus]:
        """Start partition moves (run one after another by a coordinator); their status."""
        return self._call(calls.start_moves(planned))

    def rebalance(self, drain: Sequence[int] = ()) -> list[shoal_pb2.PartitionMoveStatus]:
        """Plan and start the moves that even out the groups; [] when even already."""
        planned = self.plan_rebalance(drain)
        return self.start_moves(planned) if planned else []

    def moves(self, forget_finished: bool = False) -> list[shoal_pb2.PartitionMoveStatus]:
        """Every partition move the cluster knows, with its phase and progress."""
        return self._call(calls.list_moves(forget_finished))

    def cancel_moves(self) -> list[shoal_pb2.PartitionMoveStatus]:
        """Stop the unfinished moves: those before their switch roll back, the others
        finish."""
        return self._call(calls.cancel_moves())
