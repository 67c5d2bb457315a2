"""Keyword and hybrid search speed next to vector search, ingest with the keyword index
on and off, and the keyword index's memory per document.

    python -m bench.hybrid                                   # debian-20k, 1 and 2 groups
    python -m bench.hybrid --documents 2000 --queries 50 --seconds 3 --dataset debian-dev

Search: one cluster per group count (replication 1, the fake embedder: every
query carries its vector, so no mode pays for embedding), loaded with the
documents' vectors and texts. Per mode (vector, keyword, hybrid RRF with
text + vector) it measures single Search calls one at a time (p50, p99, QPS;
the modes take turns call by call, each with `--queries` of its own, so
their p50s are measured under the same load), single calls with `--in-flight`
outstanding, and SearchBatch of `--batch` queries. The issue's bar: hybrid p50
<= 1.5 x vector p50 for single queries. With more than one group, keyword and
hybrid searches of words the coordinator has not seen yet take a round trip
for their statistics first; `--known-words` measures them once it has seen them.

Ingest: one group, replication 1, Upsert of `--ingest-batch` documents with
vectors and texts, into a collection with the keyword index and one without,
alternating `--ingest-runs` times; the bar: the index costs at most 25% of the
throughput.

Memory: the keyword index built in-process from the texts, its arrays' bytes
and what tracemalloc sees allocated, per document with text; and the time to
build it (what a shard spends on it when it opens the collection).

Prints Markdown tables; the numbers are for `docs/benchmarks.md`.
"""

import argparse
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bench import loadgen, services
from bench.datasets import DATA_ROOT, read_jsonl
from bench.stats import Latency
from shard.core.keyword_index import KeywordIndex
from shoal.keyword import KeywordSettings
from shoal.sdk.client import Client
from shoal.v1 import common_pb2, shoal_pb2

Matrix = npt.NDArray[np.float32]
K = 10
MODES = ("vector", "keyword", "hybrid")
_MODE = {
    "vector": shoal_pb2.SEARCH_MODE_VECTOR,
    "keyword": shoal_pb2.SEARCH_MODE_KEYWORD,
    "hybrid": shoal_pb2.SEARCH_MODE_HYBRID,
}
NOTHING = common_pb2.Include()


def load_data(
    name: str, documents: int, queries: int
) -> tuple[list[dict[str, object]], Matrix, list[str], Matrix]:
    root = DATA_ROOT / name
    docs = read_jsonl(root / "corpus.jsonl", documents)
    doc_vectors = np.load(root / "corpus_emb.npy")[: len(docs)].astype("<f4")
    query_rows = read_jsonl(root / "queries.jsonl", queries)
    query_vectors = np.load(root / "queries_emb.npy")[: len(query_rows)].astype("<f4")
    return docs, doc_vectors, [str(q["text"]) for q in query_rows], query_vectors


def _upserts(
    collection: str,
    docs: Sequence[dict[str, object]],
    vectors: Matrix,
    batch: int,
) -> list[bytes]:
    requests = []
    for start in range(0, len(docs), batch):
        request = shoal_pb2.UpsertRequest(collection=collection)
        for row in range(start, min(start + batch, len(docs))):
            request.documents.add(
                id=str(row), vector_f32=vectors[row].tobytes(), text=str(docs[row]["text"])
            )
        requests.append(request.SerializeToString())
    return requests


def _query(mode: str, text: str, vector: Matrix) -> shoal_pb2.Query:
    if mode == "vector":
        return shoal_pb2.Query(vector_f32=vector.tobytes())
    if mode == "keyword":
        return shoal_pb2.Query(text=text)
    return shoal_pb2.Query(text=text, vector_f32=vector.tobytes())


