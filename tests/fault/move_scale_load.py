"""The load and the checks of the partition-move tests at scale
(tests/fault/test_partition_moves_at_scale.py), kept apart so the test file
reads as the scenarios.

`LiveSet` is what the cluster should hold: every id's acknowledged vector (or
deleted), and the ids a failed write left uncertain. Because one thread both
writes and searches, the set is exact at the moment each search is sent, so
each search's recall@10 is measured against exact (numpy) search over the live
documents of that moment. Recall counts a hit as right when its true score
reaches the tenth-best exact score: the load gives ids vectors other ids hold
too, and ties must not count as misses.
"""

import random
import threading
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from shoal import Client
from shoal.errors import DeadlineExceeded, Unavailable
from shoal.topology import Topology
from tests.fault import replicas

#: Score slack when a hit is compared with the tenth exact score (float32 sums).
SCORE_EPSILON = 1e-4
K = 10


class LiveSet:
    """Acknowledged state: id -> corpus row of its vector, or None (deleted)."""

    def __init__(self, vectors: npt.NDArray[np.float32], ids: Sequence[str], new_ids: int) -> None:
        self.vectors = vectors
        self.ids: list[str] = [*ids, *(f"new-{n}" for n in range(new_ids))]
        self.slot = {doc_id: n for n, doc_id in enumerate(self.ids)}
        self.matrix = np.zeros((len(self.ids), vectors.shape[1]), dtype=np.float32)
        self.live = np.zeros(len(self.ids), dtype=bool)
        self.certain = np.ones(len(self.ids), dtype=bool)
        #: What `check_every_replica` takes: the ids ever written, as last acknowledged.
        self.expected: dict[str, int | None] = {}
        self.uncertain: dict[str, set[int | None]] = {}
        #: Ids written at least once (the load deletes and rewrites among these).
        self.known: list[str] = []

    def acknowledged(self, doc_id: str, row: int | None) -> None:
        n = self.slot[doc_id]
        if doc_id not in self.expected:
            self.known.append(doc_id)
        self.expected[doc_id] = row
        self.uncertain.pop(doc_id, None)
        self.certain[n] = True
        self.live[n] = row is not None
        if row is not None:
            self.matrix[n] = self.vectors[row]

    def failed(self, doc_id: str, row: int | None) -> None:
        """A write that failed may or may not have been applied."""
        if doc_id not in self.expected and doc_id not in self.uncertain:
            self.known.append(doc_id)
        self.uncertain.setdefault(doc_id, {self.expected.get(doc_id)}).add(row)
        self.certain[self.slot[doc_id]] = False

    def live_count(self) -> int:
        return int(self.live.sum())

    def recall(self, query: npt.NDArray[np.float32], hits: Sequence[str]) -> float:
        """Share of the K exact nearest live documents the hits got (ties count)."""
        scores = self.matrix @ query
        reference = np.where(self.live & self.certain, scores, -np.inf)
        kth = np.partition(reference, -K)[-K]
        right = 0
        for doc_id in hits[:K]:
            n = self.slot.get(doc_id)
            if n is None:
                continue
            if self.certain[n]:
                if self.live[n] and scores[n] >= kth - SCORE_EPSILON:
                    right += 1
                continue
            states = [row for row in self.uncertain[doc_id] if row is not None]
            if any(float(self.vectors[row] @ query) >= kth - SCORE_EPSILON for row in states):
                right += 1
        return right / K

    def dead_hits(self, hits: Sequence[str]) -> list[str]:
        """Hits for ids that are certainly deleted (or were never written)."""
        dead = []
        for doc_id in hits:
            n = self.slot.get(doc_id)
            if n is None or (self.certain[n] and not self.live[n]):
                dead.append(doc_id)
        return dead


@dataclass
class PhaseFigures:
    searches: int = 0
    failed_searches: int = 0
    writes: int = 0
    failed_writes: int = 0
    #: query index -> recall@10 of each search of it in this phase.
    recall: dict[int, list[float]] = field(default_factory=lambda: defaultdict(list))

    def mean_recall(self) -> float:
        values = [r for rs in self.recall.values() for r in rs]
        return float(np.mean(values)) if values else float("nan")


