"""The shard's metric families, on top of those every server has (shoal.runtime.metrics).

- shoal_documents, shoal_index_elements, shoal_index_bytes per collection, with
  the shard's `group` and `replica` (its advertised address), so the replicas
  of a group, several of which may run on one host, stay apart
- shoal_catch_up_records_total per collection (records copied from peers)
- shoal_tombstones_purged_total per collection
"""

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge

from shoal.runtime.metrics import Metrics

SERVICE = "shard"


class ShardMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(SERVICE, registry)
        r = self.registry
        per_replica = ["collection", "group", "replica"]
        self.documents = Gauge("shoal_documents", "Live documents stored.", per_replica, registry=r)
        self.index_elements = Gauge(
            "shoal_index_elements",
            "Elements in the HNSW index, deleted ones included until compaction.",
            per_replica,
            registry=r,
        )
        self.index_bytes = Gauge(
            "shoal_index_bytes", "Memory the HNSW index takes.", per_replica, registry=r
        )
        self.catch_up_records = Counter(
            "shoal_catch_up_records",
            "Records a shard copied from its peers (anti-entropy), tombstones included.",
            ["collection"],
            registry=r,
        )
        self.tombstones_purged = Counter(
            "shoal_tombstones_purged",
            "Tombstones a shard removed after the grace period.",
            ["collection"],
            registry=r,
        )

    @property
    def _sizes(self) -> tuple[Gauge, Gauge, Gauge]:
        return self.documents, self.index_elements, self.index_bytes

    def _labels(self, collection: str) -> tuple[str, str, str]:
        replica, group = self.identity
        return collection, group, replica

    def identify(self, replica: str, group: str = "") -> None:
        """A new identity drops the size series labelled with the old one; the
        next report sets them again under the new labels."""
        if (replica, group) != self.identity:
            for gauge in self._sizes:
                gauge.clear()
        super().identify(replica, group)

    def record_catch_up(self, collection: str, records: int) -> None:
        self.catch_up_records.labels(collection).inc(records)

    def record_purge(self, collection: str, tombstones: int) -> None:
        self.tombstones_purged.labels(collection).inc(tombstones)

    def set_collection_size(
        self, collection: str, *, documents: int, index_elements: int, index_bytes: int
    ) -> None:
        """Record what this replica holds for one collection (after writes, or periodically)."""
        labels = self._labels(collection)
        self.documents.labels(*labels).set(documents)
        self.index_elements.labels(*labels).set(index_elements)
        self.index_bytes.labels(*labels).set(index_bytes)

    def forget_collection(self, collection: str) -> None:
        """Drop a deleted collection's series, so dashboards do not show it forever."""
        labels = self._labels(collection)
        for gauge in self._sizes:
            with contextlib.suppress(KeyError):
                gauge.remove(*labels)
