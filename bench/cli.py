"""`python -m bench`: run the suites, then write the report section, the plots and the JSON."""

import argparse
import datetime
import logging
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import datasets, machine, plots, report
from bench.embedding import EmbedSuite
from bench.ingest import IngestSuite
from bench.markdown import replace_section
from bench.memory import MemorySuite
from bench.plans import PLANS, SUITES, Plan, customized
from bench.samples import Recorder, aggregate
from bench.search import SearchSuite

log = logging.getLogger("bench")

TITLES = {
    "quick": "Quick run (`make bench`)",
    "full": "Full run (`make bench-full`)",
    "full-1m": "1M vectors (`make bench-1m`)",
}
DOCUMENT_HEAD = """# Benchmarks

Generated sections below are rewritten by `python -m bench`; see bench/README.md.
"""


def _names(text: str, allowed: Sequence[str], what: str) -> tuple[str, ...]:
    names = tuple(name.strip() for name in text.split(",") if name.strip())
    unknown = [name for name in names if name not in allowed]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"{what}: {unknown or text!r}; use some of {list(allowed)}"
        )
    return names


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument(
        "--quick",
        dest="plan",
        action="store_const",
        const="quick",
        help="about 5 minutes: debian-20k, 3 runs (the default)",
    )
    size.add_argument(
        "--full",
        dest="plan",
        action="store_const",
        const="full",
        help="debian-20k and a generated 100k set, more ef values, 5 runs",
    )
    size.add_argument(
        "--full-1m",
        dest="plan",
        action="store_const",
        const="full-1m",
        help="search and memory on a generated 1M set (long)",
    )
    parser.set_defaults(plan="quick")
    parser.add_argument(
        "--only",
        type=lambda text: _names(text, SUITES, "--only"),
        help=f"comma-separated suites among {','.join(SUITES)} (default: the plan's)",
    )
    parser.add_argument("--runs", type=int, help="repetitions; figures are their medians")
    parser.add_argument(
        "--datasets",
        type=lambda text: _names(text, [*datasets.REAL, *datasets.GENERATED], "--datasets"),
        help="search data sets instead of the plan's",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("docs/benchmarks.md"),
        help="markdown file whose generated section for this plan is rewritten",
    )
    parser.add_argument("--img-dir", type=Path, help="where the PNGs go (default: <out dir>/img)")
    parser.add_argument("--json", type=Path, help="also write every sample here")
    parser.add_argument(
        "--from-json", type=Path, help="no measuring: rewrite the report from a --json file"
    )
    parser.add_argument("--workdir", type=Path, help="data dirs and logs (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def source_version() -> str:
    """The commit measured, and whether the services' code had uncommitted changes."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "shard", "coordinator", "embedder", "shoal"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes to the services" if changed else commit


def measure(plan: Plan, recorder: Recorder, workdir: Path) -> dict[str, Any]:
    """Run the plan's suites; return what the report says about the data sets."""
    sources: dict[str, str] = {}
    queries: dict[str, int] = {}
    if "search" in plan.suites:
        suite = SearchSuite(plan, recorder, workdir)
        for name in plan.search.datasets:
            log.info("search: loading %s", name)
            data = datasets.load(name, plan.search.queries)
            sources[name], queries[name] = data.source, len(data.queries)
            suite.run(data)
            del data
    if "ingest" in plan.suites:
        IngestSuite(plan, recorder, workdir).run()
    if "embed" in plan.suites:
        EmbedSuite(plan, recorder, workdir).run()
    if "memory" in plan.suites:
        MemorySuite(plan, recorder, workdir).run()
    return {"sources": sources, "queries": queries}


def write_report(
    out: Path, img_dir: Path, recorder: Recorder, meta: dict[str, Any]
) -> list[report.Target]:
    aggregates = aggregate(recorder.samples)
    plan_name = str(meta["plan"])

    def plot(dataset: str) -> list[str]:
        paths = plots.draw(aggregates, plan_name, dataset, int(meta["ef"]), img_dir)
        return [os.path.relpath(path, out.parent) for path in paths]

    body = report.section(plan_name, aggregates, meta, recorder.notes, plot)
    document = out.read_text() if out.exists() else DOCUMENT_HEAD
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(replace_section(document, plan_name, body))
    return report.targets(aggregates, int(meta["ef"]))


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr
    )
    args = parse_args(argv)
    img_dir = args.img_dir or args.out.parent / "img"
    if args.from_json:
        recorder, meta = Recorder.load(args.from_json)
    else:
        plan = customized(PLANS[args.plan], args.runs, args.only, args.datasets)
        recorder = Recorder()
        started = time.perf_counter()
        described = machine.describe()
        source = source_version()  # before measuring: other work may commit meanwhile
        with tempfile.TemporaryDirectory(prefix="shoal-bench-") as tmp:
            workdir = args.workdir or Path(tmp)
            found = measure(plan, recorder, workdir)
        meta = {
            "plan": plan.name,
            "title": TITLES[plan.name],
            "date": datetime.date.today().isoformat(),
            "minutes": (time.perf_counter() - started) / 60,
            "command": "python -m bench " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "runs": plan.runs,
            "source": source
            if source == source_version()
            else f"{source} at the start,"
            f" {source_version()} at the end (the tree changed during the run)",
            "load_end": " / ".join(f"{value:.2f}" for value in os.getloadavg()),
            "machine": described.lines(),
            "threads": plan.threads,
            "shard_threads": max(4, 2 * (os.cpu_count() or 1)),
            "m": plan.hnsw_m,
            "ef_construction": plan.hnsw_ef_construction,
            "ef": plan.hnsw_ef,
            **found,
        }
        if args.json:
            recorder.dump(args.json, meta)
    found_targets = write_report(args.out, img_dir, recorder, meta)
    print(report.targets_table(found_targets))
    print(f"\nwrote {args.out} and plots in {img_dir}")
