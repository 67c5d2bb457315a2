"""Packed and per-hit hybrid answers of real shards give the same search results.

The coordinator asks shards for both candidate lists in the packed form and
fuses the columns with numpy (`fusion`); a shard that predates the form
answers a `Hit` per candidate, which the shard client reads into the same
columns (`packed_from_hits`). Here the
coordinator core's keyword and hybrid search runs over the same real shards
twice, once through the gRPC client as it is (packed) and once through a
client that asks for the per-hit form, and the public hits must be equal
field for field: ids, scores, distances, explanations, stored fields, a chunking
collection's best chunks. With one
group (each replica weights with its own statistics) and with two (the
cluster-wide statistics asked for first, the groups' lists merged).
"""

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc.aio
import numpy as np
import pytest

from bench import long_documents
from coordinator.api import public_messages
from coordinator.clients.packed_results import hybrid_answer
from coordinator.clients.shard import GrpcShardClient
from coordinator.clients.shard_messages import hybrid_request
from coordinator.core.deadline import Deadline
from coordinator.core.keyword_reads import KeywordReads
from coordinator.core.model import Coverage, FoundDocuments, SearchResults
from coordinator.core.packed import PackedBatch, PackedHits
from coordinator.core.ports import CollectionConfig, HybridAnswer, HybridCall
from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.status import unary_call
from shoal.sdk.where import where_document_to_filter, where_to_filter
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc, shoal_pb2
from tests import datasets
from tests.conftest import StartCluster

pytestmark = pytest.mark.skipif(not datasets.available(), reason="shared test data not found")

COLLECTION = "debian"
#: Chunked by the coordinator (the fake embedder, 40-word chunks): hits carry chunks.
CHUNKED = "manuals"
DOCUMENTS = 400
QUERIES = 12
TIMEOUT = 30.0


class PerHitShardClient(GrpcShardClient):
    """The shard client as it was before the packed form: a `Hit` per candidate."""

    def __init__(self, address: str, channel: grpc.aio.Channel) -> None:
        super().__init__(address, channel)
        self._hybrid = shard_pb2_grpc.ShardServiceStub(channel).HybridSearch

    async def hybrid_search(
        self, collection: str, call: HybridCall, timeout_s: float
    ) -> HybridAnswer:
        request = hybrid_request(collection, call, packed=False)
        reply: shard_pb2.ShardHybridSearchResponse = await unary_call(
            self._hybrid, request, timeout_s
        )
        vectors = 0 if call.vectors is None else len(call.vectors)
        return hybrid_answer(reply, vectors, len(call.keyword), call.include)


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    cluster = start_module_cluster(groups=2, replicas=1, model="hash-384")
    with Client(cluster.address, timeout=60) as client:
        client.create_collection(COLLECTION, dimension=384, partitions=16)
        client.upsert(COLLECTION, datasets.with_vectors(datasets.load(), 0, DOCUMENTS), "all")
        client.create_collection(
            CHUNKED,
            embedding_model="hash-384",
            chunking={"chunk_tokens": 40, "overlap_tokens": 5},
        )
        long = long_documents.build(datasets.load().documents)
        client.upsert(CHUNKED, long.documents[:DOCUMENTS], "all")
    return cluster


def _reads(clients: Sequence[GrpcShardClient]) -> KeywordReads:
    """The coordinator core's keyword reads over one client per group."""

    async def fan_out(
        collection: str, operation: str, call: Any, deadline: Deadline, allow_partial: bool
    ) -> tuple[list[Any], Coverage]:
        answers = [await call(None)(client, TIMEOUT) for client in clients]
        return answers, Coverage(len(clients), len(clients))

    async def embed(config: CollectionConfig, queries: Any, deadline: Deadline) -> Any:
        # Every query carries its vector (the reader's `_query_matrix` stacks them).
        return np.stack([query.vector for query in queries])

    async def get(*args: object) -> FoundDocuments:
        raise AssertionError("no vectors are asked for")

    return KeywordReads(fan_out, embed, get, groups=lambda: len(clients))


