"""What the coordinator's reads report for metrics, without knowing about Prometheus.

`shoal.metrics.Metrics` satisfies `ReadObserver`; tests and tools that need no
metrics use `NO_OBSERVER`.
"""

from typing import Protocol


class ReadObserver(Protocol):
    def observe_fanout(self, method: str, group: int, seconds: float) -> None: ...

    def record_failover(self, group: int, reason: str) -> None: ...

    def record_partial_result(self, method: str) -> None: ...


class _NoObserver:
    def observe_fanout(self, method: str, group: int, seconds: float) -> None:
        pass

    def record_failover(self, group: int, reason: str) -> None:
        pass

    def record_partial_result(self, method: str) -> None:
        pass


NO_OBSERVER: ReadObserver = _NoObserver()
