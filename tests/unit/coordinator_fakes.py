"""In-memory shard replicas and embedder for the coordinator's unit tests.

They implement `coordinator.core.ports` the way the real services behave, and
can be told to fail, to hang, or to answer only when released, so consistency
counting and failover can be tested without processes. This module holds no
tests itself.

`FakeShard` answers with the messages a real shard sends (`Hit`s in
`ShardSearchResult`s, `Document`s holding only what `Include` asks for), scores
each metric as a shard does (cosine similarity, dot product, minus the Euclidean
distance for l2; distance 1 - cosine, 1 - dot, the Euclidean distance), and
evaluates the filter message the coordinator passes on with the shard's own
filter model (`shard.api.proto_filters`, `shard.core.filters.matches`).
tests/integration/test_shard_contract.py runs the same cases against it and a
real shard server through the `ShardClient` port. Where it still differs:

- search is exact (a shard's HNSW may miss a neighbour; the contract test's
  collections are small enough for a shard to be exact too) and in float64
  (a shard's scores are float32: equal to about 1e-6);
- two writes of one id with the same version keep the first; a shard keeps the
  one whose content (vector, then text and metadata bytes) orders last. Two
  writes of one id in one batch count as two applied, on a shard as one;
- tombstones never expire: a shard leaves those older than its grace period (7
  days by default, by the time in the version) out of version lists and digests,
  and purges them;
- `create_collection` keeps the config as given; a shard fills in the defaults
  of zero fields (HNSW parameters, partitions);
- a scroll `limit` of 0 gives an empty page (the coordinator always asks for at
  least 1; a shard takes 0 as its default page of 100);
- no limits are enforced (batch sizes, id lengths, filter sizes), and what a
  shard would refuse as INVALID_ARGUMENT is mostly not checked here: the unit
  tests give valid input, bad input is covered against real servers
  (tests/integration/test_bad_input.py).
"""

import asyncio
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import cast

import numpy as np

from coordinator.clients.packed_results import packed_from_hits
from coordinator.core.clock import HybridLogicalClock
from coordinator.core.coordinator import Coordinator
from coordinator.core.deadline import Deadline
from coordinator.core.observer import NO_REPLICATION_OBSERVER, ReplicationObserver
from coordinator.core.packed import PackedBatch
from coordinator.core.ports import (
    ChunkedText,
    CollectionConfig,
    CollectionListing,
    DocumentMessage,
    EmbedderInfo,
    Health,
    HybridAnswer,
    HybridCall,
    Include,
    OpaqueFilter,
    RankedHits,
    ScrollPage,
    ShardCollection,
    Vector,
    WeightedTerms,
    WriteAck,
    WriteOp,
)
from shard.api.proto_filters import filter_from_proto
from shard.core.filters import Filter, matches
from shard.core.ownership import PartitionOwnership
from shoal.distance_metric import Metric
from shoal.errors import (
    AlreadyExists,
    DataLoss,
    DeadlineExceeded,
    NotFound,
    PartitionMoved,
    ShoalError,
)
from shoal.keyword import TermStatistics, Tokenizer, idf, tokenizer_for
from shoal.partitioning import partition_of
from shoal.replication import PartitionDigest, VersionState, digest_records
from shoal.runtime.proto_values import value_from_proto, value_to_proto
from shoal.topology import Topology
from shoal.v1 import common_pb2, shard_pb2


def deadline(seconds: float = 5.0) -> Deadline:
    return Deadline.after(seconds)


def metadata_values(metadata: Mapping[str, object]) -> dict[str, object]:
    """Metadata as plain Python values: the coordinator passes on the `Value` map it
    was sent, unit tests that call the core directly plain values."""
    return {
        key: value_from_proto(value) if isinstance(value, common_pb2.Value) else value
        for key, value in metadata.items()
    }


