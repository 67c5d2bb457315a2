"""Growing and shrinking the cluster online (issue 16), on real processes with etcd.

Two shard groups of two replicas hold debian-dev's 2,000 documents; a third
group is started, added and rebalanced onto while one client keeps writing
(QUORUM upserts of new and existing ids, deletes) and searching. Afterwards
every id is checked on every replica of every group: each acknowledged write
is where its partition now lives, on every replica, and nowhere else; nothing
deleted came back; no search failed or saw an id twice; the groups hold
within 10% of an even share; `verify` finds the replicas equal.
"""

import json
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pytest

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from shoal.cli.service_process import ServiceProcess
from shoal.errors import DeadlineExceeded, Unavailable
from shoal.moves import FINAL, owner_counts
from shoal.partitioning import partition_of
from shoal.runtime.wait import wait_for
from shoal.topology import Topology
from tests import datasets
from tests.conftest import StartCluster
from tests.fault import replicas

pytestmark = pytest.mark.skipif(not datasets.available(), reason="needs the debian-dev data")

COLLECTION = "growing"
#: Divisible by 2 and by 3: an even share before and after the new group.
PARTITIONS = 12
#: Bounds of the load that runs during the moves.
LOAD_MAX_S = 240.0
LOAD_MAX_OPS = 20_000
MOVES_TIMEOUT_S = 240.0


@dataclass
class Load:
    """One client's writes and searches while the moves run, and what they saw."""

    client: Client
    vectors: np.ndarray
    queries: np.ndarray
    #: id -> the row of `vectors` it was last written with (acknowledged), None: deleted.
    expected: dict[str, int | None]
    stop: threading.Event = field(default_factory=threading.Event)
    searches: int = 0
    writes: int = 0
    failures: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    #: Replicas get killed: a failed write is then allowed (counted), and leaves
    #: each of its ids in either state until a later write succeeds.
    replicas_killed: bool = False
    failed_writes: int = 0
    uncertain: dict[str, set[int | None]] = field(default_factory=dict)

    def run(self) -> None:
        rng = random.Random(16)
        started = time.monotonic()
        ops = 0
        while not self.stop.is_set() and ops < LOAD_MAX_OPS:
            if time.monotonic() - started > LOAD_MAX_S:
                break
            ops += 1
            choice = rng.random()
            try:
                if choice < 0.35:
                    self._upsert(rng)
                elif choice < 0.45:
                    doc_id = rng.choice(list(self.expected))
                    self._write({doc_id: None})
                else:
                    query = self.queries[rng.randrange(len(self.queries))]
                    result = self.client.search(COLLECTION, query, k=10, include=())
                    ids = [hit.id for hit in result.hits]
                    if len(ids) != len(set(ids)):
                        self.duplicates.append(ids)
                    self.searches += 1
            except Exception as error:  # every failure is a finding
                self.failures.append(f"{type(error).__name__}: {error}")

    def _upsert(self, rng: random.Random) -> None:
        batch: dict[str, int | None] = {}
        for _ in range(8):
            if rng.random() < 0.5:
                doc_id = f"new-{rng.randrange(3_000)}"
            else:
                doc_id = rng.choice(list(self.expected))
            batch[doc_id] = rng.randrange(len(self.vectors))
        self._write(batch)

    def _write(self, batch: dict[str, int | None]) -> None:
        try:
            upserts = [
                {"id": i, "vector": self.vectors[row]}
                for i, row in batch.items()
                if row is not None
            ]
            if upserts:
                self.client.upsert(COLLECTION, upserts, consistency="quorum")
            deletes = [i for i, row in batch.items() if row is None]
            if deletes:
                self.client.delete(COLLECTION, deletes, consistency="quorum")
        except (Unavailable, DeadlineExceeded):
            if not self.replicas_killed:
                raise
            self.failed_writes += 1
            for doc_id, row in batch.items():
                self.uncertain.setdefault(doc_id, {self.expected.get(doc_id)}).add(row)
            return
        for doc_id, row in batch.items():
            self.expected[doc_id] = row
            self.uncertain.pop(doc_id, None)
        self.writes += 1


