"""Searches, gets and counts: fan out to the shard groups and merge.

Searches and counts ask every group, since any group may hold a match; a get
asks only the groups that own the requested ids. Each group is asked through
one replica, with failover (see `replicas`), except for a get at QUORUM or ALL:
that reads the records (with versions) of that many replicas, answers with the
newest and repairs the replicas that were behind (see `read_repair`).
"""

import asyncio
import heapq
import logging
from collections.abc import Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TypeVar, cast

import numpy as np

from coordinator.core import grouping, more_like_this
from coordinator.core.background import Background
from coordinator.core.catalog import CollectionCatalog
from coordinator.core.deadline import Deadline
from coordinator.core.embedding import Embedding
from coordinator.core.fanout import ShardCall, fan_out
from coordinator.core.fusion import explained
from coordinator.core.future_versions import without_future
from coordinator.core.keyword_reads import KeywordReads
from coordinator.core.merge import merge_batches
from coordinator.core.model import (
    CountResult,
    Coverage,
    FoundDocuments,
    MergedHits,
    QueryInput,
    ReadConsistency,
    ScrollResults,
    SearchMode,
    SearchOptions,
    SearchResults,
)
from coordinator.core.observer import (
    NO_OBSERVER,
    NO_REPLICATION_OBSERVER,
    ReadObserver,
    ReplicationObserver,
)
from coordinator.core.owned_hits import OwnedCall, Ownership, over_fetch, owned_targets
from coordinator.core.packed import PackedBatch
from coordinator.core.packed_merge import merge_packed
from coordinator.core.ports import (
    CollectionConfig,
    DocumentMessage,
    Include,
    OpaqueFilter,
    RankedHits,
    ScrollPage,
    ShardClient,
    Vector,
    WriteOp,
)
from coordinator.core.read_repair import choose, read_records
from coordinator.core.replicas import Replica, ReplicaGroup
from coordinator.core.routing import Routing, RoutingTable
from coordinator.core.scroll_cursor import check_page_size, decode_cursor, encode_cursor
from coordinator.core.validation import check_ids, check_query_matrix, check_search
from shoal import limits
from shoal.errors import DeadlineExceeded, Internal, InvalidArgument, NotFound, Unavailable
from shoal.version_horizon import VersionHorizon

log = logging.getLogger(__name__)

T = TypeVar("T")

_BY_ID = attrgetter("id")

#: How long a read repair's write may take (it runs after the read has answered).
REPAIR_TIMEOUT_S = 10.0