def document_message(op: WriteOp, include: Include) -> common_pb2.Document:
    """The `Document` a shard returns for a stored write: the id, and what `include` asks."""
    document = common_pb2.Document(id=op.id)
    if include.vector:
        document.vector_f32 = op.vector_f32
    if include.text and op.text is not None:
        document.text = op.text
    if include.metadata:
        for key, value in op.metadata.items():
            if isinstance(value, common_pb2.Value):
                document.metadata[key].CopyFrom(value)
            else:
                document.metadata[key].CopyFrom(value_to_proto(key, value))
    return document


def metric_scores(
    metric: Metric, queries: Vector, vectors: Vector
) -> tuple[np.ndarray, np.ndarray]:
    """(scores, distances), queries x vectors, as a shard computes them (see the
    `Hit` message): cosine of the normalized vectors, the dot product, or the
    Euclidean distance."""
    queries64 = np.asarray(queries, dtype=np.float64)
    vectors64 = np.asarray(vectors, dtype=np.float64)
    if metric is Metric.COSINE:
        queries64 = queries64 / np.maximum(np.linalg.norm(queries64, axis=1, keepdims=True), 1e-30)
        vectors64 = vectors64 / np.maximum(np.linalg.norm(vectors64, axis=1, keepdims=True), 1e-30)
    dots = queries64 @ vectors64.T
    if metric is Metric.L2:
        squared = (
            np.square(queries64).sum(axis=1)[:, None]
            + np.square(vectors64).sum(axis=1)[None, :]
            - 2 * dots
        )
        distances = np.sqrt(np.maximum(squared, 0.0))
        return -distances, distances
    return dots, 1.0 - dots


def text_holds(tokenizer: Tokenizer, text: str | None, phrase: str) -> bool:
    """Whether `text` holds the phrase's terms in order (shard.core.keyword_index's
    `text_holds`)."""
    if text is None:
        return False
    terms = tokenizer.phrase(phrase)
    sequence = tokenizer.sequence(text)
    width = len(terms)
    return bool(terms) and any(
        sequence[start : start + width] == terms for start in range(len(sequence))
    )


def _matches(root: Filter, op: WriteOp, tokenizer: Tokenizer) -> bool:
    def holds(phrase: str) -> bool:
        return text_holds(tokenizer, op.text, phrase)

    return matches(root, metadata_values(op.metadata), holds)


@dataclass
class Stored:
    version: int
    op: WriteOp


