"""What building one shard Search request costs the coordinator, in-process (timeit).

    python -m bench.search_request                 # 384-d queries, 1 and 32 rows
    python -m bench.search_request --dimension 768 --number 20000

The coordinator's shard client keys concurrent searches by their parameters'
serialized bytes (the coalescer joins searches with equal keys) and then sends
those parameters with the joined queries. It used to parse the key back into a
message, set the queries and serialize the whole request again ("parse and
re-serialize"); now it sends the key's bytes followed by the queries field
("join": `coordinator.clients.shard_messages.search_request`). Both are timed
here in the same run, alternating, from the key on (the key itself costs the
same either way), with and without a filter; the figures are the best of
`--repeat` timeit runs, per request.
"""

import argparse
import timeit
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np

from coordinator.clients.shard_messages import search_parameters, search_request
from coordinator.core.ports import Vector
from shoal.v1 import common_pb2, shard_pb2

FILTER = common_pb2.Filter(
    all_of=common_pb2.FilterList(
        filters=[
            common_pb2.Filter(
                condition=common_pb2.Condition(
                    key="section",
                    op=common_pb2.OPERATOR_IN,
                    value=common_pb2.Value(
                        string_list=common_pb2.StringList(values=["sound", "graphics", "net"])
                    ),
                )
            ),
            common_pb2.Filter(
                condition=common_pb2.Condition(
                    key="size", op=common_pb2.OPERATOR_LT, value=common_pb2.Value(int_value=500)
                )
            ),
        ]
    )
)


def parse_and_reserialize(key: bytes, queries: Vector) -> bytes:
    """The request as the shard client built it before: the key parsed back, the
    queries set, the whole message serialized again (by the stub's serializer)."""
    request = shard_pb2.ShardSearchRequest.FromString(key)
    request.queries_f32 = queries.astype("<f4", copy=False).tobytes()
    return request.SerializeToString()


def join(key: bytes, queries: Vector) -> bytes:
    return search_request(key, queries)


def per_call_us(build: Callable[[], bytes], number: int, repeat: int) -> float:
    return min(timeit.repeat(build, number=number, repeat=repeat)) / number * 1e6


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.search_request", description=__doc__)
    parser.add_argument("--dimension", type=int, default=384)
    parser.add_argument("--number", type=int, default=10_000, help="requests per timeit run")
    parser.add_argument("--repeat", type=int, default=7, help="timeit runs; the best counts")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| queries | filter | parse and re-serialize (µs) | join (µs) | speed-up |")
    print("|---:|---|---:|---:|---:|")
    for rows in (1, 32):
        queries = rng.random((rows, args.dimension), dtype=np.float32)
        for name, spec in (("none", None), ("2 conditions", FILTER)):
            key = search_parameters("docs", 10, 64, common_pb2.Include(), spec, None)
            parse = shard_pb2.ShardSearchRequest.FromString
            assert parse(parse_and_reserialize(key, queries)) == parse(join(key, queries))
            times: dict[str, list[float]] = {"old": [], "new": []}
            for _ in range(3):  # alternate, so both see the same machine load
                old_build = partial(parse_and_reserialize, key, queries)
                times["old"].append(per_call_us(old_build, args.number, args.repeat))
                times["new"].append(
                    per_call_us(partial(join, key, queries), args.number, args.repeat)
                )
            old, new = min(times["old"]), min(times["new"])
            print(f"| {rows} | {name} | {old:.2f} | {new:.2f} | {old / new:.1f}x |")


if __name__ == "__main__":
    main()
