"""Partition moves at the scale issue 16 asks for, on real processes with etcd.

Two shard groups of two replicas hold debian-20k's 20,000 documents; one thread
keeps writing (QUORUM upserts of new and existing ids, deletes) and searching
while a third group is added and rebalanced onto, a group is drained and
removed, moves run under SIGKILLs of the coordinator driving them and of
source and target replicas, and a replica is replaced by one on an empty data
dir. After each: every id checked on every replica (nothing acknowledged lost
or resurrected or left where its partition no longer lives), no search failed,
recall@10 of the searches during and after within 0.01 of before (against exact
search over the live documents at the moment of each search), every group
within 10% of an even share, `shoal verify` clean.

Long (tens of minutes): runs with SHOAL_MOVE_SCALE=1. SHOAL_MOVE_SCALE_DOCS
(default 20000: debian-20k; 2000 or fewer: debian-dev) and
SHOAL_MOVE_SCALE_ROUNDS (default 10 kills of each kind) scale it down. Every
test prints its figures (`pytest -s` shows them).

The SDK retries nothing by itself: every error a call raises counts as a
failure. What is retried happens in the coordinator (a write a replica refused
with FAILED_PRECONDITION for an older topology is routed again; a search fails
over to another replica of the group when one answers UNAVAILABLE). Calls go to
coordinators that are not being killed: the load is steered off a coordinator
before its SIGKILL (as a load balancer's health check would), because a call in
flight on a killed process fails whatever the cluster does.
"""

import asyncio
import io
import math
import os
import random
import re
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, redirect_stdout

import numpy as np
import pytest

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.etcd.client import EtcdClient
from shoal.etcd.move_store import LOCK_KEY
from shoal.moves import PHASES, owner_counts
from shoal.runtime.wait import wait_for
from shoal.v1 import shoal_pb2
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas
from tests.fault.move_scale_load import LiveSet, ScaleLoad, replica_findings, summary
from tests.fault.test_partition_moves import (
    COLLECTION,
    PARTITIONS,
    free_port,
    moves_finished,
    start_group,
)

ENABLED = os.environ.get("SHOAL_MOVE_SCALE") == "1"
DOCS = int(os.environ.get("SHOAL_MOVE_SCALE_DOCS", "20000"))
ROUNDS = int(os.environ.get("SHOAL_MOVE_SCALE_ROUNDS", "10"))
DATASET = "debian-20k" if DOCS > 2000 else "debian-dev"

pytestmark = [
    pytest.mark.skipif(not ENABLED, reason="long: SHOAL_MOVE_SCALE=1 runs it"),
    pytest.mark.timeout(3 * 3600),  # not the suite's 600 s: bounded by the waits below
    pytest.mark.skipif(not datasets.available(DATASET), reason=f"needs the {DATASET} data"),
]