@dataclass
class FakeShard:
    """One replica. Set `fail` to make every call raise it, `hang` to make calls
    wait until their timeout, `gate` to make writes wait until it is set, or
    `broken` to make collections fail as if they could not be loaded."""

    address: str
    collections: dict[str, CollectionConfig] = field(default_factory=dict)
    documents: dict[str, dict[str, Stored]] = field(default_factory=dict)
    fail: ShoalError | None = None
    hang: bool = False
    gate: asyncio.Event | None = None
    calls: list[str] = field(default_factory=list)
    #: Collections this replica could not load (name -> why): DATA_LOSS on them.
    broken: dict[str, str] = field(default_factory=dict)
    #: The topology this replica knows: writes routed with an older version for a
    #: partition its group does not own under it are refused, as a shard does.
    topology: Topology | None = None
    #: The topology version each write came routed with.
    routed_with: list[int] = field(default_factory=list)
    #: The collection incarnation each write came with.
    incarnations: list[int] = field(default_factory=list)
    #: Whether a refusal passes `topology` back (False: as if it was too large).
    passes_topology: bool = True

    async def _enter(self, what: str, timeout_s: float) -> None:
        self.calls.append(what)
        await asyncio.sleep(0)
        if self.hang:
            await asyncio.sleep(timeout_s)
            raise DeadlineExceeded(f"{self.address}: deadline exceeded")
        if self.fail is not None:
            raise type(self.fail)(str(self.fail))

    def _collection(self, name: str) -> dict[str, Stored]:
        if name in self.broken:
            raise DataLoss(f"collection {name!r} could not be loaded: {self.broken[name]}")
        if name not in self.collections:
            raise NotFound(f"collection {name!r} does not exist")
        return self.documents[name]

    async def create_collection(
        self, config: CollectionConfig, timeout_s: float
    ) -> tuple[CollectionConfig, bool]:
        await self._enter("create_collection", timeout_s)
        existing = self.collections.get(config.name)
        if existing is not None:
            if existing != config:
                raise AlreadyExists(f"collection {config.name!r} exists with other settings")
            return existing, False
        self.collections[config.name] = config
        self.documents[config.name] = {}
        return config, True

    async def delete_collection(self, name: str, timeout_s: float, incarnation: int = 0) -> bool:
        await self._enter("delete_collection", timeout_s)
        self.documents.pop(name, None)
        return self.collections.pop(name, None) is not None

    async def list_collections(
        self, timeout_s: float, skip_partitions: Sequence[int] = ()
    ) -> CollectionListing:
        await self._enter("list_collections", timeout_s)
        return CollectionListing(
            [
                ShardCollection(config, len(self._live(name, None, skip_partitions)))
                for name, config in self.collections.items()
                if name not in self.broken
            ],
            dict(self.broken),
        )

    def live_count(self, name: str) -> int:
        return sum(not stored.op.deleted for stored in self.documents[name].values())

    async def write(
        self,
        collection: str,
        writes: Sequence[WriteOp],
        timeout_s: float,
        incarnation: int = 0,
        topology_version: int = 0,
    ) -> WriteAck:
        await self._enter("write", timeout_s)
        if self.gate is not None:
            await self.gate.wait()
        store = self._collection(collection)
        self.routed_with.append(topology_version)
        self.incarnations.append(incarnation)
        try:
            PartitionOwnership(lambda: self.topology, lambda: self.address).check(
                collection,
                self.collections[collection].partitions,
                (op.id for op in writes),
                topology_version,
            )
        except PartitionMoved as refused:
            raise PartitionMoved(
                str(refused), refused.topology if self.passes_topology else None
            ) from None
        applied = deleted = 0
        for op in writes:
            old = store.get(op.id)
            if op.patch:
                if old is None or old.op.deleted:
                    continue  # a partial update of nothing: skipped, as a shard does
                op = _patched(old.op, op)
            if old is not None and (old.version, old.op.deleted) >= (op.version, op.deleted):
                continue
            applied += 1
            if op.deleted and old is not None and not old.op.deleted:
                deleted += 1
            store[op.id] = Stored(op.version, op)
        return WriteAck(applied, deleted)

    async def get(
        self, collection: str, ids: Sequence[str], include: Include, timeout_s: float
    ) -> list[DocumentMessage]:
        await self._enter("get", timeout_s)
        store = self._collection(collection)
        found: list[DocumentMessage] = []
        for doc_id in dict.fromkeys(ids):  # in request order, each once
            stored = store.get(doc_id)
            if stored is not None and not stored.op.deleted:
                found.append(document_message(stored.op, include))
        return found

    async def search(
        self,
        collection: str,
        queries: Vector,
        k: int,
        ef: int,
        include: Include,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        score_threshold: float | None = None,
    ) -> list[RankedHits]:
        await self._enter("search", timeout_s)
        return self._vector_lists(collection, queries, k, include, filter, score_threshold)

    def _vector_lists(
        self,
        collection: str,
        queries: Vector,
        k: int,
        include: Include,
        filter: OpaqueFilter | None,
        score_threshold: float | None,
        bare: bool = False,
    ) -> list[RankedHits]:
        any_field = include != Include()
        live = self._live(collection, filter)
        if not live:
            return [shard_pb2.ShardSearchResult() for _ in queries]
        matrix = np.stack([np.frombuffer(op.vector_f32, dtype="<f4") for op in live])
        scores, distances = metric_scores(self.collections[collection].metric, queries, matrix)
        results: list[RankedHits] = []
        for row_scores, row_distances in zip(scores, distances, strict=True):
            ranked = sorted(
                (
                    (float(distance), op.id, float(score), op)
                    for op, score, distance in zip(live, row_scores, row_distances, strict=True)
                    if score_threshold is None or score >= score_threshold
                ),
                key=lambda hit: (hit[0], hit[1]),
            )
            result = shard_pb2.ShardSearchResult()
            for distance, doc_id, score, op in ranked[:k]:
                result.hits.add(
                    id=doc_id,
                    score=score,
                    distance=distance,
                    document=None if bare and not any_field else document_message(op, include),
                )
            results.append(result)
        return results

    def _tokenizer(self, collection: str) -> Tokenizer:
        return tokenizer_for(self.collections[collection].keyword)

    def _terms(self, collection: str, op: WriteOp) -> list[str]:
        return [] if op.text is None else self._tokenizer(collection).terms(op.text)

    async def keyword_stats(
        self,
        collection: str,
        terms: Sequence[str],
        timeout_s: float,
        skip_partitions: Sequence[int] = (),
        vocabulary_limit: int = 0,
    ) -> TermStatistics:
        await self._enter("keyword_stats", timeout_s)
        stats = self._statistics(collection, terms, skip_partitions)
        if not vocabulary_limit:
            return stats
        live = self._live(collection, None, skip_partitions)
        held = sorted({term for op in live for term in self._terms(collection, op)})
        if len(held) > vocabulary_limit:
            return stats
        every = self._statistics(collection, held, skip_partitions)
        return replace(stats, vocabulary=dict(zip(held, every.frequencies, strict=True)))

    def _statistics(
        self, collection: str, terms: Sequence[str], skip_partitions: Sequence[int]
    ) -> TermStatistics:
        texts = [
            self._terms(collection, op)
            for op in self._live(collection, None, skip_partitions)
            if op.text is not None
        ]
        return TermStatistics(
            len(texts),
            sum(len(t) for t in texts),
            [sum(term in t for t in texts) for term in terms],
        )

    def _keyword_lists(
        self,
        collection: str,
        queries: Sequence[WeightedTerms],
        average_length: float,
        k: int,
        include: Include,
        filter: OpaqueFilter | None,
        score_threshold: float | None,
        bare: bool = False,
    ) -> list[RankedHits]:
        """BM25 (Lucene's, k1 1.2, b 0.75) with the given weights, as a shard scores."""
        any_field = include != Include()
        live = [(op, self._terms(collection, op)) for op in self._live(collection, filter)]
        results: list[RankedHits] = []
        for query in queries:
            hits: list[tuple[float, str, WriteOp]] = []
            for op, terms in live:
                score = 0.0
                for term, weight in zip(query.terms, query.weights, strict=True):
                    tf = terms.count(term)
                    if tf:
                        norm = 1.2 * (0.25 + 0.75 * len(terms) / average_length)
                        score += weight * tf / (tf + norm)
                if score > 0 and (score_threshold is None or score >= score_threshold):
                    hits.append((-score, op.id, op))
            hits.sort(key=lambda hit: (hit[0], hit[1]))
            result = shard_pb2.ShardSearchResult()
            for negated, doc_id, op in hits[:k]:
                result.hits.add(
                    id=doc_id,
                    score=-negated,
                    distance=negated,
                    document=None if bare and not any_field else document_message(op, include),
                )
            results.append(result)
        return results

    async def hybrid_search(
        self, collection: str, call: HybridCall, timeout_s: float
    ) -> HybridAnswer:
        """Both lists and the statistics, from one look at the documents, as a shard
        answers (the keyword list and the statistics under one index lock)."""
        await self._enter("hybrid_search", timeout_s)
        self._collection(collection)
        queries, average_length = call.keyword, call.average_length
        if call.local_statistics:  # weighted with this replica's statistics
            queries = []
            for query in call.keyword:
                stats = self._statistics(collection, query.terms, call.skip_partitions)
                weights = [
                    float(np.float32(count * idf(frequency, stats.documents)))
                    for count, frequency in zip(query.occurrences, stats.frequencies, strict=True)
                ]
                queries.append(WeightedTerms(query.terms, weights))
                average_length = stats.average_length
        keyword = self._keyword_lists(
            collection,
            queries,
            average_length,
            call.k,
            call.include,
            call.filter,
            call.score_threshold,
            call.bare_hits,
        )
        vector: list[RankedHits] = []
        if call.vectors is not None:
            vector = self._vector_lists(
                collection,
                call.vectors,
                call.k,
                call.include,
                call.filter,
                call.score_threshold,
                call.bare_hits,
            )
        statistics = self._statistics(collection, call.statistics_terms, call.skip_partitions)

        # As the shard client reads a shard's answer: columns (Hit messages read into them).
        def columns(lists: list[RankedHits]) -> PackedBatch:
            results = cast(list[shard_pb2.ShardSearchResult], lists)
            return packed_from_hits(results, len(results), call.include)

        return HybridAnswer(columns(vector), columns(keyword), statistics)

    def _live(
        self, collection: str, filter: OpaqueFilter | None, skip_partitions: Sequence[int] = ()
    ) -> list[WriteOp]:
        """Live documents matching `filter`: the `Filter` message the coordinator passes
        on, converted and validated as a shard's api does and evaluated by the shard's
        own `matches` (the shard's payload index gives the same answers, vectorized).
        Documents of `skip_partitions` are left out."""
        store = self._collection(collection)
        if skip_partitions:
            partitions, skipped = self.collections[collection].partitions, set(skip_partitions)
            store = {
                doc_id: stored
                for doc_id, stored in store.items()
                if partition_of(doc_id, partitions) not in skipped
            }
        if filter is None:
            return [s.op for s in store.values() if not s.op.deleted]
        assert isinstance(filter, common_pb2.Filter), f"filters are Filter messages: {filter!r}"
        valid = filter_from_proto(filter)
        root: Filter | None = None if valid is None else valid.root
        tokenizer = self._tokenizer(collection)
        return [
            s.op
            for s in store.values()
            if not s.op.deleted and (root is None or _matches(root, s.op, tokenizer))
        ]

    async def count(
        self,
        collection: str,
        timeout_s: float,
        filter: OpaqueFilter | None = None,
        skip_partitions: Sequence[int] = (),
    ) -> int:
        await self._enter("count", timeout_s)
        return len(self._live(collection, filter, skip_partitions))

    async def scroll(
        self,
        collection: str,
        filter: OpaqueFilter | None,
        after_id: str,
        limit: int,
        include: Include,
        timeout_s: float,
    ) -> ScrollPage:
        await self._enter("scroll", timeout_s)
        live = sorted(
            (op for op in self._live(collection, filter) if op.id > after_id), key=lambda op: op.id
        )
        page: list[DocumentMessage] = [document_message(op, include) for op in live[:limit]]
        return ScrollPage(page, len(live) > limit)

    async def health(self, timeout_s: float) -> Health:
        if self.fail is not None or self.hang:
            return Health.UNREACHABLE
        return Health.SERVING

    async def digest(self, collection: str, timeout_s: float) -> list[PartitionDigest]:
        await self._enter("digest", timeout_s)
        store = self._collection(collection)
        partitions = self.collections[collection].partitions
        return digest_records(((i, s.version) for i, s in store.items()), partitions)

    async def topology_version(self, timeout_s: float) -> int:
        await self._enter("topology_version", timeout_s)
        return 0 if self.topology is None else self.topology.version

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float
    ) -> dict[str, VersionState]:
        await self._enter("list_versions", timeout_s)
        store = self._collection(collection)
        count = self.collections[collection].partitions
        wanted = set(partitions)
        return {
            doc_id: VersionState(stored.version, stored.op.deleted)
            for doc_id, stored in store.items()
            if partition_of(doc_id, count) in wanted
        }

    async def fetch(self, collection: str, ids: Sequence[str], timeout_s: float) -> list[WriteOp]:
        await self._enter("fetch", timeout_s)
        store = self._collection(collection)
        return [store[doc_id].op for doc_id in dict.fromkeys(ids) if doc_id in store]

    async def fetch_matching(
        self, collection: str, ids: Sequence[str], filter: OpaqueFilter, timeout_s: float
    ) -> tuple[list[WriteOp], frozenset[str]]:
        records = await self.fetch(collection, ids, timeout_s)
        live = {op.id for op in self._live(collection, filter)}
        return records, frozenset(op.id for op in records if op.id in live)


