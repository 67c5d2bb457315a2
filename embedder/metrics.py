"""The embedder's metric families, on top of those every server has (shoal.runtime.metrics).

- shoal_embedder_batch_size: texts encoded at once
- shoal_embedder_queue_wait_seconds: how long a text waited for its batch
- shoal_embedder_encode_seconds: how long the model took per batch

It satisfies core's `BatchObserver` (embedder/core/batcher.py).
"""

from prometheus_client import CollectorRegistry, Histogram

from shoal.runtime.metrics import LATENCY_BUCKETS, Metrics

SERVICE = "embedder"

#: Texts per encoded batch (the embedder's --max-batch is at most a few hundred).
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
#: Seconds a text waits for a batch to fill (at most --max-wait-ms) or for the model.
QUEUE_WAIT_BUCKETS = (0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1.0, 5.0)


class EmbedderMetrics(Metrics):
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        super().__init__(SERVICE, registry)
        r = self.registry
        self.batch_size = Histogram(
            "shoal_embedder_batch_size",
            "Texts the model encoded at once.",
            buckets=BATCH_SIZE_BUCKETS,
            registry=r,
        )
        self.queue_wait = Histogram(
            "shoal_embedder_queue_wait_seconds",
            "Time a text waited before its batch went to the model.",
            buckets=QUEUE_WAIT_BUCKETS,
            registry=r,
        )
        self.encode_seconds = Histogram(
            "shoal_embedder_encode_seconds",
            "Time the model took to encode one batch.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )

    def observe_embed_batch(self, size: int, encode_seconds: float) -> None:
        self.batch_size.observe(size)
        self.encode_seconds.observe(encode_seconds)

    def observe_queue_wait(self, seconds: float) -> None:
        self.queue_wait.observe(seconds)
