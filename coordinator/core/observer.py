"""What the coordinator reports for metrics, without knowing about Prometheus.

`coordinator.metrics.CoordinatorMetrics` satisfies `ReadObserver` and `ReplicationObserver`;
tests and tools that need no metrics use `NO_OBSERVER` and
`NO_REPLICATION_OBSERVER`.
"""

from typing import Protocol


class ReadObserver(Protocol):
    def observe_fanout(self, method: str, group: int, seconds: float) -> None: ...

    def record_failover(self, group: int, reason: str) -> None: ...

    def record_partial_result(self, method: str) -> None: ...


class ReplicationObserver(Protocol):
    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        """`outcome`: queued, replayed or dropped (overflow, age, or a write no
        replica will take)."""
        ...

    def record_divergence(self, group: int, documents: int) -> None:
        """Documents found differing between the replicas of a group."""
        ...

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        """Documents copied to replicas that were behind; `source`: verify or read_repair."""
        ...

    def record_repairs_skipped(self, group: int, source: str, documents: int) -> None:
        """Records a repair did not copy: their version is beyond the clock horizon."""
        ...


class _NoObserver:
    def observe_fanout(self, method: str, group: int, seconds: float) -> None:
        pass

    def record_failover(self, group: int, reason: str) -> None:
        pass

    def record_partial_result(self, method: str) -> None:
        pass

    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        pass

    def record_divergence(self, group: int, documents: int) -> None:
        pass

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        pass

    def record_repairs_skipped(self, group: int, source: str, documents: int) -> None:
        pass


NO_OBSERVER: ReadObserver = _NoObserver()
NO_REPLICATION_OBSERVER: ReplicationObserver = _NoObserver()