def hash_embedding(text: str, dimension: int) -> Vector:
    seed = int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")
    vector = np.random.default_rng(seed).standard_normal(dimension).astype(np.float32)
    return vector / np.linalg.norm(vector)


@dataclass
class FakeEmbedder:
    model: str = "hash-8"
    dimension: int = 8
    max_batch: int = 4
    address: str = "embedder:1"
    max_input_chars: int = 10_000
    batches: list[int] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    fail: ShoalError | None = None

    async def info(self, timeout_s: float) -> EmbedderInfo:
        if self.fail is not None:
            raise self.fail
        return EmbedderInfo(self.model, self.dimension, self.max_batch, self.max_input_chars)

    async def embed(self, texts: Sequence[str], model: str, timeout_s: float) -> Vector:
        if self.fail is not None:
            raise self.fail
        assert len(texts) <= self.max_batch
        assert all(len(text) <= self.max_input_chars for text in texts)
        assert model in ("", self.model)
        self.batches.append(len(texts))
        self.texts += texts
        return np.stack([hash_embedding(text, self.dimension) for text in texts])

    async def embed_chunks(
        self,
        texts: Sequence[str],
        model: str,
        chunk_tokens: int,
        overlap_tokens: int,
        timeout_s: float,
    ) -> list[ChunkedText]:
        """Chunks of `chunk_tokens` characters (no overlap): enough for the core's tests."""
        if self.fail is not None:
            raise self.fail
        result = []
        for text in texts:
            spans = [
                (start, min(len(text), start + chunk_tokens))
                for start in range(0, max(len(text), 1), chunk_tokens)
            ]
            vectors = np.stack([hash_embedding(text[a:b], self.dimension) for a, b in spans])
            result.append(ChunkedText(spans, vectors))
        return result

    async def health(self, timeout_s: float) -> Health:
        return Health.UNREACHABLE if self.fail is not None else Health.SERVING


