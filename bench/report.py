"""The generated section of docs/benchmarks.md: headline targets, tables, plot links."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench import embedding, ingest, memory, search
from bench.markdown import number, percent, significant, table
from bench.samples import Aggregate, select


@dataclass(frozen=True)
class Target:
    """One target of the issue, as measured: `met` is None where it was not measured."""

    what: str
    dataset: str
    measured: str
    target: str
    met: bool | None


def _ratio_target(
    aggregates: Sequence[Aggregate],
    what: str,
    suite: str,
    system: str,
    mode: str,
    least: float,
    **params: int,
) -> list[Target]:
    targets = []
    for found in select(aggregates, suite=suite, system=system, mode=mode, params=params):
        value = found.get("ratio")
        detail = ""
        if suite == "search-ratio":
            detail = (
                f" ({number(found.get('qps'))} vs {number(found.get('reference_qps'))} QPS,"
                f" ef {number(found.get('ef'))} vs {number(found.get('reference_ef'))})"
            )
        targets.append(
            Target(
                what,
                found.dataset,
                percent(value) + detail,
                f"≥ {percent(least)}",
                None if value is None else value >= least,
            )
        )
    return targets


def targets(aggregates: Sequence[Aggregate], ef: int) -> list[Target]:
    """The issue's targets, each for every data set and shard-group count measured."""
    found: list[Target] = []
    systems = sorted(
        {a.system for a in select(aggregates, suite="search-ratio")},
        key=lambda name: (not name.startswith("coordinator"), name),
    )
    for system in systems:
        if not system.startswith("coordinator"):
            continue
        found += _ratio_target(
            aggregates,
            f"SearchBatch via {system}, QPS at recall@10 ≥ 0.95 / in-process hnswlib",
            "search-ratio",
            system,
            search.BATCH,
            0.70,
        )
        found += _ratio_target(
            aggregates,
            f"concurrent single-query Search via {system} / in-process hnswlib",
            "search-ratio",
            system,
            search.CONCURRENT,
            0.40,
        )
    for shard in select(
        aggregates, suite="search", system=search.SHARD, mode=search.SEQUENTIAL, params={"ef": ef}
    ):
        coordinator = select(
            aggregates,
            suite="search",
            dataset=shard.dataset,
            system=search.coordinator(1),
            mode=search.SEQUENTIAL,
            params={"ef": ef},
        )
        if not coordinator:
            continue
        p50 = _difference(coordinator[0].get("p50_ms"), shard.get("p50_ms"))
        p99 = _quotient(coordinator[0].get("p99_ms"), shard.get("p99_ms"))
        found.append(
            Target(
                f"coordinator x1 p50 - single-shard p50 (sequential, ef {ef})",
                shard.dataset,
                "-"
                if p50 is None
                else f"{p50:+.2f} ms ({coordinator[0].get('p50_ms'):.2f}"
                f" vs {shard.get('p50_ms'):.2f} ms)",
                "≤ +0.50 ms",
                None if p50 is None else p50 <= 0.5,
            )
        )
        found.append(
            Target(
                f"coordinator x1 p99 / single-shard p99 (sequential, ef {ef})",
                shard.dataset,
                "-"
                if p99 is None
                else f"{p99:.2f}x ({coordinator[0].get('p99_ms'):.2f}"
                f" vs {shard.get('p99_ms'):.2f} ms)",
                "≤ 2x",
                None if p99 is None else p99 <= 2.0,
            )
        )
    for mode in [
        a.mode for a in select(aggregates, suite=embedding.SUITE, system=embedding.SERVICE)
    ]:
        if mode == "1 in flight":
            continue
        found += _ratio_target(
            aggregates,
            f"embedder, {mode} single-text calls / raw encode (batch 64)",
            embedding.SUITE,
            embedding.SERVICE,
            mode,
            0.80,
        )
    for aggregate in select(aggregates, suite=ingest.SUITE, system=ingest.coordinator(1)):
        found += _ratio_target(
            aggregates,
            f"Upsert with vectors, R=1, batch {aggregate.params['batch']} / raw add_items",
            ingest.SUITE,
            ingest.coordinator(1),
            aggregate.mode,
            0.50,
            batch=aggregate.params["batch"],
        )
    return found


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _quotient(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "**missed**", None: "-"}[met]