class Reader:
    def __init__(
        self,
        routing: Routing,
        catalog: CollectionCatalog,
        embedding: Embedding,
        observer: ReadObserver = NO_OBSERVER,
        background: Background | None = None,
        replication_observer: ReplicationObserver = NO_REPLICATION_OBSERVER,
        horizon: VersionHorizon | None = None,
    ) -> None:
        self._routing = routing
        self._horizon = horizon or VersionHorizon()
        self._catalog = catalog
        self._embedding = embedding
        self._observer = observer
        self._background = background if background is not None else Background()
        self._replication_observer = replication_observer
        self._keyword = KeywordReads(
            self._fan_out_owned,
            self._query_matrix,
            self.get,
            groups=lambda: len(self._routing.groups),
        )

    async def search(
        self,
        collection: str,
        queries: Sequence[QueryInput] | Vector,
        options: SearchOptions,
        deadline: Deadline,
    ) -> SearchResults:
        """The merged top-k of every group for each query, in query order.

        `queries` may be an (n, dimension) matrix when every query is a vector:
        the api layer builds it from the request's bytes in one piece.
        """
        limits.check_collection_name(collection)
        if options.group_by is not None:
            return await self._grouped(collection, queries, options, deadline)
        config = await self._catalog.config(collection, deadline)
        liked: list[str | None] = []
        wanted_k = options.k
        if not isinstance(queries, np.ndarray) and any(q.like_id is not None for q in queries):
            liked = more_like_this.liked_ids(queries)
            queries, options = await self._resolve_likes(collection, queries, options, deadline)
        k = options.k
        check_search(config, queries, k, options.ef, options.mode)
        if len(queries) == 0:
            return SearchResults([], Coverage(0, 0))
        if options.mode is not SearchMode.VECTOR:
            assert not isinstance(queries, np.ndarray)  # check_search refused a matrix
            return await self._keyword.search(config, queries, options, deadline)
        matrix = await self._query_matrix(config, queries, deadline)
        results, coverage = await self._vector_candidates(collection, matrix, options, deadline)
        if liked:
            results = more_like_this.exclude(results, liked, wanted_k)
        if options.explain:
            results = [MergedHits(list(explained(result.hits, False))) for result in results]
        return SearchResults(results, coverage)

    async def _grouped(
        self,
        collection: str,
        queries: Sequence[QueryInput] | Vector,
        options: SearchOptions,
        deadline: Deadline,
    ) -> SearchResults:
        """Group search: deeper searches with the metadata, grouped by the key (see
        `grouping`); deeper again while a query's k groups are not all there and
        full, and more candidates may exist."""
        group_by = options.group_by
        assert group_by is not None
        grouping.check_group_by(group_by, options.k)
        depth = grouping.first_depth(options.k, group_by.size)
        include = replace(options.include, metadata=True)
        while True:
            inner = replace(options, k=depth, include=include, group_by=None)
            found = await self.search(collection, queries, inner, deadline)
            results: list[RankedHits] = []
            deeper = False
            for result in found.results:
                grouped, complete = grouping.group(result.hits, group_by, options.k)
                results.append(grouped)
                deeper = deeper or (not complete and len(result.hits) >= depth)
            if not deeper or depth >= limits.MAX_K:
                return SearchResults(results, found.coverage)
            depth = min(limits.MAX_K, depth * 2)

    async def _resolve_likes(
        self,
        collection: str,
        queries: Sequence[QueryInput],
        options: SearchOptions,
        deadline: Deadline,
    ) -> tuple[list[QueryInput], SearchOptions]:
        """More-like-this queries as vector queries, searched one deeper (the liked
        document itself is dropped afterwards)."""
        if options.mode is not SearchMode.VECTOR:
            raise InvalidArgument(
                f"more-like-this searches by vector only, not in {options.mode.value} mode"
            )
        for position, query in enumerate(queries):
            if query.like_id is not None:
                more_like_this.check_like(query, f"query {position}")
        limits.check_k(options.k)

        async def get(
            ids: Sequence[str], include: Include, allow_partial: bool, deadline: Deadline
        ) -> FoundDocuments:
            return await self.get(collection, ids, include, allow_partial, deadline)

        resolved = await more_like_this.resolve(
            collection, queries, get, options.allow_partial, deadline
        )
        return resolved, replace(options, k=more_like_this.deeper(options.k))

    async def _vector_candidates(
        self, collection: str, matrix: Vector, options: SearchOptions, deadline: Deadline
    ) -> tuple[Sequence[RankedHits], Coverage]:
        """Each query's merged top k (vector search) over every group."""
        k = options.k
        count = len(matrix)

        def search(owned: Ownership | None) -> ShardCall[Sequence[RankedHits]]:
            depth = k if owned is None else over_fetch(k, owned.topology)

            async def search(client: ShardClient, timeout_s: float) -> Sequence[RankedHits]:
                results = await client.search(
                    collection,
                    matrix,
                    depth,
                    options.ef,
                    options.include,
                    timeout_s,
                    options.filter,
                    options.score_threshold,
                )
                if len(results) != count:
                    raise Internal(
                        f"shard {client.address} answered {len(results)} of {count} queries"
                    )
                return results if owned is None else owned.hits(results)

            return search

        per_group, coverage = await self._fan_out_owned(
            collection, "search", search, deadline, options.allow_partial
        )
        if not per_group:
            return [MergedHits([]) for _ in range(count)], coverage
        if all(isinstance(answers, PackedBatch) for answers in per_group):
            return merge_packed(cast(list[PackedBatch], per_group), k), coverage
        return merge_batches(per_group, k), coverage

    async def get(
        self,
        collection: str,
        ids: Sequence[str],
        include: Include,
        allow_partial: bool,
        deadline: Deadline,
        consistency: ReadConsistency = ReadConsistency.ONE,
    ) -> FoundDocuments:
        """The stored documents among `ids`, in request order; missing ids left out."""
        limits.check_collection_name(collection)
        check_ids(ids, "ids")
        config = await self._catalog.config(collection, deadline)
        table = self._routing.table
        by_group = table.topology.split_by_group(ids, config.partitions)
        if consistency is not ReadConsistency.ONE:
            return await self._get_consistent(
                config, ids, table, by_group, include, allow_partial, deadline, consistency
            )

        def get_ids(group_ids: list[str]) -> ShardCall[list[DocumentMessage]]:
            async def get(client: ShardClient, timeout_s: float) -> list[DocumentMessage]:
                return await client.get(collection, group_ids, include, timeout_s)

            return get

        targets = [
            (table.groups[group], get_ids([ids[position] for position in by_group[group]]))
            for group in sorted(by_group)
        ]
        answers, coverage = await self._fan_out_to(
            targets, collection, "get", deadline, allow_partial
        )
        found = {document.id: document for documents in answers for document in documents}
        return FoundDocuments([found[i] for i in ids if i in found], coverage)

    async def _get_consistent(
        self,
        config: CollectionConfig,
        ids: Sequence[str],
        table: RoutingTable,
        by_group: dict[int, list[int]],
        include: Include,
        allow_partial: bool,
        deadline: Deadline,
        consistency: ReadConsistency,
    ) -> FoundDocuments:
        """A get that reads `consistency` replicas of each group and repairs the stale ones."""
        collection = config.name
        groups = sorted(by_group)
        outcomes = await asyncio.gather(
            *(
                read_records(
                    table.groups[group],
                    collection,
                    list(dict.fromkeys(ids[position] for position in by_group[group])),
                    consistency,
                    deadline,
                    self._observer,
                )
                for group in groups
            ),
            return_exceptions=True,
        )
        newest: dict[str, WriteOp] = {}
        missing: list[str] = []
        for group, outcome in zip(groups, outcomes, strict=True):
            if isinstance(outcome, Unavailable | DeadlineExceeded):
                if isinstance(outcome, DeadlineExceeded) and deadline.expired:
                    raise outcome
                missing.append(str(outcome))
                continue
            if isinstance(outcome, NotFound):
                self._catalog.invalidate(collection)
            if isinstance(outcome, BaseException):
                raise outcome
            choice = choose({replica.address: ops for replica, ops in outcome})
            newest.update(choice.newest)
            self._repair(config, table.groups[group], outcome, choice.repairs)
        if missing and not allow_partial:
            raise Unavailable(
                f"{'; '.join(missing)}; allow partial results to get the answers of the groups"
                " that are up"
            )
        if missing:
            self._observer.record_partial_result("get")
        documents: list[DocumentMessage] = [
            newest[doc_id] for doc_id in ids if doc_id in newest and not newest[doc_id].deleted
        ]
        return FoundDocuments(documents, Coverage(len(groups), len(groups) - len(missing)))

    def _repair(
        self,
        config: CollectionConfig,
        group: ReplicaGroup,
        answers: Sequence[tuple[Replica, list[WriteOp]]],
        repairs: dict[str, list[WriteOp]],
    ) -> None:
        """Send the stale replicas the newest records, after the answer (in the background)."""
        clients = {replica.address: replica.client for replica, _ in answers}
        for address, stale in repairs.items():
            where = f"read repair of {config.name!r} on {address}"
            ops, skipped = without_future(self._horizon, stale, where)
            if skipped:
                self._replication_observer.record_repairs_skipped(
                    group.group, "read_repair", len(skipped)
                )
            if not ops:
                continue
            task = asyncio.create_task(self._repair_one(clients[address], config, group.group, ops))
            self._background.adopt(task, f"read repair of {len(ops)} records on {address}")

    async def _repair_one(
        self, client: ShardClient, config: CollectionConfig, group: int, ops: list[WriteOp]
    ) -> None:
        await client.write(config.name, ops, REPAIR_TIMEOUT_S, config.incarnation)
        self._replication_observer.record_repairs(group, "read_repair", len(ops))
        log.info("read repair: %d records to %s in %r", len(ops), client.address, config.name)

    async def count(
        self,
        collection: str,
        allow_partial: bool,
        deadline: Deadline,
        filter: OpaqueFilter | None = None,
    ) -> CountResult:
        limits.check_collection_name(collection)
        await self._catalog.config(collection, deadline)

        def count(owned: Ownership | None) -> ShardCall[int]:
            skipped = () if owned is None else owned.skipped

            async def count(client: ShardClient, timeout_s: float) -> int:
                return await client.count(collection, timeout_s, filter, skipped)

            return count

        counts, coverage = await self._fan_out_owned(
            collection, "count", count, deadline, allow_partial
        )
        return CountResult(sum(counts), coverage)

    async def scroll(
        self,
        collection: str,
        filter: OpaqueFilter | None,
        page_size: int,
        cursor: str,
        include: Include,
        allow_partial: bool,
        deadline: Deadline,
    ) -> ScrollResults:
        """One page of the documents matching `filter`, in id order.

        Every group is asked for a page after the cursor, and the pages are
        merged by id; documents left over from a group's page come again in
        the next page, since the cursor is the last id returned.
        """
        limits.check_collection_name(collection)
        size = check_page_size(page_size)
        after_id = decode_cursor(cursor)
        await self._catalog.config(collection, deadline)

        def scroll(owned: Ownership | None) -> ShardCall[ScrollPage]:
            async def scroll(client: ShardClient, timeout_s: float) -> ScrollPage:
                page = await client.scroll(collection, filter, after_id, size, include, timeout_s)
                return page if owned is None else owned.page(page)

            return scroll

        pages, coverage = await self._fan_out_owned(
            collection, "scroll", scroll, deadline, allow_partial
        )
        merged = list(heapq.merge(*(page.documents for page in pages), key=_BY_ID))
        # A page cut to what its group owns may end short of where the group's
        # listing stopped: nothing past the first such stop is certain yet.
        stops = [page.last_listed for page in pages if page.more and page.last_listed]
        if stops:
            merged = [document for document in merged if document.id <= min(stops)]
        more = len(merged) > size or any(page.more for page in pages)
        documents = merged[:size]
        next_cursor = encode_cursor(documents[-1].id) if more and documents else ""
        return ScrollResults(documents, next_cursor, coverage)

    async def _query_matrix(
        self, config: CollectionConfig, queries: Sequence[QueryInput] | Vector, deadline: Deadline
    ) -> Vector:
        """All queries as one (n, dimension) float32 matrix, texts embedded."""
        if isinstance(queries, np.ndarray):
            check_query_matrix(queries)
            return queries
        texts = [(row, query.text) for row, query in enumerate(queries) if query.text is not None]
        if not texts:
            vectors = [query.vector for query in queries if query.vector is not None]
            matrix = vectors[0].reshape(1, -1) if len(vectors) == 1 else np.stack(vectors)
            check_query_matrix(matrix)
            return matrix
        # Text rows stay zero (finite) until embedded, so the check names the
        # right query.
        matrix = np.zeros((len(queries), config.dimension), dtype="<f4")
        for row, query in enumerate(queries):
            if query.vector is not None:
                matrix[row] = query.vector
        check_query_matrix(matrix)
        embedded = await self._embedding.embed(
            [text for _, text in texts], config.embedding_model, config.dimension, deadline
        )
        matrix[[row for row, _ in texts]] = embedded
        return matrix

    async def _fan_out_owned(
        self,
        collection: str,
        operation: str,
        call: OwnedCall[T],
        deadline: Deadline,
        allow_partial: bool,
    ) -> tuple[list[T], Coverage]:
        """`_fan_out` of `call(None)` while no partition moves; while some do, each
        group gets `call(what it owns)`, which cuts the group's answer to that or
        asks the shard to leave the rest out (see `owned_hits`)."""
        table = self._routing.table
        partitions = 0
        if table.topology.moves_in_flight:
            partitions = (await self._catalog.config(collection, deadline)).partitions
        return await self._fan_out_to(
            owned_targets(table.groups, table.topology, partitions, call),
            collection,
            operation,
            deadline,
            allow_partial,
        )

    async def _fan_out_to(
        self,
        targets: Sequence[tuple[ReplicaGroup, ShardCall[T]]],
        collection: str,
        operation: str,
        deadline: Deadline,
        allow_partial: bool,
    ) -> tuple[list[T], Coverage]:
        try:
            answers, coverage = await fan_out(
                targets, deadline, f"{operation} in {collection!r}", allow_partial, operation
            )
        except NotFound:
            # The collection went away (another coordinator may have deleted it).
            self._catalog.invalidate(collection)
            raise
        if coverage.answered < coverage.asked:
            self._observer.record_partial_result(operation)
        return answers, coverage
