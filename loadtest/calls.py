"""The method a config calls and the request bytes of each call.

Requests are encoded once (unless a ghz call template such as
{{.RequestNumber}} makes each one different), so on a small machine the tool
spends its CPU on sending, not on protobuf.
"""

import json
import re
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf import descriptor_pool, json_format, message_factory
from google.protobuf.descriptor import MethodDescriptor
from google.protobuf.message import Message

from loadtest.config import LoadConfig, LoadTestError
from shoal.runtime.tls import ClientTls, sync_channel

_TEMPLATE = re.compile(r"\{\{\s*(.*?)\s*\}\}")


def method_path(call: str) -> tuple[str, str]:
    """('shoal.v1.ShoalService', 'Search') from ghz's 'shoal.v1.ShoalService.Search' or '/'."""
    if "/" in call:
        service, _, method = call.strip("/").rpartition("/")
    else:
        service, _, method = call.rpartition(".")
    if not service or not method:
        raise LoadTestError(f"call {call!r}: write it as package.Service.Method")
    return service, method


def builtin_method(call: str) -> MethodDescriptor:
    """The method from the descriptors compiled into this package (shoal.v1)."""
    from shoal.v1 import embedder_pb2, shard_pb2, shoal_pb2  # noqa: F401  (registers them)

    return _find_method(descriptor_pool.Default(), call)


class _WithMetadata(grpc.StreamStreamClientInterceptor):
    """Adds fixed metadata (the API key) to the reflection stream, which the
    reflection client opens without any."""

    def __init__(self, metadata: Sequence[tuple[str, str]]) -> None:
        self._metadata = tuple(metadata)

    def intercept_stream_stream(
        self, continuation: Any, client_call_details: Any, request_iterator: Any
    ) -> Any:
        # grpc's own call details are a namedtuple (grpc._interceptor._ClientCallDetails).
        details = client_call_details._replace(
            metadata=(*(client_call_details.metadata or ()), *self._metadata)
        )
        return continuation(details, request_iterator)


def reflected_method(
    call: str,
    host: str,
    timeout_s: float,
    tls: ClientTls | None = None,
    metadata: Sequence[tuple[str, str]] = (),
) -> MethodDescriptor:
    """The method as the server describes it through gRPC server reflection, asked
    with `metadata` (a server with API keys answers reflection only with a key)."""
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with sync_channel(host, tls) as raw_channel:
        try:
            grpc.channel_ready_future(raw_channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise LoadTestError(f"cannot connect to {host} within {timeout_s:g}s") from None
        channel = grpc.intercept_channel(raw_channel, _WithMetadata(metadata))
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        try:
            method = _find_method(pool, call)
        except grpc.RpcError as error:
            raise LoadTestError(
                f"server reflection at {host}: {error.code().name}: {error.details()}"
            ) from None
        # Resolve the message types while the channel is open.
        message_factory.GetMessageClass(method.input_type)
        return method


def _find_method(pool: descriptor_pool.DescriptorPool, call: str) -> MethodDescriptor:
    service, method = method_path(call)
    try:
        # Through the service: a pool backed by server reflection looks services
        # up in its database, but not methods.
        return pool.FindServiceByName(service).methods_by_name[method]
    except KeyError:
        raise LoadTestError(f"no method {service}.{method}") from None


def build_request(method: MethodDescriptor, data: dict[str, Any]) -> Message:
    """A request message from ghz JSON data (proto field names or their JSON names)."""
    message: Message = message_factory.GetMessageClass(method.input_type)()
    try:
        json_format.ParseDict(data, message)
    except json_format.ParseError as error:
        raise LoadTestError(f"{method.full_name}: bad request data: {error}") from None
    return message


@dataclass(frozen=True)
class CallData:
    """What a ghz call template may use, for one call."""

    request_number: int
    worker_id: str
    method: MethodDescriptor

    def value(self, expression: str) -> str:
        now = time.time_ns()
        values = {
            ".RequestNumber": str(self.request_number),
            ".WorkerID": self.worker_id,
            ".UUID": str(uuid.uuid4()),
            ".FullyQualifiedName": self.method.full_name,
            ".MethodName": self.method.name,
            ".ServiceName": self.method.containing_service.name,
            ".InputName": self.method.input_type.name,
            ".OutputName": self.method.output_type.name,
            ".Timestamp": datetime.fromtimestamp(now / 1e9, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            ".TimestampUnix": str(now // 1_000_000_000),
            ".TimestampUnixMilli": str(now // 1_000_000),
            ".TimestampUnixNano": str(now),
            "newUUID": str(uuid.uuid4()),
        }
        if expression in values:
            return values[expression]
        raise LoadTestError(f"call template {{{{ {expression} }}}} is not supported")


def render_template(text: str, call: CallData) -> str:
    """Substitute ghz's {{ .Field }} templates (the subset CallData knows)."""
    return _TEMPLATE.sub(lambda match: call.value(match.group(1)), text)


class Requests:
    """Serialized requests and metadata for each call, rendered only where templated."""

    def __init__(self, config: LoadConfig, method: MethodDescriptor) -> None:
        self._method = method
        self._items: list[bytes | str] = []
        for item in config.data:
            text = json.dumps(item)
            if _TEMPLATE.search(text):
                self._items.append(text)
            else:
                self._items.append(build_request(method, item).SerializeToString())
        self._metadata = list(config.metadata.items())
        self._templated_metadata = any(_TEMPLATE.search(v) for _, v in self._metadata)
        # Fail now, not on the first call, if a template is not one we know.
        self.request(0, "check")
        self.metadata(0, "check")

    def request(self, number: int, worker_id: str) -> bytes:
        item = self._items[number % len(self._items)]
        if isinstance(item, bytes):
            return item
        rendered = render_template(item, CallData(number, worker_id, self._method))
        return build_request(self._method, json.loads(rendered)).SerializeToString()

    def metadata(self, number: int, worker_id: str) -> tuple[tuple[str, str], ...]:
        if not self._templated_metadata:
            return tuple(self._metadata)
        call = CallData(number, worker_id, self._method)
        return tuple((k, render_template(v, call)) for k, v in self._metadata)