def targets_table(found: Sequence[Target]) -> str:
    return table(
        ["target", "data", "measured (median)", "goal", ""],
        [[t.what, t.dataset, t.measured, t.target, _verdict(t.met)] for t in found],
        "llrrl",
    )


def _cpu(aggregate: Aggregate, process: str) -> str:
    return significant(aggregate.get(f"cpu_{process}_us"))


def _recall(aggregate: Aggregate) -> str:
    value = aggregate.get("recall")
    return "-" if value is None else f"{value:.3f}"


def search_tables(aggregates: Sequence[Aggregate], dataset: str, ef: int) -> list[str]:
    """The recall-matched ratios, the latency/CPU table at one ef, and the whole curve."""
    ratios = select(aggregates, suite="search-ratio", dataset=dataset)
    matched = table(
        ["system", "mode", "ef", "recall@10", "QPS", "x hnswlib, all cores",
         "x hnswlib, 1 thread", "engine share of CPU"],
        [
            [
                a.system, a.mode, number(a.get("ef")), _recall(a), number(a.get("qps")),
                percent(a.get("ratio")), percent(a.get("ratio_single_thread")),
                percent(a.get("engine_cpu_share")),
            ]
            for a in ratios
        ],
        "llrrrrrr",
    )  # fmt: skip
    at_ef = sorted(
        (
            a
            for a in select(aggregates, suite="search", dataset=dataset)
            if a.params.get("ef") == ef or a.system in search.FLOORS
        ),
        key=lambda a: search.system_order(a.system),
    )
    latency = table(
        ["system", "mode", "recall@10", "QPS", "p50 ms", "p90 ms", "p99 ms",
         "CPU µs/query: client", "coordinator", "shards", "total"],
        [
            [
                a.system, a.mode, _recall(a), number(a.get("qps")), significant(a.get("p50_ms")),
                significant(a.get("p90_ms")), significant(a.get("p99_ms")), _cpu(a, "client"),
                _cpu(a, "coordinator"), _cpu(a, "shards") if a.get("cpu_shards_us") is not None
                else _cpu(a, "server"),
                significant(a.get("cpu_total_us") or a.get("cpu_engine_us")),
            ]
            for a in at_ef
        ],
        "llrrrrrrrrr",
    )  # fmt: skip
    curve = sorted(
        (a for a in select(aggregates, suite="search", dataset=dataset) if a.get("recall")),
        key=lambda a: (a.system, a.mode, a.params.get("ef", 0)),
    )
    everything = table(
        ["system", "mode", "ef", "recall@10", "QPS", "p50 ms", "p99 ms", "CPU µs/query"],
        [
            [
                a.system, a.mode, number(a.params.get("ef")), _recall(a), number(a.get("qps")),
                significant(a.get("p50_ms")), significant(a.get("p99_ms")),
                significant(a.get("cpu_total_us") or a.get("cpu_engine_us")),
            ]
            for a in curve
        ],
        "llrrrrrr",
    )  # fmt: skip
    return [
        "Best throughput at recall@10 ≥ 0.95 (per run, the fastest ef that reaches it; then the"
        " median over runs), against in-process hnswlib on every core (`knn_query` over batches"
        " of 100, the reference for the targets) and on one thread (one `knn_query` per query,"
        " as ann-benchmarks runs it). Engine share of CPU: in-process hnswlib's CPU per query at"
        " that ef over the CPU all processes (client, coordinator, shards) spent per query.",
        matched,
        f"Latency and CPU per query at ef {ef} (the collection default), with the floors: the"
        " shard's health check (Shoal's server stack, no index), an empty grpc.aio handler, and"
        " one with a thread-pool hop (`python -m bench.floor_server`). CPU per query is each"
        " process's CPU clock over the measurement (every thread); the client is the benchmark"
        " process (requests serialized in advance, answers parsed afterwards); for in-process"
        " hnswlib the total is its own CPU.",
        latency,
        "<details><summary>Every system, mode and ef (medians)</summary>\n\n"
        + everything
        + "\n\n</details>",
    ]


