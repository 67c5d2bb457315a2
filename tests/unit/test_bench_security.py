"""bench.security compares plaintext with TLS + mTLS + API keys (issue 14): the
secure cluster requires a key, and every measured call carries it."""

import argparse
import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest

from bench import loadgen
from bench.security import cluster_spec
from shoal.api_keys import key_hash

METHOD = "/bench.Echo/Call"
KEY = "shoal_the-key"


class _RequireKey(grpc.ServerInterceptor):
    """As a coordinator with a keys file: no key, no answer."""

    def intercept_service(self, continuation: Any, details: grpc.HandlerCallDetails) -> Any:
        if ("authorization", f"Bearer {KEY}") in tuple(details.invocation_metadata or ()):
            return continuation(details)

        def deny(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "no API key")

        return grpc.unary_unary_rpc_method_handler(deny)


@pytest.fixture
def keyed_server() -> Iterator[str]:
    server = grpc.server(ThreadPoolExecutor(max_workers=4), interceptors=[_RequireKey()])
    echo: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(
        lambda request, context: request
    )
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("bench.Echo", {"Call": echo})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}"
    server.stop(None)


def test_the_secure_cluster_requires_the_key_the_bench_holds(tmp_path: Path) -> None:
    args = argparse.Namespace(groups=1, replicas=2, dimension=8)
    plain, no_key = cluster_spec(args, False, tmp_path)
    assert not plain.secure and no_key is None and "--api-keys-file" not in plain.coordinator_args
    secure, key = cluster_spec(args, True, tmp_path)
    assert secure.secure and key
    flag, path = secure.coordinator_args
    assert flag == "--api-keys-file"
    (entry,) = json.loads(Path(path).read_text())["keys"]
    assert entry["sha256"] == key_hash(key) and entry["role"] == "admin"


def test_every_measured_call_carries_the_key(keyed_server: str) -> None:
    requests = [b"x"] * 30
    metadata = (("authorization", f"Bearer {KEY}"),)
    calls = loadgen.sequential(keyed_server, METHOD, requests, 5.0, warmup=2, metadata=metadata)
    assert calls.count == 30
    calls = loadgen.concurrent(keyed_server, METHOD, requests, 4, 5.0, warmup=2, metadata=metadata)
    assert calls.count == 30
    with pytest.raises(grpc.RpcError) as error:
        loadgen.sequential(keyed_server, METHOD, requests, 5.0, warmup=2)
    assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