def start_group(cluster: LocalCluster, group: int, replicas_count: int) -> list[ServiceProcess]:
    """Shard processes for a new group, started and serving (in no group yet)."""
    assert cluster.etcd is not None
    shards = []
    for replica in range(replicas_count):
        name = f"shard-{group}-{replica}"
        args = [
            "--data-dir", str(cluster.root / "data" / name),
            "--topology", str(cluster.topology_path),
            "--etcd", cluster.etcd.endpoints_flag,
        ]  # fmt: skip
        shard = ServiceProcess(name, "shard", args, cluster.log_dir)
        shard.start()
        shards.append(shard)
    for shard in shards:
        shard.wait_ready(60)
    return shards


def moves_finished(client: Client) -> bool:
    return all(status.phase in FINAL for status in client.moves())


def test_adding_a_group_and_rebalancing_under_load_loses_nothing(
    start_cluster: StartCluster, capsys: pytest.CaptureFixture[str]
) -> None:
    data = datasets.load()
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    new_group = start_group(cluster, 2, 2)
    try:
        with Client(cluster.address, timeout=60) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            ids = data.ids
            for start in range(0, len(ids), 500):
                client.upsert(
                    COLLECTION,
                    [
                        {"id": ids[row], "vector": data.document_vectors[row]}
                        for row in range(start, min(start + 500, len(ids)))
                    ],
                    consistency="all",
                )
            expected: dict[str, int | None] = {doc_id: row for row, doc_id in enumerate(ids)}
            added = client.add_group([shard.address for shard in new_group])
            assert len(added.groups) == 3
            assert owner_counts(added, PARTITIONS) == {0: 6, 1: 6, 2: 0}
            plan = client.plan_rebalance()
            assert len(plan) == 4 and {move.target for move in plan} == {2}

            load = Load(
                Client(cluster.address, timeout=60),
                data.document_vectors,
                data.query_vectors,
                expected,
            )
            worker = threading.Thread(target=load.run, name="load")
            worker.start()
            try:
                wait_for(lambda: load.searches > 20, 60, "the load to get going")
                started = client.start_moves(plan)
                assert len(started) == 4
                # GetClusterInfo lists the moves in progress.
                in_progress = client.cluster_info().moves
                assert [m.move.partition for m in in_progress] == [m.partition for m in plan]
                wait_for(lambda: moves_finished(client), MOVES_TIMEOUT_S, "the moves to end")
                # Some load after the last switch and clean-up, too.
                after = load.writes
                wait_for(lambda: load.writes > after + 20, 60, "writes after the moves")
            finally:
                load.stop.set()
                worker.join(LOAD_MAX_S)
                load.client.close()
            statuses = client.moves()
            assert [s.phase for s in statuses] == ["done"] * 4, statuses
            topology = client.get_topology()
            assert not topology.moving and not topology.leaving
            assert owner_counts(topology, PARTITIONS) == {0: 4, 1: 4, 2: 4}
            assert not load.failures, load.failures[:5]
            assert not load.duplicates, load.duplicates[:3]
            assert load.searches > 20 and load.writes > 20
            report = client.verify_replicas(COLLECTION)
            assert report.differing == 0, report
            info = client.cluster_info()
            assert not info.moves
        # The CLI shows the same.
        cli(["topology", "moves", "--json", "--address", cluster.address])
        shown = json.loads(capsys.readouterr().out)
        assert [m["phase"] for m in shown] == ["done"] * 4
        cli(["topology", "plan", "--address", cluster.address])
        assert "nothing to move" in capsys.readouterr().out

        groups = [list(cluster.shards[0]), list(cluster.shards[1]), new_group]
        check_every_replica(groups, topology, expected, data.document_vectors)
        live = sum(row is not None for row in expected.values())
        per_group = [replicas.count(g[0].address, COLLECTION) for g in groups]
        assert sum(per_group) == live
        assert all(abs(n - live / 3) <= 0.1 * live / 3 for n in per_group), per_group
    finally:
        for shard in new_group:
            shard.stop()


def second_coordinator(cluster: LocalCluster) -> ServiceProcess:
    process = ServiceProcess(
        "coordinator-2", "coordinator", list(cluster.coordinator.args), cluster.root
    )
    process.start()
    process.wait_ready(60)
    return process


