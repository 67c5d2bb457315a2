"""The coordinator's metric families, on top of those every server has (shoal.runtime.metrics).

- shoal_fanout_seconds per method and shard group
- shoal_failovers_total per group and reason, shoal_partial_results_total per method
- replication: shoal_hinted_writes_total per replica and outcome,
  shoal_replica_divergence_total per group, shoal_replica_repairs_total and
  shoal_replica_repairs_skipped_total (versions beyond the clock horizon) per
  group and source

It satisfies core's `ReadObserver` and `ReplicationObserver`
(coordinator/core/observer.py), so core records figures without knowing
about Prometheus.
"""

from prometheus_client import CollectorRegistry, Counter, Histogram

from shoal.runtime.metrics import LATENCY_BUCKETS, Metrics

SERVICE = "coordinator"


class CoordinatorMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(SERVICE, registry)
        r = self.registry
        self.fanout_seconds = Histogram(
            "shoal_fanout_seconds",
            "Time one shard group took to answer the coordinator's part of a read.",
            ["method", "group"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.failovers = Counter(
            "shoal_failovers",
            "Reads retried on another replica of a shard group.",
            ["group", "reason"],
            registry=r,
        )
        self.partial_results = Counter(
            "shoal_partial_results",
            "Reads answered without every shard group (allow_partial).",
            ["method"],
            registry=r,
        )
        self.hinted_writes = Counter(
            "shoal_hinted_writes",
            "Writes kept for replicas that missed them, by what became of them"
            " (queued, replayed, dropped).",
            ["replica", "outcome"],
            registry=r,
        )
        self.divergence = Counter(
            "shoal_replica_divergence",
            "Documents found differing between the replicas of a shard group (VerifyReplicas).",
            ["group"],
            registry=r,
        )
        self.repairs = Counter(
            "shoal_replica_repairs",
            "Documents copied to replicas that were behind, by source (verify, read_repair).",
            ["group", "source"],
            registry=r,
        )
        self.repairs_skipped = Counter(
            "shoal_replica_repairs_skipped",
            "Records a repair did not copy because their version is beyond the clock"
            " horizon (no replica would accept them), by source.",
            ["group", "source"],
            registry=r,
        )

    def observe_fanout(self, method: str, group: int, seconds: float) -> None:
        self.fanout_seconds.labels(method, str(group)).observe(seconds)

    def record_failover(self, group: int, reason: str) -> None:
        """`reason`: the status that made the coordinator try another replica."""
        self.failovers.labels(str(group), reason).inc()

    def record_partial_result(self, method: str) -> None:
        self.partial_results.labels(method).inc()

    def record_hints(self, replica: str, outcome: str, writes: int) -> None:
        self.hinted_writes.labels(replica, outcome).inc(writes)

    def record_divergence(self, group: int, documents: int) -> None:
        self.divergence.labels(str(group)).inc(documents)

    def record_repairs(self, group: int, source: str, documents: int) -> None:
        self.repairs.labels(str(group), source).inc(documents)

    def record_repairs_skipped(self, group: int, source: str, documents: int) -> None:
        self.repairs_skipped.labels(str(group), source).inc(documents)
