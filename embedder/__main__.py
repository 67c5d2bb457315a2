"""`python -m embedder`: settings -> model loader -> core -> servicer -> server.

Every flag also reads SHOAL_<FLAG_UPPER_SNAKE> from the environment as its
default (e.g. SHOAL_MAX_BATCH), which is how Kubernetes configures it.
"""

import argparse
import asyncio
import functools
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from embedder.api.servicer import EmbedderServicer
from embedder.core.service import EmbeddingService, Limits
from embedder.encoders import MINILM, check_model_name, load_encoder
from embedder.metrics import EmbedderMetrics
from shoal.runtime.balancing import CONNECTION_AGE_OPTIONS
from shoal.runtime.cpus import available_cpus
from shoal.runtime.logs import configure_logging
from shoal.runtime.server import ServerSpec, Service, serve
from shoal.runtime.settings import (
    ServerSettings,
    add_server_flags,
    env,
    non_negative_float,
    positive_int,
)
from shoal.runtime.tls import COORDINATOR_IDENTITY
from shoal.v1 import embedder_pb2

DEFAULT_PORT = 50071


def _model(text: str) -> str:
    try:
        check_model_name(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m embedder", description=__doc__)
    add_server_flags(parser, DEFAULT_PORT, [COORDINATOR_IDENTITY])
    parser.add_argument(
        "--model", type=_model, default=env("model", MINILM),
        help=f"{MINILM} (real, offline) or hash-<dim> (a fake for tests)",
    )  # fmt: skip
    parser.add_argument(
        "--max-batch", type=positive_int, default=env("max-batch", "64"),
        help="texts the model encodes at once",
    )  # fmt: skip
    parser.add_argument(
        "--max-wait-ms", type=non_negative_float, default=env("max-wait-ms", "10"),
        help="how long a text waits for others to fill a batch",
    )  # fmt: skip
    parser.add_argument(
        "--max-texts", type=positive_int, default=env("max-texts", "256"),
        help="texts per Embed call (reported as GetInfo.max_batch)",
    )  # fmt: skip
    parser.add_argument(
        "--max-input-chars", type=positive_int, default=env("max-input-chars", "8192"),
        help="characters per text",
    )  # fmt: skip
    parser.add_argument(
        "--torch-threads", "--threads", type=positive_int, default=default_torch_threads(),
        help="torch threads for encoding (default: the CPUs this process may use, within"
        f" its cgroup's CPU limit: {available_cpus()} here; SHOAL_THREADS, the older name,"
        " is read too)",
    )  # fmt: skip
    return parser.parse_args(argv)


def default_torch_threads() -> str:
    """SHOAL_TORCH_THREADS; else SHOAL_THREADS, which manifests written before the flag
    had its own name set (`shoal up` always passes the flag, so the shards' setting in
    the same environment never reaches its embedder); else every CPU we may use."""
    return env("torch-threads") or env("threads") or str(available_cpus())


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    server = ServerSettings.from_args(args)
    configure_logging("embedder", server.log_level, server.log_format)
    metrics = EmbedderMetrics()
    # Before sentence-transformers is imported (lazily, when the model loads): the
    # model ships in a package and the embedder must never reach for the network.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    limits = Limits(
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        max_texts=args.max_texts,
        max_input_chars=args.max_input_chars,
        max_queued_texts=max(Limits.max_queued_texts, args.max_texts),
    )
    # One encoding thread: torch spreads each batch over `threads` cores itself.
    executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="encode")
    service = EmbeddingService(
        functools.partial(load_encoder, args.model, args.torch_threads), limits, executor, metrics
    )

    async def stop() -> None:
        await service.stop()
        executor.shutdown(wait=False, cancel_futures=True)

    spec = ServerSpec(
        server,
        metrics=metrics,
        services=[
            Service(
                name=embedder_pb2.DESCRIPTOR.services_by_name["EmbedderService"].full_name,
                servicer=EmbedderServicer(service),
            )
        ],
        start=service.start,
        stop=stop,
        # The coordinator balances per call over the embedders' addresses and
        # resolves them again when a connection ages out: it finds new embedders.
        options=CONNECTION_AGE_OPTIONS,
    )
    asyncio.run(serve(spec))


if __name__ == "__main__":
    main()