def check_every_replica(
    groups: list[list[ServiceProcess]],
    topology: Topology,
    expected: dict[str, int | None],
    vectors: np.ndarray,
    uncertain: dict[str, set[int | None]] | None = None,
) -> None:
    """Each id live exactly on the replicas of the group owning it, as last written
    (`uncertain` ids: in one of the states a failed write may have left).

    A failure names, per wrong id, the replica, what it holds and what it should,
    and the record versions (tombstones included) every replica holds of it."""
    uncertain = uncertain or {}
    all_ids = sorted(set(expected) | set(uncertain))
    held = [[replicas.documents(s.address, COLLECTION, all_ids) for s in g] for g in groups]
    # (category, id, the replica's name, what it holds)
    wrong: list[tuple[str, str, str, str]] = []
    for doc_id in all_ids:
        owner = topology.group_of(doc_id, PARTITIONS)
        for group, per_replica in enumerate(held):
            for process, stored in zip(groups[group], per_replica, strict=True):
                found = stored.get(doc_id)
                state = None if found is None else found.vector
                shown = "nothing live" if found is None else f"row {_row_of(state, vectors)}"
                if group != owner:
                    if found is not None:
                        wrong.append(("misplaced", doc_id, process.name, shown))
                    continue
                if doc_id in uncertain:
                    allowed = {
                        None if row is None else vectors[row].astype("<f4").tobytes()
                        for row in uncertain[doc_id]
                    }
                    if state not in allowed:
                        wrong.append(("stale", doc_id, process.name, shown))
                    continue
                row = expected[doc_id]
                if row is None:
                    if found is not None:
                        wrong.append(("resurrected", doc_id, process.name, shown))
                elif found is None:
                    wrong.append(("lost", doc_id, process.name, shown))
                elif state != vectors[row].astype("<f4").tobytes():
                    wrong.append(("stale", doc_id, process.name, shown))
    if wrong:
        raise AssertionError(_describe_wrong(wrong, groups, topology, expected, uncertain))


def _row_of(state: bytes | None, vectors: np.ndarray) -> int | str:
    """The row of `vectors` a stored vector is (for failure messages)."""
    if state is None:
        return "none"
    stored = np.frombuffer(state, dtype="<f4")
    matches = np.flatnonzero((vectors == stored).all(axis=1))
    return int(matches[0]) if len(matches) else "unknown"


def _describe_wrong(
    wrong: list[tuple[str, str, str, str]],
    groups: list[list[ServiceProcess]],
    topology: Topology,
    expected: dict[str, int | None],
    uncertain: dict[str, set[int | None]],
    shown: int = 30,
) -> str:
    """Which ids are wrong on which replica, with every replica's record versions of them."""
    counts: dict[str, int] = {}
    for category, *_ in wrong:
        counts[category] = counts.get(category, 0) + 1
    ids = sorted({doc_id for _, doc_id, _, _ in wrong})[:shown]
    partitions = sorted({partition_of(doc_id, PARTITIONS) for doc_id in ids})
    records: dict[str, dict[str, tuple[int, bool]]] = {}
    for group in groups:
        for process in group:
            try:
                records[process.name] = replicas.versions(process.address, COLLECTION, partitions)
            except Exception as error:  # a diagnostic: say why it is missing
                records[process.name] = {}
                records[f"{process.name} (ListVersions failed: {error})"] = {}
    lines = [
        f"{len(wrong)} wrong (id, replica) pairs {counts} in topology version {topology.version}"
    ]
    for category, doc_id, name, holds in wrong:
        if doc_id not in ids:
            continue
        partition = partition_of(doc_id, PARTITIONS)
        should = (
            f"one of rows {sorted(uncertain[doc_id], key=str)}"
            if doc_id in uncertain
            else f"row {expected.get(doc_id)}"
        )
        versions = ", ".join(
            f"{replica}: {_record(held.get(doc_id))}" for replica, held in records.items()
        )
        lines.append(
            f"  {category} {doc_id} (partition {partition}, owner group"
            f" {topology.group_of(doc_id, PARTITIONS)}) on {name}: holds {holds},"
            f" should hold {should}; versions: {versions}"
        )
    return "\n".join(lines)


def _record(record: tuple[int, bool] | None) -> str:
    if record is None:
        return "-"
    version, deleted = record
    return f"{version} deleted" if deleted else str(version)


def wait_until_every_replica_holds(check: Callable[[], None], timeout_s: float) -> None:
    """Wait for `check` to pass; on timeout fail with its own message (which ids on
    which replica are wrong), not a bare timeout."""
    try:
        wait_for(lambda: replicas_agree(check), timeout_s, "every replica to hold what it should")
    except TimeoutError:
        check()
        raise


