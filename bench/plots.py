"""PNG plots for docs/benchmarks.md: recall vs QPS, latency percentiles, CPU per query."""

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display

import matplotlib.pyplot as plt

from bench import search
from bench.samples import Aggregate, select

_MARKERS = {search.BATCH: "o", search.CONCURRENT: "s", search.SEQUENTIAL: "^", search.THREADS: "x"}
_STYLES = {search.BATCH: "-", search.CONCURRENT: "--", search.SEQUENTIAL: ":", search.THREADS: "-."}


#: One colour per process across every plot.
_PROCESS_COLOURS = {"shards": "C0", "coordinator": "C1", "server": "C2", "client": "C3"}


def _systems(aggregates: Sequence[Aggregate], dataset: str) -> list[str]:
    return list(
        dict.fromkeys(a.system for a in select(aggregates, suite="search", dataset=dataset))
    )


def recall_qps(aggregates: Sequence[Aggregate], dataset: str, path: Path) -> None:
    figure, axes = plt.subplots(figsize=(9, 6))
    colours = plt.get_cmap("tab10")
    for number, system in enumerate(_systems(aggregates, dataset)):
        if system == search.FLOOR:
            continue
        for mode in (search.BATCH, search.CONCURRENT, search.SEQUENTIAL):
            points = sorted(
                (a.params["ef"], a.values["recall"], a.values["qps"])
                for a in select(
                    aggregates, suite="search", dataset=dataset, system=system, mode=mode
                )
                if "recall" in a.values
            )
            if not points:
                continue
            axes.plot(
                [p[1] for p in points],
                [p[2] for p in points],
                linestyle=_STYLES[mode],
                marker=_MARKERS[mode],
                color=colours(number),
                label=f"{system}, {mode}",
                markersize=4,
            )
    axes.axvline(0.95, color="grey", linewidth=0.8)
    axes.set_yscale("log")
    axes.set_xlabel("recall@10")
    axes.set_ylabel("queries per second (log)")
    axes.set_title(f"Recall vs QPS, {dataset} (medians; points are ef values)")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=7, ncol=2)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def latency(aggregates: Sequence[Aggregate], dataset: str, ef: int, path: Path) -> None:
    modes = (search.SEQUENTIAL, search.CONCURRENT)
    figure, panes = plt.subplots(1, len(modes), figsize=(11, 4.5))
    for pane, mode in zip(panes, modes, strict=True):
        rows = sorted(
            (
                a
                for a in select(aggregates, suite="search", dataset=dataset, mode=mode)
                if a.params.get("ef") in (ef, 0) and "p50_ms" in a.values
            ),
            key=lambda a: search.system_order(a.system),
        )
        names = [a.system for a in rows]
        width = 0.27
        for offset, (field, label) in enumerate(
            (("p50_ms", "p50"), ("p90_ms", "p90"), ("p99_ms", "p99"))
        ):
            pane.bar(
                [i + (offset - 1) * width for i in range(len(rows))],
                [a.values[field] for a in rows],
                width,
                label=label,
            )
        pane.set_xticks(range(len(rows)))
        pane.set_xticklabels(names, rotation=25, ha="right", fontsize=7)
        pane.set_ylabel("milliseconds")
        pane.set_title(f"{mode} Search, ef {ef}")
        pane.grid(True, axis="y", alpha=0.3)
        pane.legend(fontsize=7)
    figure.suptitle(f"Latency percentiles, {dataset} (medians)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def cpu_per_query(aggregates: Sequence[Aggregate], dataset: str, ef: int, path: Path) -> None:
    """Where a query's CPU goes, per process, next to what hnswlib itself needs."""
    figure, panes = plt.subplots(1, 2, figsize=(12, 4.8), width_ratios=[3, 2])
    panels = (
        (search.CONCURRENT, search.SEQUENTIAL, "single-query Search, 16 in flight"),
        (search.BATCH, search.BATCH, "SearchBatch, 100 queries per call"),
    )
    for pane, (mode, engine_mode, title) in zip(panes, panels, strict=True):
        rows = sorted(
            (
                a
                for a in select(aggregates, suite="search", dataset=dataset, mode=mode)
                if a.params.get("ef") in (ef, 0) and "cpu_total_us" in a.values
            ),
            key=lambda a: search.system_order(a.system),
        )
        bottom = [0.0] * len(rows)
        for process in ("shards", "coordinator", "server", "client"):
            heights = [a.values.get(f"cpu_{process}_us", 0.0) for a in rows]
            if any(heights):
                pane.bar(
                    range(len(rows)),
                    heights,
                    bottom=bottom,
                    label=process,
                    color=_PROCESS_COLOURS[process],
                )
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
        engine = select(
            aggregates,
            suite="search",
            dataset=dataset,
            system=search.HNSWLIB,
            mode=engine_mode,
            params={"ef": ef},
        )
        if engine and "cpu_engine_us" in engine[0].values:
            value = engine[0].values["cpu_engine_us"]
            pane.axhline(value, color="black", linewidth=1, linestyle="--")
            pane.annotate(
                f"hnswlib in-process: {value:.0f} µs",
                (0, value),
                fontsize=7,
                xytext=(0, 3),
                textcoords="offset points",
            )
        pane.set_xticks(range(len(rows)))
        pane.set_xticklabels(
            [a.system.replace(": ", ":\n") for a in rows], rotation=30, ha="right", fontsize=7
        )
        pane.set_ylabel("CPU µs per query")
        pane.set_title(title, fontsize=9)
        pane.legend(fontsize=7)
        pane.grid(True, axis="y", alpha=0.3)
    figure.suptitle(f"CPU per query by process, {dataset}, ef {ef} (medians)")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def draw(
    aggregates: Sequence[Aggregate], plan: str, dataset: str, ef: int, directory: Path
) -> list[Path]:
    """Every plot for one data set; the files are named after the plan and the data set."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = [
        directory / f"bench-{plan}-{dataset}-recall-qps.png",
        directory / f"bench-{plan}-{dataset}-latency.png",
        directory / f"bench-{plan}-{dataset}-cpu.png",
    ]
    recall_qps(aggregates, dataset, paths[0])
    latency(aggregates, dataset, ef, paths[1])
    cpu_per_query(aggregates, dataset, ef, paths[2])
    return paths