def _requests(collection: str) -> list[shoal_pb2.SearchRequest]:
    data = datasets.load()
    hybrid, keyword = shoal_pb2.SEARCH_MODE_HYBRID, shoal_pb2.SEARCH_MODE_KEYWORD
    relative = shoal_pb2.HybridOptions(fusion=shoal_pb2.FUSION_RELATIVE_SCORE, alpha=0.3)
    shapes: list[dict[str, Any]] = [
        {"mode": hybrid},
        {"mode": hybrid, "explain": True},
        {"mode": hybrid, "hybrid": relative, "explain": True},
        {"mode": hybrid, "hybrid": shoal_pb2.HybridOptions(alpha=0.0)},
        {"mode": hybrid, "hybrid": shoal_pb2.HybridOptions(alpha=1.0, candidates=15)},
        {"mode": hybrid, "score_threshold": 0.012},
        {"mode": hybrid, "include": common_pb2.Include(metadata=True, text=True)},
        {"mode": hybrid, "filter": where_to_filter({"priority": "optional"})},
        {"mode": hybrid, "filter": where_document_to_filter({"$contains": "library"})},
        {"mode": keyword},
        {"mode": keyword, "explain": True, "include": common_pb2.Include(text=True)},
        {"mode": keyword, "score_threshold": 5.0},
    ]
    requests = []
    for row in range(QUERIES):
        document = data.documents[row * 7]
        query = shoal_pb2.Query(text=str(document["title"]))
        for shape in shapes:
            request = shoal_pb2.SearchRequest(collection=collection, query=query, k=10, **shape)
            if request.mode == hybrid:
                request.query.vector_f32 = data.document_vectors[row * 7 + 1].tobytes()
            requests.append(request)
    return requests


def _public(results: SearchResults) -> list[shoal_pb2.SearchResponse]:
    replies = []
    for result in results.results:
        reply = shoal_pb2.SearchResponse()
        public_messages.add_hits(reply, result)
        replies.append(reply)
    return replies


async def _search_both(addresses: list[str], collection: str) -> tuple[int, int, int]:
    channels = [grpc.aio.insecure_channel(address, options=GRPC_OPTIONS) for address in addresses]
    try:
        listing = await GrpcShardClient(addresses[0], channels[0]).list_collections(TIMEOUT)
        [config] = [c.config for c in listing.collections if c.config.name == collection]
        assert config.keyword.enabled
        packed = _reads([GrpcShardClient(a, c) for a, c in zip(addresses, channels, strict=True)])
        per_hit = _reads(
            [PerHitShardClient(a, c) for a, c in zip(addresses, channels, strict=True)]
        )
        compared = columns = chunked = 0
        for request in _requests(collection):
            options = public_messages.search_options(request)
            queries = [public_messages.query_from_proto(request.query, "query")]
            new = await packed.search(config, queries, options, Deadline.after(TIMEOUT))
            old = await per_hit.search(config, queries, options, Deadline.after(TIMEOUT))
            assert _public(new) == _public(old), request
            assert new.coverage == old.coverage
            compared += sum(len(reply.hits) for reply in _public(new))
            chunked += sum(hit.HasField("chunk") for reply in _public(new) for hit in reply.hits)
            columns += isinstance(new.results, PackedBatch) or all(
                isinstance(result, PackedHits) for result in new.results
            )
        return compared, columns, chunked
    finally:
        await asyncio.gather(*(channel.close() for channel in channels))


@pytest.mark.parametrize("collection", [COLLECTION, CHUNKED])
@pytest.mark.parametrize("groups", [1, 2])
async def test_packed_and_per_hit_answers_give_the_same_results(
    cluster: LocalCluster, groups: int, collection: str
) -> None:
    addresses = [cluster.shards[group][0].address for group in range(groups)]
    compared, columns, chunked = await _search_both(addresses, collection)
    assert compared >= QUERIES * 8 * 5  # most searches found hits
    assert columns >= QUERIES  # keyword-only answers stay columns up to the reply
    assert (chunked > 0) == (collection == CHUNKED)  # hits carry their best chunks