def ingest_table(aggregates: Sequence[Aggregate]) -> str:
    rows = sorted(
        select(aggregates, suite=ingest.SUITE),
        key=lambda a: (a.params["replication"], a.params["batch"], a.system != ingest.RAW),
    )
    return table(
        [
            "system",
            "R",
            "batch",
            "documents/s",
            "x add_items",
            "CPU µs/doc: coordinator",
            "shards",
            "client",
        ],
        [
            [
                a.system,
                str(a.params["replication"]),
                str(a.params["batch"]),
                number(a.get("docs_per_s")),
                percent(a.get("ratio")),
                _cpu(a, "coordinator"),
                _cpu(a, "shards"),
                _cpu(a, "client"),
            ]
            for a in rows
        ],
        "lrrrrrrr",
    )


def embed_table(aggregates: Sequence[Aggregate]) -> str:
    return table(
        [
            "system",
            "calls",
            "texts/s",
            "x encode",
            "mean batch",
            "CPU µs/text: embedder",
            "client",
            "min cosine vs encode",
        ],
        [
            [
                a.system,
                a.mode,
                number(a.get("texts_per_s")),
                percent(a.get("ratio")),
                significant(a.get("mean_batch")),
                _cpu(a, "embedder"),
                _cpu(a, "client"),
                "-" if a.get("min_cosine") is None else f"{a.get('min_cosine'):.6f}",
            ]
            for a in select(aggregates, suite=embedding.SUITE)
        ],
        "llrrrrrr",
    )


def memory_table(aggregates: Sequence[Aggregate]) -> str:
    rows = select(aggregates, suite=memory.SUITE)
    return table(
        [
            "data",
            "state",
            "documents",
            "RSS MiB",
            "bytes/document over empty",
            "start-up s",
            "shard's load s",
        ],
        [
            [
                a.dataset,
                a.mode,
                number(a.params.get("documents")),
                number(a.get("rss_mib")),
                number(a.get("bytes_per_doc")),
                significant(a.get("start_s")),
                significant(a.get("load_s")),
            ]
            for a in rows
        ],
        "llrrrrr",
    )


def section(
    plan_name: str,
    aggregates: Sequence[Aggregate],
    meta: dict[str, Any],
    notes: dict[str, str],
    plots: Callable[[str], list[str]],
) -> str:
    """The whole generated section for one plan."""
    ef = int(meta["ef"])
    lines = [
        f"## {meta['title']}",
        "",
        f"Measured {meta['date']} in {meta['minutes']:.0f} minutes with:",
        "",
        "```sh",
        str(meta["command"]),
        "```",
        "",
        f"Code: {meta.get('source', 'unknown')}. Figures are medians of {meta['runs']} runs."
        " Machine:",
        "",
        *[f"- {line}" for line in meta["machine"]],
        f"- load average at the end: {meta.get('load_end', 'not recorded')} (other work shares"
        " these cores: medians and same-run ratios are the figures to trust)",
        "",
        f"Same cores for everything: {meta['threads']} hnswlib threads in-process (hnswlib's"
        " default, every core, which is what knn_query and add_items use inside the shard too);"
        f" the shard runs its default {meta['shard_threads']} request threads. HNSW M"
        f" {meta['m']}, ef_construction {meta['ef_construction']}, cosine, k 10.",
        "",
        "### Targets",
        "",
        targets_table(targets(aggregates, ef)),
        "",
    ]
    datasets = list(dict.fromkeys(a.dataset for a in select(aggregates, suite="search")))
    for dataset in datasets:
        lines += [f"### Search: {dataset}", ""]
        if dataset in meta.get("sources", {}):
            lines += [f"{meta['sources'][dataset]}; {meta['queries'][dataset]:,} queries.", ""]
        lines += [f"![recall vs QPS, {dataset}]({path})" for path in plots(dataset)] + [""]
        for part in search_tables(aggregates, dataset, ef):
            lines += [part, ""]
    if select(aggregates, suite=ingest.SUITE):
        lines += ["### Ingest", "", ingest_table(aggregates), ""]
    if select(aggregates, suite=embedding.SUITE):
        lines += ["### Embedding", "", embed_table(aggregates), ""]
    if select(aggregates, suite=memory.SUITE):
        lines += ["### Memory and start-up", "", memory_table(aggregates), ""]
    if notes:
        lines += ["### Notes from this run", ""] + [f"- {text}" for text in notes.values()] + [""]
    return "\n".join(lines)
