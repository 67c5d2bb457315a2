"""`python -m bench.profile`: where a request's time goes inside the services.

Starts a cluster loaded with a data set, drives one kind of load at it, and
meanwhile samples every service process with py-spy (`pip install py-spy`).
For each process it reports CPU and context switches per query (from /proc)
and the share of samples per layer: hnswlib, gRPC's own machinery, the thread
pool hand-off, the event loop, Shoal's code, metrics, request ids... Raw
collapsed stacks are kept for flame graphs (flamegraph.pl, speedscope).

    python -m bench.profile --target shard --mode single --seconds 15
    python -m bench.profile --target coordinator --groups 2 --mode batch
"""

import argparse
import collections
import re
import shutil
import subprocess
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import datasets, loadgen, messages, services
from bench.procfs import cpu_seconds

#: Layers a sample is charged to: the innermost frame that matches decides.
LAYERS: tuple[tuple[str, str], ...] = (
    (r"^Handle\._run \(asyncio/events\.py:\d+\)$", "gRPC Cython callbacks on the event loop"),
    (r"hnswlib|HnswIndex\.(search|add|update)", "hnswlib"),
    (r"prometheus_client|shoal/metrics", "metrics"),
    (r"uuid|shoal/logs", "request ids, logging"),
    (r"shoal/status|shoal/handlers", "handler wrappers, error mapping"),
    (r"grpc/aio|grpc/_", "gRPC Python layer (calls to other services)"),
    (r"concurrent/futures|queue\.py|_worker", "thread-pool hand-off"),
    (r"threading\.py", "other threads (gRPC poller...)"),
    (r"asyncio/", "asyncio event loop"),
    (r"selectors\.py", "epoll"),
    (r"numpy", "numpy"),
    (r"google/protobuf|_pb2", "protobuf (Python)"),
    (r"coordinator/", "coordinator code"),
    (r"shard/", "shard code"),
    (r"embedder/", "embedder code"),
    (r"shoal/", "shoal package"),
)


def layer_shares(collapsed: str) -> dict[str, float]:
    """Share of samples per layer in py-spy's raw (collapsed) output."""
    counts: collections.Counter[str] = collections.Counter()
    total = 0
    compiled = [(re.compile(pattern), name) for pattern, name in LAYERS]
    for line in collapsed.splitlines():
        stack, _, number = line.rstrip().rpartition(" ")
        if not stack or not number.isdigit():
            continue
        samples = int(number)
        total += samples
        counts[_layer(stack.split(";"), compiled)] += samples
    return {name: count / total for name, count in counts.most_common()} if total else {}


def _layer(frames: Sequence[str], compiled: Sequence[tuple[re.Pattern[str], str]]) -> str:
    for frame in reversed(frames):
        for pattern, name in compiled:
            if pattern.search(frame):
                return name
    return "other"


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of a process's live threads."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            status = (task / "status").read_text()
        except (FileNotFoundError, ProcessLookupError):
            continue
        for line in status.splitlines():
            if "ctxt_switches:" in line:
                total += int(line.split()[1])
    return total


@dataclass(frozen=True)
class Load:
    address: str
    method: str
    requests: list[bytes]
    in_flight: int
    queries_per_call: int


def _load(
    target: str, mode: str, cluster_address: str, shard_address: str, data: datasets.VectorSet
) -> Load:
    name, k, ef = services.COLLECTION, 10, 64
    queries = data.queries
    if target == "shard":
        batch = 1 if mode == "single" else 100
        requests = messages.shard_search_requests(name, queries, k, ef, batch)
        return Load(
            shard_address, messages.SHARD_SEARCH, requests * 200, 16 if batch == 1 else 2, batch
        )
    if mode == "single":
        requests = messages.search_requests(name, queries, k, ef)
        return Load(cluster_address, messages.SEARCH, requests * 200, 16, 1)
    requests = messages.search_batch_requests(name, queries, k, ef, 100)
    return Load(cluster_address, messages.SEARCH_BATCH, requests * 200, 2, 100)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--dataset", default="debian-20k")
    parser.add_argument("--groups", type=int, default=1)
    parser.add_argument("--target", choices=("shard", "coordinator"), default="coordinator")
    parser.add_argument("--mode", choices=("single", "batch"), default="single")
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--out", type=Path, default=Path("/tmp/shoal-profile"))
    args = parser.parse_args(argv)
    py_spy = shutil.which("py-spy")
    if py_spy is None:
        raise SystemExit("py-spy is not installed: pip install py-spy")
    args.out.mkdir(parents=True, exist_ok=True)
    data = datasets.load(args.dataset, 2000)
    with services.cluster(args.out / "cluster", args.groups, 1, services.NO_CHECKPOINTS) as running:
        services.create_collection(running.address, services.COLLECTION, 16, 200, 64)
        services.call_all(
            running.address,
            messages.UPSERT,
            messages.upsert_requests(services.COLLECTION, data.documents, 1000),
        )
        processes = {"coordinator": services.pid(running.coordinator)}
        processes |= {shard.name: services.pid(shard) for shard in running.all_shards}
        if args.target == "shard":
            processes = {name: pid for name, pid in processes.items() if name == "shard-0-0"}
        load = _load(args.target, args.mode, running.address, running.shards[0][0].address, data)
        loadgen.concurrent(load.address, load.method, load.requests[:200], load.in_flight, 10)
        result: list[loadgen.Calls] = []
        driver = threading.Thread(
            target=lambda: result.append(
                loadgen.concurrent(
                    load.address,
                    load.method,
                    load.requests,
                    load.in_flight,
                    args.seconds + 2,
                    warmup=0,
                    pids={name: [pid] for name, pid in processes.items()},
                )
            )
        )
        switches = {name: context_switches(pid) for name, pid in processes.items()}
        cpu = {name: cpu_seconds(pid) for name, pid in processes.items()}
        driver.start()
        samplers = {
            name: subprocess.Popen(
                [
                    py_spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(args.seconds)),
                    "--rate",
                    str(args.rate),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(args.out / f"{name}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, pid in processes.items()
        }
        for sampler in samplers.values():
            sampler.wait()
        driver.join()
        switches = {name: context_switches(pid) - switches[name] for name, pid in processes.items()}
        cpu = {name: cpu_seconds(pid) - cpu[name] for name, pid in processes.items()}
    calls = result[0]
    queries = calls.count * load.queries_per_call
    lines = [
        f"# {args.target}, {args.mode} queries, {args.dataset}, {args.groups} group(s)",
        "",
        f"{queries / calls.seconds:,.0f} queries/s over {calls.seconds:.1f} s;"
        f" client CPU {calls.cpu['client'] / queries * 1e6:,.0f} µs/query",
        "",
    ]
    for name in processes:
        lines.append(
            f"## {name}: {cpu[name] / queries * 1e6:,.0f} µs CPU and"
            f" {switches[name] / queries:.1f} context switches per query"
        )
        lines.append("")
        path = args.out / f"{name}.txt"
        shares = layer_shares(path.read_text()) if path.exists() else {}
        lines += [f"- {share * 100:4.1f}% {layer}" for layer, share in shares.items()]
        lines.append("")
    summary = "\n".join(lines)
    (args.out / "summary.md").write_text(summary + "\n")
    print(summary)
    print(f"collapsed stacks and this summary are in {args.out}")


if __name__ == "__main__":
    main()