@dataclass
class FakeCluster:
    """A coordinator core over `groups` x `replicas` fake shards."""

    groups: int = 2
    replicas: int = 3
    embedder: FakeEmbedder = field(default_factory=FakeEmbedder)
    coordinator_id: int = 7
    replication_observer: ReplicationObserver = NO_REPLICATION_OBSERVER
    shards: list[list[FakeShard]] = field(init=False)
    topology: Topology = field(init=False)
    core: Coordinator = field(init=False)

    def __post_init__(self) -> None:
        self.shards = [
            [FakeShard(f"10.0.{g}.{r}:7000") for r in range(self.replicas)]
            for g in range(self.groups)
        ]
        self.topology = Topology.of([[s.address for s in group] for group in self.shards])
        self.core = Coordinator.build(
            self.topology,
            {shard.address: shard for group in self.shards for shard in group},
            self.embedder,
            HybridLogicalClock(self.coordinator_id),
            replication_observer=self.replication_observer,
        )

    @property
    def all_shards(self) -> list[FakeShard]:
        return [shard for group in self.shards for shard in group]

    async def create(
        self, name: str = "c", dimension: int = 8, model: str = "", partitions: int = 16
    ) -> CollectionConfig:
        config = CollectionConfig(
            name=name,
            dimension=dimension,
            metric=Metric.COSINE,
            embedding_model=model,
            partitions=partitions,
        )
        result = await self.core.catalog.create(config, deadline())
        return result.config


def _patched(stored: WriteOp, patch: WriteOp) -> WriteOp:
    """A partial update applied to a stored write, as a shard applies it."""
    metadata = {
        key: value for key, value in stored.metadata.items() if key not in patch.remove_metadata
    }
    metadata.update(patch.metadata)
    return replace(
        stored,
        version=patch.version,
        vector_f32=patch.vector_f32 or stored.vector_f32,
        text=stored.text if patch.text is None else patch.text,
        metadata=metadata,
    )