@dataclass
class ScaleLoad:
    """One thread of QUORUM upserts (new and existing ids), deletes and searches,
    sent to the coordinators in `clients` (the first not in `avoid`: the test
    steers the load off a coordinator before it SIGKILLs it)."""

    collection: str
    clients: dict[str, Client]
    live: LiveSet
    queries: npt.NDArray[np.float32]
    #: Query rows the searches take in turn, from the start in each phase, so the
    #: phases' recalls compare the same queries.
    probe: Sequence[int]
    max_ops: int
    max_s: float
    #: Replicas get killed: a write may then fail (not acknowledged; its ids left
    #: uncertain until a later write succeeds). Searches must never fail.
    writes_may_fail: bool = False
    seed: int = 16
    stop: threading.Event = field(default_factory=threading.Event)
    avoid: set[str] = field(default_factory=set)
    #: The coordinator the call in flight went to (None between calls).
    busy: str | None = None
    phase: str = "before"
    phases: dict[str, PhaseFigures] = field(default_factory=lambda: defaultdict(PhaseFigures))
    failures: list[str] = field(default_factory=list)
    duplicates: list[list[str]] = field(default_factory=list)
    dead: list[tuple[str, list[str]]] = field(default_factory=list)
    ops: int = 0
    _cursor: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def set_phase(self, phase: str) -> None:
        with self._lock:
            self.phase = phase
            self._cursor = 0

    def figures(self, phase: str) -> PhaseFigures:
        return self.phases[phase]

    def searches(self, phase: str | None = None) -> int:
        if phase is not None:
            return self.phases[phase].searches
        return sum(p.searches for p in self.phases.values())

    def writes(self) -> int:
        return sum(p.writes for p in self.phases.values())

    def _client(self) -> tuple[str, Client]:
        with self._lock:
            for name, client in self.clients.items():
                if name not in self.avoid:
                    self.busy = name
                    return name, client
        raise RuntimeError("every coordinator is avoided")

    def steer_off(self, name: str, timeout_s: float = 60.0) -> None:
        """No call goes to `name` from here; returns once none is in flight there."""
        with self._lock:
            self.avoid.add(name)
        deadline = time.monotonic() + timeout_s
        while self.busy == name and time.monotonic() < deadline:
            time.sleep(0.01)
        if self.busy == name:
            raise AssertionError(f"a call to {name} still runs after {timeout_s:.0f} s")

    def replace_client(self, name: str, client: Client) -> None:
        """Another client for `name` (avoided meanwhile); the old one is closed."""
        with self._lock:
            old, self.clients[name] = self.clients[name], client
        old.close()

    def allow(self, name: str) -> None:
        with self._lock:
            self.avoid.discard(name)

    def run(self) -> None:
        rng = random.Random(self.seed)
        started = time.monotonic()
        while not self.stop.is_set() and self.ops < self.max_ops:
            if time.monotonic() - started > self.max_s:
                break
            self.ops += 1
            choice = rng.random()
            phase = self.phase
            try:
                if choice < 0.35:
                    self._upsert(rng, phase)
                elif choice < 0.45:
                    self._write(phase, {rng.choice(self.live.known): None})
                else:
                    self._search(phase)
            except Exception as error:  # every failure is a finding
                self.failures.append(f"[{phase}] {type(error).__name__}: {error}")
            finally:
                self.busy = None

    def _search(self, phase: str) -> None:
        with self._lock:
            index = self.probe[self._cursor % len(self.probe)]
            self._cursor += 1
        query = self.queries[index]
        figures = self.phases[phase]
        _, client = self._client()
        try:
            result = client.search(self.collection, query, k=K, include=())
        except Exception:
            figures.failed_searches += 1
            raise
        ids = [str(i) for i in result.ids]
        figures.searches += 1
        if len(ids) != len(set(ids)):
            self.duplicates.append(ids)
        dead = self.live.dead_hits(ids)
        if dead:
            self.dead.append((phase, dead))
        figures.recall[index].append(self.live.recall(query, ids))

    def _upsert(self, rng: random.Random, phase: str) -> None:
        batch: dict[str, int | None] = {}
        new_ids = len(self.live.ids) - len(self.live.vectors)
        for _ in range(8):
            if rng.random() < 0.5:
                doc_id = f"new-{rng.randrange(new_ids)}"
            else:
                doc_id = rng.choice(self.live.known)
            batch[doc_id] = rng.randrange(len(self.live.vectors))
        self._write(phase, batch)

    def _write(self, phase: str, batch: dict[str, int | None]) -> None:
        figures = self.phases[phase]
        _, client = self._client()
        try:
            upserts = [
                {"id": i, "vector": self.live.vectors[row]}
                for i, row in batch.items()
                if row is not None
            ]
            if upserts:
                client.upsert(self.collection, upserts, consistency="quorum")
            deletes = [i for i, row in batch.items() if row is None]
            if deletes:
                client.delete(self.collection, deletes, consistency="quorum")
        except (Unavailable, DeadlineExceeded):
            figures.failed_writes += 1
            for doc_id, row in batch.items():
                self.live.failed(doc_id, row)
            if not self.writes_may_fail:
                raise
            return
        for doc_id, row in batch.items():
            self.live.acknowledged(doc_id, row)
        figures.writes += 1


