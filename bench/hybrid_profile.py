"""`python -m bench.hybrid_profile`: CPU per query of single keyword and hybrid searches.

Where a single hybrid Search's time goes, per process, without timing anything
on the wall clock (a shared machine makes latency figures meaningless, CPU
accounting much less so). One cluster (`--groups`, replication 1, the fake
embedder: every query carries its vector) loaded with `--documents` of a data
set, vectors and texts; then per mode (vector, keyword, hybrid RRF, the
defaults of `python -m bench.hybrid`: k 10, no stored fields) `--queries`
single Search calls one at a time, and the CPU the coordinator and each shard
spent on them (from /proc), per query; the modes take turns (`--rounds`), so
load from elsewhere weighs on each alike. With `--py-spy` the hybrid calls run
again under py-spy and the report lists the functions holding the most samples
(inclusive and self), per process; the collapsed stacks stay in `--out`.

    python -m bench.hybrid_profile --groups 1 --queries 1000
    python -m bench.hybrid_profile --groups 1 --queries 2000 --py-spy
"""

import argparse
import collections
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import loadgen, services
from bench.hybrid import load_collection, load_data, single_requests
from bench.profile import layer_shares
from shoal.keyword import KeywordSettings, tokenizer_for
from shoal.v1 import shard_pb2

SEARCH = "/shoal.v1.ShoalService/Search"
SHARD_SEARCH = "/shoal.v1.ShardService/Search"
SHARD_HYBRID = "/shoal.v1.ShardService/HybridSearch"
#: The candidate depth of a hybrid search with k 10 (2k + rrf_k).
DEPTH = 80
#: Shard calls measured with --shard-calls: name, vector list, keyword list, packed.
SHARD_KINDS: tuple[tuple[str, bool, bool, bool], ...] = (
    ("Search, k 10", True, False, True),
    ("HybridSearch, vector list", True, False, True),
    ("HybridSearch, keyword list", False, True, True),
    ("HybridSearch, both lists", True, True, True),
    ("HybridSearch, both lists, a Hit per hit", True, True, False),
)


def shard_requests(
    texts: Sequence[str], vectors: npt.NDArray[np.float32]
) -> dict[str, list[bytes]]:
    """Per kind of shard call, what the coordinator sends one group for each query: a
    vector Search (k 10, packed), and HybridSearch (local statistics, depth 80) with
    the vector list only, the keyword list only, both, and both a Hit per hit."""
    tokenizer = tokenizer_for(KeywordSettings().with_defaults())
    kinds: dict[str, list[bytes]] = {spec[0]: [] for spec in SHARD_KINDS}
    for text, vector in zip(texts, vectors, strict=True):
        terms = tokenizer.terms(text)
        unique = list(dict.fromkeys(terms))
        counts = collections.Counter(terms)
        keyword = shard_pb2.KeywordQuery(terms=unique, occurrences=[counts[t] for t in unique])
        queries = np.ascontiguousarray(vector, dtype="<f4").tobytes()
        kinds["Search, k 10"].append(
            shard_pb2.ShardSearchRequest(
                collection=services.COLLECTION, queries_f32=queries, k=10, packed=True
            ).SerializeToString()
        )
        for name, with_vector, with_keyword, packed in SHARD_KINDS[1:]:
            kinds[name].append(
                shard_pb2.ShardHybridSearchRequest(
                    collection=services.COLLECTION,
                    queries_f32=queries if with_vector else b"",
                    keyword_queries=[keyword] if with_keyword else [],
                    statistics_terms=unique if with_keyword else [],
                    k=DEPTH,
                    bare_hits=True,
                    local_statistics=True,
                    packed=packed,
                ).SerializeToString()
            )
    return kinds