#: Ids the load may create beside the corpus's ("new-N").
NEW_IDS = max(300, DOCS // 7)
#: Queries the searches take in turn (the same ones in every phase).
PROBE_QUERIES = 600
#: Searches before the moves start: every probe query once.
SEARCHES_BEFORE = PROBE_QUERIES
#: Searches after the moves end, before the checks.
SEARCHES_AFTER = PROBE_QUERIES
#: Bounds of the load and of each wait.
LOAD_MAX_S = 4 * 3600.0
LOAD_MAX_OPS = 2_000_000
MOVES_TIMEOUT_S = 1800.0
PHASE_SEARCH_TIMEOUT_S = 900.0
CONVERGE_TIMEOUT_S = 300.0
#: How far recall may drop below the recall before the moves.
RECALL_SLACK = 0.01
LOAD_BATCH = 1000


def log(text: str) -> None:
    print(f"[move-scale {time.strftime('%H:%M:%S')}] {text}", flush=True)


@contextmanager
def timed(phases: dict[str, float], name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    finally:
        phases[name] = time.monotonic() - started
        log(f"phase {name}: {phases[name]:.1f} s")


def load_corpus(client: Client, data: datasets.Dataset, live: LiveSet) -> None:
    ids = live.ids  # the corpus's first DOCS ids come first (data.ids builds a list)
    for start in range(0, DOCS, LOAD_BATCH):
        rows = range(start, min(start + LOAD_BATCH, DOCS))
        client.upsert(
            COLLECTION,
            [{"id": ids[row], "vector": data.document_vectors[row]} for row in rows],
            consistency="all",
        )
        for row in rows:
            live.acknowledged(ids[row], row)


def coordinator(cluster: LocalCluster, name: str) -> ServiceProcess:
    """Another coordinator on the same etcd (it runs the move loop too)."""
    process = ServiceProcess(name, "coordinator", list(cluster.coordinator.args), cluster.log_dir)
    process.start()
    process.wait_ready(60)
    return process


def move_lock_pid(cluster: LocalCluster) -> int | None:
    """The pid of the coordinator holding the move lock (its value names it)."""
    assert cluster.etcd is not None
    endpoints = cluster.etcd.endpoints

    async def read() -> str:
        client = EtcdClient(endpoints)
        try:
            reply = await client.range(LOCK_KEY)
        finally:
            await client.close()
        return reply.kvs[0].value.decode() if reply.kvs else ""

    found = re.search(r"pid (\d+)", asyncio.run(read()))
    return int(found.group(1)) if found else None


def named(processes: Sequence[ServiceProcess]) -> list[tuple[str, str]]:
    return [(p.name, p.address) for p in processes]


def wait_searches(load: ScaleLoad, phase: str, count: int) -> None:
    wait_for(
        lambda: load.searches(phase) >= count or bool(load.failures) or load.stop.is_set(),
        PHASE_SEARCH_TIMEOUT_S,
        f"{count} searches in phase {phase}",
        interval=0.2,
    )


def paired_delta(load: ScaleLoad, phase: str, before: str = "before") -> tuple[float, int]:
    """Mean recall of `phase` less that of `before` over the queries both asked."""
    base = load.figures(before).recall
    now = load.figures(phase).recall
    common = [q for q in now if q in base]
    if not common:
        return float("nan"), 0
    deltas = [float(np.mean(now[q]) - np.mean(base[q])) for q in common]
    return float(np.mean(deltas)), len(common)


def report_load(load: ScaleLoad, phases: Sequence[str]) -> None:
    for phase in phases:
        figures = load.figures(phase)
        delta, queries = paired_delta(load, phase) if phase != "before" else (0.0, 0)
        log(
            f"load {phase}: searches ok {figures.searches} failed {figures.failed_searches};"
            f" writes acknowledged {figures.writes} failed {figures.failed_writes};"
            f" recall@10 {figures.mean_recall():.4f}"
            + (f" (paired with before over {queries} queries: {delta:+.4f})" if queries else "")
        )
    log(
        f"load total: {load.ops} ops, {load.searches()} searches, {load.writes()} writes"
        f" acknowledged, {len(load.failures)} failures, {len(load.duplicates)} searches with"
        f" duplicate ids, {len(load.dead)} with deleted ids, {len(load.live.uncertain)}"
        " uncertain ids"
    )
    for failure in load.failures[:10]:
        log(f"  failure: {failure}")


def assert_load_clean(load: ScaleLoad, phases: Sequence[str]) -> None:
    assert not load.failures, load.failures[:5]
    assert not load.duplicates, load.duplicates[:3]
    assert not load.dead, load.dead[:3]
    for phase in phases:
        delta, queries = paired_delta(load, phase)
        assert queries > 0, f"no searches in phase {phase}"
        assert delta >= -RECALL_SLACK, f"recall in {phase} fell by {-delta:.4f}"


def check_replicas(
    groups: Sequence[Sequence[ServiceProcess]],
    client: Client,
    live: LiveSet,
    converge_s: float = 0.0,
) -> list[int]:
    """Every id on every replica (waiting up to `converge_s` for replicas that were
    down to catch up), the groups' shares, `shoal verify`; the per-group counts."""
    topology = client.get_topology()
    members = [named(group) for group in groups]

    def findings() -> str:
        return summary(replica_findings(COLLECTION, PARTITIONS, members, topology, live))

    started = time.monotonic()
    found = findings()
    deadline = started + converge_s
    while found != "none" and time.monotonic() < deadline:
        time.sleep(5)
        found = findings()
    log(
        f"replica check ({len(live.expected)} ids on {sum(map(len, groups))} replicas,"
        f" {time.monotonic() - started:.1f} s): {found}"
    )
    assert found == "none", found
    per_group = [replicas.count(group[0].address, COLLECTION) for group in groups]
    log(f"live {live.live_count()} acknowledged, {len(live.uncertain)} uncertain")
    assert_even_shares(per_group)
    report = client.verify_replicas(COLLECTION)
    log(f"verify: {report.differing} differing, {report}".replace("\n", " "))
    assert report.differing == 0, report
    return per_group


def assert_even_shares(per_group: Sequence[int]) -> None:
    share = sum(per_group) / len(per_group)
    worst = max(abs(n - share) for n in per_group) / share
    log(f"documents per group {list(per_group)} (even {share:.0f}; worst {worst:.1%} off)")
    assert worst <= 0.1, per_group


def shoal_verify(address: str) -> None:
    """`shoal verify` as an operator runs it: exit 2 when replicas differ or
    cannot be compared."""
    out = io.StringIO()
    try:
        with redirect_stdout(out):
            cli(["verify", "--address", address])
    except SystemExit as exit_:
        raise AssertionError(f"shoal verify: exit {exit_.code}: {out.getvalue()}") from None
    log(f"shoal verify: {out.getvalue().strip()}")


def start_load(
    clients: dict[str, Client],
    live: LiveSet,
    data: datasets.Dataset,
    writes_may_fail: bool = False,
) -> tuple[ScaleLoad, threading.Thread]:
    probe = random.Random(5).sample(range(len(data.queries)), PROBE_QUERIES)
    load = ScaleLoad(
        COLLECTION,
        clients,
        live,
        data.query_vectors,
        probe,
        max_ops=LOAD_MAX_OPS,
        max_s=LOAD_MAX_S,
        writes_may_fail=writes_may_fail,
    )
    worker = threading.Thread(target=load.run, name="load")
    worker.start()
    return load, worker


def stop_load(load: ScaleLoad, worker: threading.Thread) -> None:
    load.stop.set()
    worker.join(120)
    assert not worker.is_alive(), "the load did not stop within 120 s"


def run_moves(
    client: Client, drain: Sequence[int], phases: dict[str, float], name: str
) -> list[str]:
    with timed(phases, name):
        started = client.start_moves(client.plan_rebalance(drain))
        moves = [(s.move.partition, s.move.source, s.move.target) for s in started]
        log(f"{name}: {len(started)} moves (partition, source, target): {moves}")
        wait_for(lambda: moves_finished(client), MOVES_TIMEOUT_S, f"{name} to end", interval=0.5)
    return [s.phase for s in client.moves() if s.id in {m.id for m in started}]


def test_growing_onto_a_third_group_then_draining_one_at_scale(
    start_cluster: StartCluster,
) -> None:
    """Rebalance onto a new group under load, then drain group 0 under load,
    remove it from the topology and stop its processes."""
    data = datasets.load(DATASET)
    phases: dict[str, float] = {}
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    new_group = start_group(cluster, 2, 2)
    live = LiveSet(data.document_vectors, data.ids[:DOCS], NEW_IDS)
    try:
        with Client(cluster.address, timeout=120) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            with timed(phases, f"load {DOCS} documents"):
                load_corpus(client, data, live)
            client.add_group([shard.address for shard in new_group])
            load_client = {"coordinator": Client(cluster.address, timeout=120)}
            load, worker = start_load(load_client, live, data)
            try:
                with timed(phases, "before (searches under load)"):
                    wait_searches(load, "before", SEARCHES_BEFORE)
                load.set_phase("during rebalance")
                done = run_moves(client, [], phases, "rebalance onto group 2")
                assert done == ["done"] * 4, done
                assert owner_counts(client.get_topology(), PARTITIONS) == {0: 4, 1: 4, 2: 4}
                three = [*cluster.shards, new_group]
                assert_even_shares([replicas.count(g[0].address, COLLECTION) for g in three])
                load.set_phase("after rebalance")
                with timed(phases, "after rebalance (searches under load)"):
                    wait_searches(load, "after rebalance", SEARCHES_AFTER)
                load.set_phase("during drain")
                done = run_moves(client, [0], phases, "drain group 0")
                assert done == ["done"] * 4, done
                assert owner_counts(client.get_topology(), PARTITIONS)[0] == 0
                load.set_phase("after drain")
                with timed(phases, "after drain (searches under load)"):
                    wait_searches(load, "after drain", SEARCHES_AFTER // 2)
                    client.remove_group(0)
                    wait_searches(load, "after drain", SEARCHES_AFTER)
            finally:
                stop_load(load, worker)
                for c in load.clients.values():
                    c.close()
            measured = ["during rebalance", "after rebalance", "during drain", "after drain"]
            report_load(load, ["before", *measured])
            assert owner_counts(client.get_topology(), PARTITIONS) == {0: 6, 1: 6}
            for shard in cluster.shards[0]:
                shard.stop()
            with timed(phases, "checks"):
                check_replicas([cluster.shards[1], new_group], client, live)
                shoal_verify(cluster.address)
            assert_load_clean(load, measured)
        log(f"time per phase: { {k: round(v, 1) for k, v in phases.items()} }")
    finally:
        for shard in new_group:
            shard.stop()


KINDS = ("coordinator", "source", "target")


def test_moves_at_scale_survive_sigkills_of_coordinators_sources_and_targets(
    start_cluster: StartCluster,
) -> None:
    """ROUNDS SIGKILLs of each kind, one per move at a random moment in it: the
    coordinator holding the move lock (two more run and one takes over), a
    replica of the move's source group, a replica of its target group; each is
    restarted on its data. Moves go onto a third group, off it and onto it
    again, until every kill is done."""
    data = datasets.load(DATASET)
    phases: dict[str, float] = {}
    rng = random.Random(7)
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    new_group = start_group(cluster, 2, 2)
    groups = [list(cluster.shards[0]), list(cluster.shards[1]), new_group]
    coordinators = [cluster.coordinator]
    kinds = [kind for kind in KINDS for _ in range(ROUNDS)]
    rng.shuffle(kinds)
    rounds: list[str] = []
    live = LiveSet(data.document_vectors, data.ids[:DOCS], NEW_IDS)
    clients: dict[str, Client] = {}
    try:
        coordinators += [coordinator(cluster, f"coordinator-{n}") for n in (2, 3)]
        clients.update({c.name: Client(c.address, timeout=120) for c in coordinators})

        def control() -> Client:
            """A client to a coordinator that is up (the load avoids the rest)."""
            for name, candidate in clients.items():
                if name not in load.avoid:
                    return candidate
            raise AssertionError("no coordinator up")

        client = clients[cluster.coordinator.name]
        client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
        with timed(phases, f"load {DOCS} documents"):
            load_corpus(client, data, live)
        client.add_group([shard.address for shard in new_group])
        load, worker = start_load(
            {c.name: Client(c.address, timeout=120) for c in coordinators},
            live,
            data,
            writes_may_fail=True,
        )
        try:
            with timed(phases, "before (searches under load)"):
                wait_searches(load, "before", SEARCHES_BEFORE)
            load.set_phase("during moves with kills")
            max_plans = math.ceil(len(kinds) / 4) + 2
            plans = 0
            drain: list[int] = []
            with timed(phases, "moves with kills"):
                while plans < max_plans:
                    plans += 1
                    started = control().start_moves(control().plan_rebalance(drain))
                    assert len(started) == 4, started
                    for status in started:
                        if not kinds:
                            break
                        kind = kinds.pop()
                        line = kill_during(
                            cluster, status, kind, rng, groups, coordinators, load, clients
                        )
                        rounds.append(line)
                    wait_for(
                        lambda: moves_finished(control()),
                        MOVES_TIMEOUT_S,
                        "the moves to end",
                        interval=0.5,
                    )
                    log(f"plan {plans} (drain {drain}) done; {len(kinds)} kills left")
                    drained = bool(drain)
                    drain = [] if drained else [2]
                    # Every kill done, and the last plan onto the third group: even shares.
                    if not kinds and not drained:
                        break
            load.set_phase("after moves with kills")
            with timed(phases, "after (searches under load)"):
                wait_searches(load, "after moves with kills", SEARCHES_AFTER)
        finally:
            stop_load(load, worker)
            for c in load.clients.values():
                c.close()
        client = control()
        statuses = client.moves()
        done = sum(s.phase == "done" for s in statuses)
        log(f"moves: {done} done of {len(statuses)}; plans {plans}")
        log(f"kill rounds: {len(rounds)}: " + "; ".join(rounds))
        per_kind = {kind: sum(r.startswith(kind) for r in rounds) for kind in KINDS}
        log(f"kills per kind: {per_kind}")
        measured = ["during moves with kills", "after moves with kills"]
        report_load(load, ["before", *measured])
        assert per_kind == dict.fromkeys(KINDS, ROUNDS), per_kind
        assert all(s.phase == "done" for s in statuses), statuses
        assert owner_counts(client.get_topology(), PARTITIONS) == {0: 4, 1: 4, 2: 4}
        with timed(phases, "checks"):
            check_replicas(groups, client, live, converge_s=CONVERGE_TIMEOUT_S)
            shoal_verify(coordinators[0].address)
        assert_load_clean(load, measured)
        log(f"time per phase: { {k: round(v, 1) for k, v in phases.items()} }")
    finally:
        for c in clients.values():
            c.close()
        for process in coordinators[1:]:
            process.stop()
        for shard in new_group:
            shard.stop()


def kill_during(
    cluster: LocalCluster,
    status: shoal_pb2.PartitionMoveStatus,
    kind: str,
    rng: random.Random,
    groups: list[list[ServiceProcess]],
    coordinators: list[ServiceProcess],
    load: ScaleLoad,
    clients: dict[str, Client],
) -> str:
    """Wait for the move to reach a phase drawn at random (copying, switched or
    cleaning: a copy takes most of a move's time, so a random delay alone would
    nearly always land in it), wait a random moment more, SIGKILL one process of
    `kind`, restart it; a line saying what was killed at which phase."""
    move_id = status.id
    move = status.move

    def control() -> Client:
        return next(c for name, c in clients.items() if name not in load.avoid)

    def phase() -> str:
        [now] = [s for s in control().moves() if s.id == move_id]
        return str(now.phase)

    aim = rng.choice(["copying", "switched", "cleaning"])
    reached = PHASES[PHASES.index(aim) :]
    wait_for(lambda: phase() in reached, MOVES_TIMEOUT_S, f"move {move_id} {aim}", interval=0.05)
    time.sleep(rng.uniform(0, 1.0))  # a random moment in that phase
    if kind == "coordinator":
        pid = move_lock_pid(cluster)
        holders = [c for c in coordinators if c.process is not None and c.process.pid == pid]
        victim = holders[0] if holders else rng.choice(coordinators)
        load.steer_off(victim.name)
    else:
        group = move.source if kind == "source" else move.target
        victim = rng.choice(groups[group])
    at = phase()
    victim.kill()
    time.sleep(rng.uniform(0.5, 2.0))
    victim.start()
    victim.wait_ready(300)
    if kind == "coordinator":
        # New channels: the old ones' reconnect backoff (gRPC's, up to minutes)
        # would fail calls fast for a while although the coordinator serves again.
        clients.pop(victim.name).close()
        clients[victim.name] = Client(victim.address, timeout=120)
        load.replace_client(victim.name, Client(victim.address, timeout=120))
    load.allow(victim.name)
    where = f"partition {move.partition} {move.source}->{move.target}"
    line = f"{kind} {victim.name} at {at}, aimed {aim} ({where})"
    log(f"kill: {line}")
    return line


def test_a_replica_replaced_by_an_empty_one_at_scale(
    start_cluster: StartCluster,
) -> None:
    """Under load, replica 1 of group 0 is replaced by a process on an empty data
    dir: it serves once caught up (timed), and nothing is lost."""
    data = datasets.load(DATASET)
    phases: dict[str, float] = {}
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    assert cluster.etcd is not None
    old = cluster.shards[0][1]
    args = [
        "--data-dir", str(cluster.root / "data" / "shard-0-1-new"),
        "--topology", str(cluster.topology_path),
        "--etcd", cluster.etcd.endpoints_flag,
    ]  # fmt: skip
    new = ServiceProcess("shard-0-1-new", "shard", args, cluster.log_dir, port=free_port())
    live = LiveSet(data.document_vectors, data.ids[:DOCS], NEW_IDS)
    try:
        with Client(cluster.address, timeout=120) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            with timed(phases, f"load {DOCS} documents"):
                load_corpus(client, data, live)
            load, worker = start_load(
                {"coordinator": Client(cluster.address, timeout=120)},
                live,
                data,
                writes_may_fail=True,  # QUORUM of 2 fails until the new one takes writes
            )
            try:
                with timed(phases, "before (searches under load)"):
                    wait_searches(load, "before", SEARCHES_BEFORE)
                load.set_phase("during replacement")
                with timed(phases, "replacement until the new replica serves"):
                    client.replace_replica(old.address, new.address)
                    new.start()
                    new.wait_ready(600)  # SERVING only once it has caught up
                old.stop()
                load.set_phase("after replacement")
                with timed(phases, "after (searches under load)"):
                    wait_searches(load, "after replacement", SEARCHES_AFTER)
            finally:
                stop_load(load, worker)
                for c in load.clients.values():
                    c.close()
            measured = ["during replacement", "after replacement"]
            report_load(load, ["before", *measured])
            with timed(phases, "checks"):
                groups = [[cluster.shards[0][0], new], list(cluster.shards[1])]
                check_replicas(groups, client, live, converge_s=CONVERGE_TIMEOUT_S)
                shoal_verify(cluster.address)
            assert "caught up with" in new.log_path.read_text()
            # Searches in the replacement may be fewer than the probe: compare those.
            assert not load.failures, load.failures[:5]
            assert not load.duplicates and not load.dead
            delta, _ = paired_delta(load, "after replacement")
            assert delta >= -RECALL_SLACK, delta
        log(f"time per phase: { {k: round(v, 1) for k, v in phases.items()} }")
    finally:
        new.stop()