def load_collection(address: str, docs: list[dict[str, object]], vectors: Matrix) -> None:
    """The benchmark collection, created and loaded with the documents' vectors and texts."""
    with Client(address, timeout=600) as client:
        client.create_collection(services.COLLECTION, dimension=vectors.shape[1])
    services.call_all(
        address,
        "/shoal.v1.ShoalService/Upsert",
        _upserts(services.COLLECTION, docs, vectors, 500),
    )


def single_requests(collection: str, mode: str, texts: list[str], vectors: Matrix) -> list[bytes]:
    return [
        shoal_pb2.SearchRequest(
            collection=collection,
            query=_query(mode, text, vector),
            k=K,
            include=NOTHING,
            mode=_MODE[mode],
        ).SerializeToString()
        for text, vector in zip(texts, vectors, strict=True)
    ]


def _batches(
    collection: str,
    mode: str,
    texts: list[str],
    vectors: Matrix,
    size: int,
) -> list[bytes]:
    return [
        shoal_pb2.SearchBatchRequest(
            collection=collection,
            queries=[
                _query(mode, t, v)
                for t, v in zip(texts[s : s + size], vectors[s : s + size], strict=True)
            ],
            k=K,
            include=NOTHING,
            mode=_MODE[mode],
        ).SerializeToString()
        for s in range(0, len(texts), size)
    ]


