"""`python -m bench.hybrid_replies`: CPU of a hybrid answer's two candidate lists, per
hit messages against the packed form, in-process.

What the packed hybrid answer (`ShardHybridSearchRequest.packed`) saves, without
the noise of a shared machine's scheduling: thread CPU time, best of
`--repeats`, of the work each side does per query on the lists alone. The shard
writes both lists (a `Hit` per candidate, as a shard that predates the packed
form does, or `fill_packed`'s columns) and serializes the reply; the coordinator
parses it, reads it into columns (from the `Hit`s, or as they are), merges
them for one group, fuses them (RRF, k 10) and writes the public reply's hits.
The lists are synthetic: `--depth` candidates each (80 is the default depth for
k 10), a few ids in both, ids like Debian package names. Both paths must give
the same public reply, or the run stops.

    python -m bench.hybrid_replies
"""

import argparse
import random
import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from coordinator.api import public_messages
from coordinator.clients.packed_results import hybrid_answer
from coordinator.core.fusion import fuse
from coordinator.core.model import HybridOptions, MergedHits
from coordinator.core.packed_merge import merge_packed
from coordinator.core.ports import HitMessage, Include
from shard.api import proto_reads
from shard.api.packed_hits import fill_packed
from shard.core.documents import QueryHits
from shoal.v1 import common_pb2, shard_pb2, shoal_pb2

K = 10
NO_FIELDS = common_pb2.Include()
T = TypeVar("T")


def _lists(rng: random.Random, names: Sequence[str], depth: int) -> tuple[QueryHits, QueryHits]:
    vector = rng.sample(names, depth)
    keyword = rng.sample(vector[: depth // 2], depth // 6) + rng.sample(names, depth - depth // 6)
    rng.shuffle(keyword)
    vector_scores = sorted((rng.random() for _ in vector), reverse=True)
    keyword_scores = sorted((rng.random() * 20 for _ in keyword), reverse=True)
    return (
        QueryHits(vector, vector_scores, [1 - s for s in vector_scores]),
        QueryHits(keyword, keyword_scores, [-s for s in keyword_scores]),
    )


def shard_per_hit(vector: QueryHits, keyword: QueryHits) -> bytes:
    reply = shard_pb2.ShardHybridSearchResponse()
    proto_reads.hits_to_proto(keyword, NO_FIELDS, reply.keyword_results.add(), False)
    proto_reads.hits_to_proto(vector, NO_FIELDS, reply.vector_results.add(), False)
    return reply.SerializeToString()


def shard_packed(vector: QueryHits, keyword: QueryHits) -> bytes:
    reply = shard_pb2.ShardHybridSearchResponse()
    fill_packed(reply.keyword_packed, [keyword], NO_FIELDS)
    fill_packed(reply.vector_packed, [vector], NO_FIELDS)
    return reply.SerializeToString()


def _public(hits: Sequence[HitMessage]) -> bytes:
    reply = shoal_pb2.SearchResponse()
    public_messages.add_hits(reply, MergedHits(list(hits)))
    return reply.SerializeToString()


def coordinator_reply(data: bytes) -> bytes:
    """The coordinator's work on one reply, per hit or packed: both read into columns."""
    reply = shard_pb2.ShardHybridSearchResponse.FromString(data)
    answer = hybrid_answer(reply, 1, 1, Include())
    vector, keyword = merge_packed([answer.vector], 8 * K), merge_packed([answer.keyword], 8 * K)
    return _public(fuse(vector[0], keyword[0], K, HybridOptions(), None, False))


def cpu_us(work: Callable[[T], object], inputs: Sequence[T], repeats: int) -> float:
    """Thread CPU µs per input, best of `repeats` passes."""
    best = float("inf")
    for _ in range(repeats):
        start = time.thread_time()
        for value in inputs:
            work(value)
        best = min(best, time.thread_time() - start)
    return best / len(inputs) * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hybrid_replies",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--depth", type=int, default=8 * K, help="candidates per list")
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    rng = random.Random(1)
    names = [f"pkg-{rng.randrange(10**6):06d}-{n}" for n in range(20_000)]
    queries = [_lists(rng, names, args.depth) for _ in range(args.queries)]
    per_hit = [shard_per_hit(*lists) for lists in queries]
    packed = [shard_packed(*lists) for lists in queries]
    if [coordinator_reply(d) for d in per_hit] != [coordinator_reply(d) for d in packed]:
        raise SystemExit("the packed path's public replies differ from the per-hit path's")
    print(f"{args.queries} queries, {args.depth} candidates per list, k {K}, RRF\n")
    print("| side | per-hit µs/query | packed µs/query |")
    print("|---|---:|---:|")
    shard = [
        cpu_us(lambda lists: shard_per_hit(*lists), queries, args.repeats),
        cpu_us(lambda lists: shard_packed(*lists), queries, args.repeats),
    ]
    print(f"| shard: write both lists, serialize | {shard[0]:.1f} | {shard[1]:.1f} |")
    coordinator = [
        cpu_us(coordinator_reply, per_hit, args.repeats),
        cpu_us(coordinator_reply, packed, args.repeats),
    ]
    print(
        f"| coordinator: parse, merge, fuse, public hits | {coordinator[0]:.1f} |"
        f" {coordinator[1]:.1f} |"
    )
    print(f"\nreply bytes per query: {len(per_hit[0]):,} per hit, {len(packed[0]):,} packed")


if __name__ == "__main__":
    main()
