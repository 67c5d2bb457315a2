"""JSON logs, and a request id that follows one request through every service.

A client may send `x-request-id` metadata (ghz and `shoal loadtest` do); the
coordinator takes it, or makes one up, and every call it makes to shards and
the embedder carries it on, so one grep over the JSON logs of all pods shows a
request's whole path. The id lives in a ContextVar: grpc.aio runs each RPC in a
task of its own, so concurrent requests never see each other's id.

Wiring: shoal.runtime.server configures logging (--log-format json) and wraps every
handler with `with_request_id`; a call to another service passes
`metadata=outgoing_metadata()`.
"""

from __future__ import annotations

import contextvars
import json
import logging
import random
import re
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar

import grpc
import grpc.aio

REQUEST_ID_KEY = "x-request-id"
#: What we accept from a caller as an id: short, printable, no spaces or quotes,
#: so a client cannot forge log lines or flood them. Anything else is replaced.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:/+=@-]{1,128}")

# The one module-level object: a ContextVar is a key into each task's context,
# not shared state; every request sets and resets its own value.
_request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "shoal_request_id", default=None
)

_access_log = logging.getLogger("shoal.access")
_P = ParamSpec("_P")
_T = TypeVar("_T")
if TYPE_CHECKING:
    from shoal.runtime.handlers import Handler

    MetadataLike = Iterable[tuple[str, str | bytes]]


def new_request_id() -> str:
    """32 random hex digits (an id to grep for, not a secret: no os.urandom per request)."""
    return f"{random.getrandbits(128):032x}"


def current_request_id() -> str | None:
    """The id of the request this task (or copied context) is handling, if any."""
    return _request_id.get()


@contextmanager
def request_context(request_id: str) -> Iterator[str]:
    """Make `request_id` current within the block."""
    token = _request_id.set(request_id)
    try:
        yield request_id
    finally:
        _request_id.reset(token)


def request_id_from_metadata(metadata: MetadataLike | None) -> str:
    """The caller's `x-request-id` if it is a sensible one, else a new id."""
    for key, value in metadata or ():
        if key.lower() != REQUEST_ID_KEY:
            continue
        text = value.decode("ascii", "replace") if isinstance(value, bytes) else value
        if _VALID_REQUEST_ID.fullmatch(text):
            return text
        break
    return new_request_id()


def outgoing_metadata(extra: Sequence[tuple[str, str]] = ()) -> tuple[tuple[str, str], ...]:
    """Metadata for a call to another service: the current request id, then `extra`."""
    request_id = _request_id.get()
    carried = ((REQUEST_ID_KEY, request_id),) if request_id is not None else ()
    return (*carried, *extra)


def with_request_context(function: Callable[_P, _T]) -> Callable[_P, _T]:
    """`function` running in a copy of the caller's context, for thread pools.

    loop.run_in_executor does not carry context variables into the worker
    thread; wrap the function so its log lines keep the request id.
    """
    context = contextvars.copy_context()

    def run(*args: _P.args, **kwargs: _P.kwargs) -> _T:
        return context.run(function, *args, **kwargs)

    return run


def with_request_id(method: str, handler: Handler) -> Handler:
    """Makes the RPC's request id (from metadata, or new) current while it runs,
    and logs each call at DEBUG level: an access log tied to the request id."""

    async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        # The ContextVar set and reset by hand: `request_context`'s generator-based
        # context manager costs more than the rest of this wrapper, on every call.
        token = _request_id.set(request_id_from_metadata(context.invocation_metadata()))
        try:
            _access_log.debug("%s", method)
            return await handler(request, context)
        finally:
            _request_id.reset(token)

    return call


# Attributes every LogRecord has; anything else came from `extra=` and is logged too.
_RECORD_ATTRIBUTES = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "request_id"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, service, request_id, extras."""

    def __init__(self, service: str | None = None) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": _utc_timestamp(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if self.service is not None:
            entry["service"] = self.service
        request_id = getattr(record, "request_id", None)
        if request_id in (None, "-"):
            request_id = _request_id.get()
        if request_id is not None:
            entry["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def _utc_timestamp(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


class RequestIdFilter(logging.Filter):
    """Puts the current request id on each record (`-` outside a request), for text logs."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "request_id", None):
            record.request_id = _request_id.get() or "-"
        return True


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


def configure_logging(service: str, level: str = "INFO", fmt: str = "text") -> logging.Handler:
    """Send the root logger's records to stderr as JSON (`fmt="json"`) or text.

    Replaces the handlers already on the root logger, so calling it twice
    (tests, restarts in one process) does not print every line twice.
    """
    if fmt not in ("json", "text"):
        raise ValueError(f"log format {fmt!r}: choose json or text")
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(
        JsonFormatter(service) if fmt == "json" else logging.Formatter(TEXT_FORMAT)
    )
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    return handler
