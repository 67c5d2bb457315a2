"""Concurrent single Search through shoal.Client: this checkout against another, one run.

Issue 13's bar for single searches is "1.5x today's figure on the same machine in
the same run". The machine's speed drifts between windows, so both codes are
measured here alternately, each with its own services and its own SDK (the
worker runs with PYTHONPATH set to that checkout), and the ratio of their
medians is the figure.

    git worktree add /tmp/shoal-before e070e1f^1   # the code before the SDK work
    python -m bench.sdk_ab --baseline /tmp/shoal-before --runs 3 --seconds 10
"""

import argparse
import json
import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

from bench.datasets import DATA_ROOT
from bench.markdown import number, table
from bench.stats import median, ratio

WORKER = Path(__file__).with_name("sdk_ab_worker.py")
HERE = Path(__file__).resolve().parent.parent


def measure(checkout: Path, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    env = dict(os.environ, PYTHONPATH=str(checkout))
    command = [
        sys.executable, str(WORKER), "--data", str(DATA_ROOT / args.dataset),
        "--seconds", str(args.seconds), "--concurrency", str(args.concurrency),
        "--ef", str(args.ef),
    ]  # fmt: skip
    done = subprocess.run(
        command, cwd=checkout, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"the worker failed in {checkout}:\n{done.stderr[-3000:]}")
    figures: dict[str, dict[str, float]] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--baseline", type=Path, required=True, help="the other checkout")
    parser.add_argument("--dataset", default="debian-20k")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--ef", type=int, default=32)
    args = parser.parse_args(argv)
    checkouts = {"before": args.baseline.resolve(), "after": HERE}
    qps: dict[tuple[str, str], list[float]] = defaultdict(list)
    cpu: dict[tuple[str, str], list[float]] = defaultdict(list)
    for run in range(args.runs):
        for code, checkout in checkouts.items():
            for way, figure in measure(checkout, args).items():
                qps[code, way].append(figure["qps"])
                cpu[code, way].append(figure["client_cpu_us"])
                print(f"run {run + 1} {code}: {way}: {figure['qps']:.0f} QPS", file=sys.stderr)
    baseline = median(qps["before", "Client, reading each hit"])
    rows = [
        [code, way, number(median(values)), number(median(cpu[code, way]), 1),
         f"{ratio(median(values), baseline):.2f}x"]
        for (code, way), values in qps.items()
    ]  # fmt: skip
    command = f"python -m bench.sdk_ab --baseline {args.baseline} --runs {args.runs}"
    print(f"`{command} --seconds {args.seconds:g}`")
    print(
        f"({args.dataset}, 1 group, R=1, ef {args.ef}, {args.concurrency} threads;"
        f" medians of {args.runs} runs)\n"
    )
    headers = [
        "code",
        "client",
        "single Search QPS",
        "client CPU µs/query",
        "/ before, reading each hit",
    ]
    print(table(headers, rows, "llrrr"))


if __name__ == "__main__":
    main()