def test_moves_survive_a_killed_coordinator_and_a_group_is_drained_and_removed(
    start_cluster: StartCluster,
) -> None:
    """The coordinator driving the moves is SIGKILLed mid-move; another takes the
    move lock and resumes them. Then group 0 is drained onto the others under
    load, removed from the topology and stopped, and nothing is lost."""
    data = datasets.load()
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    new_group = start_group(cluster, 2, 2)
    other = second_coordinator(cluster)
    try:
        with Client(other.address, timeout=60) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            ids = data.ids
            client.upsert(
                COLLECTION,
                [{"id": i, "vector": data.document_vectors[row]} for row, i in enumerate(ids)],
                consistency="all",
            )
            expected: dict[str, int | None] = {doc_id: row for row, doc_id in enumerate(ids)}
            client.add_group([shard.address for shard in new_group])
            load = Load(
                Client(other.address, timeout=60),
                data.document_vectors,
                data.query_vectors,
                expected,
            )
            worker = threading.Thread(target=load.run, name="load")
            worker.start()
            try:
                wait_for(lambda: load.searches > 10, 60, "the load to get going")
                # The first coordinator holds the move lock (it started first).
                client.rebalance()
                wait_for(
                    lambda: any(s.phase in ("copying", "switched") for s in client.moves()),
                    60,
                    "a move to be under way",
                    interval=0.05,
                )
                cluster.coordinator.kill()
                wait_for(lambda: moves_finished(client), MOVES_TIMEOUT_S, "the moves to end")
                assert owner_counts(client.get_topology(), PARTITIONS) == {0: 4, 1: 4, 2: 4}
                assert "took the move lock" in other.log_path.read_text()

                # Drain group 0 onto the others, then take it out.
                client.rebalance(drain=[0])
                wait_for(lambda: moves_finished(client), MOVES_TIMEOUT_S, "the drain to end")
                drained = client.get_topology()
                assert owner_counts(drained, PARTITIONS)[0] == 0
                after = load.writes
                wait_for(lambda: load.writes > after + 10, 60, "writes after the drain")
                removed = client.remove_group(0)
                assert len(removed.groups) == 2
                after = load.writes
                wait_for(lambda: load.writes > after + 10, 60, "writes after the removal")
            finally:
                load.stop.set()
                worker.join(LOAD_MAX_S)
                load.client.close()
            assert not load.failures, load.failures[:5]
            assert not load.duplicates, load.duplicates[:3]
            topology = client.get_topology()
            assert owner_counts(topology, PARTITIONS) == {0: 6, 1: 6}
            for shard in cluster.shards[0]:
                shard.stop()
            assert client.verify_replicas(COLLECTION).differing == 0
        check_every_replica(
            [list(cluster.shards[1]), new_group], topology, expected, data.document_vectors
        )
    finally:
        other.stop()
        for shard in new_group:
            shard.stop()


def replicas_agree(check: Callable[[], None]) -> bool:
    try:
        check()
    except AssertionError:
        return False
    return True