def top_functions(
    collapsed: str, limit: int
) -> tuple[list[tuple[str, float]], list[tuple[str, float]]]:
    """The frames holding the most samples: inclusive (anywhere on the stack) and self
    (the innermost frame), as shares of all samples."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, number = line.rstrip().rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        frames = stack.split(";")
        for frame in set(frames):
            inclusive[frame] += samples
        own[frames[-1]] += samples
    if not total:
        return [], []
    return (
        [(frame, count / total) for frame, count in inclusive.most_common(limit)],
        [(frame, count / total) for frame, count in own.most_common(limit)],
    )


def _record(py_spy: str, pid: int, path: Path, rate: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            *(py_spy, "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw"),
            *("--nonblocking", "--output", str(path)),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _shard_calls(
    args: argparse.Namespace,
    address: str,
    shard: list[int],
    texts: Sequence[str],
    vectors: npt.NDArray[np.float32],
) -> None:
    """CPU per call of the first shard's calls alone, by kind, the kinds taking turns."""
    requests = shard_requests(texts, vectors)
    used = dict.fromkeys(requests, 0.0)
    counts = dict.fromkeys(requests, 0)
    for part in range(args.rounds):
        for name, calls in requests.items():
            method = SHARD_SEARCH if name.startswith("Search") else SHARD_HYBRID
            done = loadgen.sequential(
                address, method, calls[part :: args.rounds], 1e9, warmup=5, pids={"shard": shard}
            )
            used[name] += done.cpu["shard"]
            counts[name] += done.count
    print("\n| shard call (one query) | shard CPU µs/call |\n|---|---:|")
    for name in requests:
        print(f"| {name} | {used[name] / counts[name] * 1e6:,.0f} |")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hybrid_profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="debian-20k")
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=1_000, help="single calls per mode")
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--modes", nargs="+", default=["vector", "keyword", "hybrid"])
    parser.add_argument("--rounds", type=int, default=10, help="turns the modes take")
    parser.add_argument("--py-spy", action="store_true", help="profile the hybrid calls")
    parser.add_argument(
        "--shard-calls", action="store_true", help="CPU of the first shard's calls by kind"
    )
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=25, help="functions listed per process")
    parser.add_argument("--out", type=Path, default=Path("/tmp/shoal-hybrid-profile"))
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy") if args.py_spy else None
    if args.py_spy and py_spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    docs, doc_vectors, texts, query_vectors = load_data(args.dataset, args.documents, args.queries)
    # As many calls as asked for, the queries repeated when the data set has fewer.
    repeats = -(-args.queries // len(texts))
    vectors = query_vectors[np.arange(args.queries) % len(query_vectors)]
    texts = (texts * repeats)[: args.queries]
    with services.cluster(args.out / "cluster", args.groups, 1, services.NO_CHECKPOINTS) as running:
        address = running.address
        load_collection(address, docs, doc_vectors)
        pids = {"coordinator": [services.pid(running.coordinator)]}
        pids |= {shard.name: [services.pid(shard)] for shard in running.all_shards}
        print(
            f"# single Search, {len(docs):,} documents of {args.dataset}, {args.groups} group(s),"
            f" {args.queries:,} calls one at a time per mode\n"
        )
        print("| mode | " + " | ".join(f"{name} CPU µs/query" for name in pids) + " | both |")
        print("|---|" + "---:|" * (len(pids) + 1))
        singles = {
            mode: single_requests(services.COLLECTION, mode, texts, vectors) for mode in args.modes
        }
        used = {mode: dict.fromkeys(pids, 0.0) for mode in args.modes}
        counts = dict.fromkeys(args.modes, 0)
        # The modes take turns, `--rounds` slices each, so load from elsewhere on a
        # shared machine weighs on every mode alike.
        for part in range(args.rounds):
            for mode in args.modes:
                requests = singles[mode][part :: args.rounds]
                calls = loadgen.sequential(address, SEARCH, requests, 1e9, warmup=5, pids=pids)
                counts[mode] += calls.count
                for name in pids:
                    used[mode][name] += calls.cpu[name]
        for mode in args.modes:
            cells = [f"{used[mode][name] / counts[mode] * 1e6:,.0f}" for name in pids]
            total = sum(used[mode].values()) / counts[mode] * 1e6
            print(f"| {mode} | {' | '.join(cells)} | {total:,.0f} |")
        if args.shard_calls:
            _shard_calls(
                args, running.shards[0][0].address, pids[running.shards[0][0].name], texts, vectors
            )
        if py_spy is None:
            return
        profiled = single_requests(services.COLLECTION, "hybrid", texts, vectors)
        samplers = {
            name: _record(py_spy, ids[0], args.out / f"{name}.txt", args.rate)
            for name, ids in pids.items()
        }
        try:
            loadgen.sequential(address, SEARCH, profiled, 1e9, warmup=0)
        finally:
            for sampler in samplers.values():
                sampler.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
            for sampler in samplers.values():
                sampler.wait(timeout=60)
    for name in pids:
        path = args.out / f"{name}.txt"
        if not path.exists():
            print(f"\n## {name}: no py-spy output")
            continue
        collapsed = path.read_text()
        print(f"\n## {name}: py-spy, hybrid\n")
        for layer, share in layer_shares(collapsed).items():
            print(f"- {share * 100:4.1f}% {layer}")
        inclusive, own = top_functions(collapsed, args.top)
        print("\ninclusive:\n")
        for frame, share in inclusive:
            print(f"- {share * 100:4.1f}% {frame}")
        print("\nself:\n")
        for frame, share in own:
            print(f"- {share * 100:4.1f}% {frame}")


if __name__ == "__main__":
    main()