@dataclass(frozen=True)
class Finding:
    kind: str  # lost, resurrected, stale, misplaced
    doc_id: str
    replica: str
    detail: str = ""


def replica_findings(
    collection: str,
    partitions: int,
    groups: Sequence[Sequence[tuple[str, str]]],
    topology: Topology,
    live: LiveSet,
) -> list[Finding]:
    """Every id ever written checked on every replica ((name, address) per group,
    indexed as `topology`'s groups): live where its partition lives, as last
    acknowledged, and nowhere else (uncertain ids: in one of their states)."""
    vectors = live.vectors
    all_ids = sorted(set(live.expected) | set(live.uncertain))
    findings: list[Finding] = []
    for group, members in enumerate(groups):
        for name, address in members:
            stored = replicas.documents(address, collection, all_ids)
            for doc_id in all_ids:
                owner = topology.group_of(doc_id, partitions)
                found = stored.get(doc_id)
                if group != owner:
                    if found is not None:
                        findings.append(Finding("misplaced", doc_id, name, f"owner {owner}"))
                    continue
                if doc_id in live.uncertain:
                    allowed = {
                        None if row is None else vectors[row].astype("<f4").tobytes()
                        for row in live.uncertain[doc_id]
                    }
                    state = None if found is None else found.vector
                    if state not in allowed:
                        findings.append(Finding("stale", doc_id, name, "uncertain id"))
                    continue
                row = live.expected[doc_id]
                if row is None:
                    if found is not None:
                        findings.append(Finding("resurrected", doc_id, name))
                elif found is None:
                    findings.append(Finding("lost", doc_id, name, f"row {row}"))
                elif found.vector != vectors[row].astype("<f4").tobytes():
                    findings.append(Finding("stale", doc_id, name, f"row {row}"))
    return findings


def summary(findings: Sequence[Finding], limit: int = 10) -> str:
    """Counts per kind and replica, and the first few of each kind."""
    if not findings:
        return "none"
    by_kind: dict[str, list[Finding]] = defaultdict(list)
    for finding in findings:
        by_kind[finding.kind].append(finding)
    lines = []
    for kind, found in sorted(by_kind.items()):
        per_replica: dict[str, int] = defaultdict(int)
        for finding in found:
            per_replica[finding.replica] += 1
        lines.append(f"{kind}: {len(found)} ({dict(per_replica)})")
        lines += [f"  {f.doc_id} on {f.replica} {f.detail}" for f in found[:limit]]
    return "\n".join(lines)