def test_moves_survive_source_and_target_replicas_killed_mid_move(
    start_cluster: StartCluster,
) -> None:
    """In each of 12 moves (a rebalance onto a new group, a drain of it, a rebalance
    again) a replica of its source or of its target is SIGKILLed at a random
    point of the move and restarted on its data: the move
    waits or goes on, and nothing acknowledged is lost, resurrected or misplaced
    (writes that fail while a replica is down, at QUORUM of 2, are not acknowledged;
    their ids may hold either state). Searches never fail: a group fails over."""
    data = datasets.load()
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    new_group = start_group(cluster, 2, 2)
    groups = [list(cluster.shards[0]), list(cluster.shards[1]), new_group]
    rng = random.Random(7)
    kills: list[str] = []
    try:
        with Client(cluster.address, timeout=60) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            client.upsert(
                COLLECTION,
                [{"id": i, "vector": data.document_vectors[row]} for row, i in enumerate(data.ids)],
                consistency="all",
            )
            expected: dict[str, int | None] = {i: row for row, i in enumerate(data.ids)}
            client.add_group([shard.address for shard in new_group])
            load = Load(
                Client(cluster.address, timeout=60),
                data.document_vectors,
                data.query_vectors,
                expected,
                replicas_killed=True,
            )
            worker = threading.Thread(target=load.run, name="load")
            worker.start()
            try:
                wait_for(lambda: load.searches > 10, 60, "the load to get going")
                # Three rounds: onto the new group, off it again (moving partitions
                # back before the clean-up tombstones are purged), onto it again.
                for drain in ([], [2], []):
                    started = client.start_moves(client.plan_rebalance(drain))
                    assert len(started) == 4
                    for status in started:

                        def under_way(move_id: str = status.id) -> bool:
                            [now] = [s for s in client.moves() if s.id == move_id]
                            return now.phase in ("copying", "switched", "cleaning", *FINAL)

                        wait_for(under_way, MOVES_TIMEOUT_S, f"move {status.id} under way")
                        time.sleep(rng.uniform(0, 0.5))  # a random point in the move
                        side = rng.choice(["source", "target"])
                        group = status.move.source if side == "source" else status.move.target
                        victim = rng.choice(groups[group])
                        victim.kill()
                        kills.append(f"{victim.name} ({side}, partition {status.move.partition})")
                        time.sleep(rng.uniform(0.5, 2.0))
                        victim.start()
                        victim.wait_ready(60)
                    wait_for(lambda: moves_finished(client), MOVES_TIMEOUT_S, "the moves to end")
                after = load.writes
                wait_for(lambda: load.writes > after + 10, 60, "writes after the moves")
            finally:
                load.stop.set()
                worker.join(LOAD_MAX_S)
                load.client.close()
            assert len(kills) == 12, kills
            assert [s.phase for s in client.moves()] == ["done"] * 12
            assert not load.failures, load.failures[:5]
            assert not load.duplicates, load.duplicates[:3]
            topology = client.get_topology()
            assert owner_counts(topology, PARTITIONS) == {0: 4, 1: 4, 2: 4}

            def check() -> None:
                check_every_replica(
                    groups, topology, expected, data.document_vectors, load.uncertain
                )

            # Replicas that were down catch up (hints, anti-entropy) within a bound.
            wait_until_every_replica_holds(check, 120)
            wait_for(
                lambda: client.verify_replicas(COLLECTION).differing == 0,
                60,
                "verify to find the replicas equal",
            )
    finally:
        for shard in new_group:
            shard.stop()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_replica_replaced_by_one_on_an_empty_data_dir_serves_after_catching_up(
    start_cluster: StartCluster,
) -> None:
    """Under load, replica 1 of group 0 is replaced (`replace_replica`) by a new
    process on an empty data dir, started right after the topology change: it
    catches up from its peer before it serves, and then holds everything."""
    data = datasets.load()
    cluster = start_cluster(groups=2, replicas=2, model="hash-8")
    assert cluster.etcd is not None
    old = cluster.shards[0][1]
    args = [
        "--data-dir", str(cluster.root / "data" / "shard-0-1-new"),
        "--topology", str(cluster.topology_path),
        "--etcd", cluster.etcd.endpoints_flag,
    ]  # fmt: skip
    new = ServiceProcess("shard-0-1-new", "shard", args, cluster.log_dir, port=free_port())
    try:
        with Client(cluster.address, timeout=60) as client:
            client.create_collection(COLLECTION, dimension=384, partitions=PARTITIONS)
            client.upsert(
                COLLECTION,
                [{"id": i, "vector": data.document_vectors[row]} for row, i in enumerate(data.ids)],
                consistency="all",
            )
            expected: dict[str, int | None] = {i: row for row, i in enumerate(data.ids)}
            load = Load(
                Client(cluster.address, timeout=60),
                data.document_vectors,
                data.query_vectors,
                expected,
                replicas_killed=True,  # QUORUM of 2 fails until the new one takes writes
            )
            worker = threading.Thread(target=load.run, name="load")
            worker.start()
            try:
                wait_for(lambda: load.searches > 10, 60, "the load to get going")
                replaced = client.replace_replica(old.address, new.address)
                new.start()
                new.wait_ready(120)  # SERVING only once it has caught up
                assert replaced.groups[0].replicas == (cluster.shards[0][0].address, new.address)
                old.stop()
                after = load.writes
                wait_for(lambda: load.writes > after + 20, 60, "writes after the replacement")
            finally:
                load.stop.set()
                worker.join(LOAD_MAX_S)
                load.client.close()
            assert not load.failures, load.failures[:5]
            assert "caught up with" in new.log_path.read_text()
            topology = client.get_topology()
            groups = [[cluster.shards[0][0], new], list(cluster.shards[1])]

            def check() -> None:
                check_every_replica(
                    groups, topology, expected, data.document_vectors, load.uncertain
                )

            wait_until_every_replica_holds(check, 120)
            wait_for(
                lambda: client.verify_replicas(COLLECTION).differing == 0,
                60,
                "verify to find the replicas equal",
            )
    finally:
        new.stop()