def search_suite(args: argparse.Namespace, workdir: Path) -> None:
    modes = len(MODES)
    docs, doc_vectors, texts, query_vectors = load_data(
        args.dataset, args.documents, args.queries * modes
    )
    print(f"\n### Search: {len(docs):,} documents of {args.dataset}, k={K}\n")
    print(
        "| groups | mode | one at a time QPS | p50 ms | p99 ms | "
        f"{args.in_flight} in flight QPS | SearchBatch({args.batch}) queries/s |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for groups in args.groups:
        with services.cluster(
            workdir / f"search-{groups}", groups, 1, services.NO_CHECKPOINTS
        ) as running:
            address = running.address
            load_collection(address, docs, doc_vectors)
            if args.known_words:
                # Every query's words seen once by the coordinator (keyword SearchBatch).
                services.call_all(
                    address,
                    "/shoal.v1.ShoalService/SearchBatch",
                    _batches(services.COLLECTION, "keyword", texts, query_vectors, args.batch),
                )
            # One at a time, the modes taking turns call by call, so the p50s are measured
            # under the same load; each mode with queries of its own, so no call finds
            # the caches (the coordinator's term statistics, the shard's scored
            # postings) warmed by another mode's call of the same query.
            ones = loadgen.alternating(
                address,
                "/shoal.v1.ShoalService/Search",
                {
                    mode: single_requests(
                        services.COLLECTION, mode, texts[own::modes], query_vectors[own::modes]
                    )
                    for own, mode in enumerate(MODES)
                },
                args.seconds * modes,
            )
            # The other measurements: the same queries in every mode.
            texts_all, vectors_all = texts[: args.queries], query_vectors[: args.queries]
            p50s = {}
            for mode in MODES:
                one = ones[mode]
                many = loadgen.concurrent(
                    address,
                    "/shoal.v1.ShoalService/Search",
                    single_requests(services.COLLECTION, mode, texts_all, vectors_all),
                    args.in_flight,
                    args.seconds,
                )
                batches = _batches(services.COLLECTION, mode, texts_all, vectors_all, args.batch)
                batched = loadgen.sequential(
                    address, "/shoal.v1.ShoalService/SearchBatch", batches, args.seconds, warmup=1
                )
                latency = Latency.of(one.latencies)
                p50s[mode] = latency.p50
                answered = (
                    min(args.batch, len(texts_all) - i * args.batch) for i in range(batched.count)
                )
                batch_qps = sum(answered) / batched.seconds
                print(
                    f"| {groups} | {mode} | {one.count / one.seconds:,.0f} | {latency.p50:.2f} |"
                    f" {latency.p99:.2f} | {many.count / many.seconds:,.0f} | {batch_qps:,.0f} |"
                )
            ratio = p50s["hybrid"] / p50s["vector"]
            print(f"\n{groups} group(s): hybrid p50 / vector p50 = {ratio:.2f} (bar: <= 1.5)\n")


def ingest_suite(args: argparse.Namespace, workdir: Path) -> None:
    docs, doc_vectors, _, _ = load_data(args.dataset, args.documents, 1)
    rates: dict[bool, list[float]] = {True: [], False: []}
    with services.cluster(workdir / "ingest", 1, 1) as running:
        address = running.address
        for run in range(args.ingest_runs):
            for keyword in (True, False):
                name = f"ingest-{run}-{'kw' if keyword else 'nokw'}"
                with Client(address, timeout=600) as client:
                    client.create_collection(name, dimension=doc_vectors.shape[1], keyword=keyword)
                requests = _upserts(name, docs, doc_vectors, args.ingest_batch)
                calls = services.call_all(address, "/shoal.v1.ShoalService/Upsert", requests)
                rates[keyword].append(len(docs) / calls.seconds)
                services.drop_collection(address, name)
    on, off = statistics.median(rates[True]), statistics.median(rates[False])
    print(f"\n### Ingest: Upsert with vectors and texts, batch {args.ingest_batch}, 1 group, R=1\n")
    print("| keyword index | documents/s (median of runs) | runs |")
    print("|---|---:|---|")
    print(f"| on | {on:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[True])} |")
    print(f"| off | {off:,.0f} | {', '.join(f'{r:,.0f}' for r in rates[False])} |")
    print(f"\nthe index costs {100 * (1 - on / off):.1f}% of upsert throughput (bar: <= 25%)\n")


def _build(texts: Sequence[str], batch: int = 1024) -> KeywordIndex:
    """The index of `texts`, fed in batches as a shard opening the collection does."""
    index = KeywordIndex(KeywordSettings(), label_space=len(texts))
    for start in range(0, len(texts), batch):
        chunk = texts[start : start + batch]
        index.put(range(start, start + len(chunk)), index.analyze(chunk))
    return index


def memory_suite(args: argparse.Namespace) -> None:
    docs, _, _, _ = load_data(args.dataset, args.documents, 1)
    texts = [str(doc["text"]) for doc in docs]
    tracemalloc.start()
    started = time.perf_counter()
    index = _build(texts)
    seconds = time.perf_counter() - started
    allocated, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"\n### Keyword index memory and build time: {len(texts):,} texts of {args.dataset}\n")
    print("| arrays bytes/doc | allocated bytes/doc (tracemalloc) | build s (tracing on) |")
    print("|---:|---:|---:|")
    print(f"| {index.nbytes() / len(texts):,.0f} | {allocated / len(texts):,.0f} | {seconds:.2f} |")
    started = time.perf_counter()
    _build(texts)
    print(f"\nbuild without tracing: {time.perf_counter() - started:.2f} s\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.hybrid", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--dataset", default="debian-20k")
    parser.add_argument("--documents", type=int, default=20_000)
    parser.add_argument("--queries", type=int, default=1_000)
    parser.add_argument("--groups", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--seconds", type=float, default=20.0, help="per measurement, at most")
    parser.add_argument("--in-flight", type=int, default=8)
    parser.add_argument(
        "--known-words",
        action="store_true",
        help="search every query's words once before measuring: the coordinator knows their"
        " statistics (with more than one group, a word it has not seen costs a round trip)",
    )
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--ingest-batch", type=int, default=100)
    parser.add_argument("--ingest-runs", type=int, default=3)
    parser.add_argument(
        "--only",
        choices=["search", "ingest", "memory"],
        nargs="+",
        default=["search", "ingest", "memory"],
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-hybrid-") as tmp:
        if "memory" in args.only:
            memory_suite(args)
        if "search" in args.only:
            search_suite(args, Path(tmp))
        if "ingest" in args.only:
            ingest_suite(args, Path(tmp))


if __name__ == "__main__":
    main()
