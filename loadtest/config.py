"""A ghz config (loadtest/ghz/*.json) read into one `LoadConfig`, as ghz reads it.

Keys ghz honours are honoured, keys that only matter to ghz itself are ignored,
and any other key is refused rather than silently changing the run.
"""

import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoal.runtime.tls import ClientTls, TlsConfigError

ADDRESS_ENV = "SHOAL_ADDRESS"
#: Where a config without a host goes, as for every `shoal` command.
DEFAULT_HOST = "127.0.0.1:50051"
DEFAULT_TOTAL = 200
DEFAULT_CONCURRENCY = 50
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONNECT_TIMEOUT_S = 10.0
#: The hard stop for any run, so a config with neither duration nor a sane total
#: cannot keep a machine busy for long.
DEFAULT_MAX_RUN_S = 300.0

# ghz config keys: those this tool honours, and those that only matter to ghz
# itself (how it finds descriptors, prints) and are ignored
# here. Any other key is refused rather than silently changing the run.
HONOURED_KEYS = {
    "call", "host", "total", "concurrency", "duration", "max-duration", "timeout", "rps",
    "connections", "data", "data-file", "metadata", "name", "skipFirst", "count-errors",
    "insecure", "connect-timeout", "cacert", "cert", "key", "cname", "skipTLS",
    "reflect-metadata",
}  # fmt: skip
IGNORED_KEYS = {
    "proto", "protoset", "import-paths", "format", "output", "cpus", "tags", "debug",
    "keepalive", "enable-compression", "max-recv-message-size", "max-send-message-size",
    "lb-strategy", "duration-stop", "disable-template-functions",
}  # fmt: skip

_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
}  # fmt: skip


class LoadTestError(Exception):
    """A config, data file or method the tool cannot use (the message says which)."""


def parse_duration(value: str | float | int) -> float:
    """Seconds from a Go duration string ('10s', '1m30s', '250ms') or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    text = value.strip()
    if text in ("", "0"):
        return 0.0
    position, seconds = 0, 0.0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            break
        seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        position = match.end()
    if position != len(text):
        raise LoadTestError(f"duration {value!r}: write it like 10s, 1m30s or 250ms")
    return seconds


@dataclass
class LoadConfig:
    """One run, as a ghz config describes it."""

    call: str
    host: str
    data: list[dict[str, Any]]
    total: int = DEFAULT_TOTAL
    concurrency: int = DEFAULT_CONCURRENCY
    duration_s: float = 0.0
    timeout_s: float = DEFAULT_TIMEOUT_S
    connect_timeout_s: float = DEFAULT_CONNECT_TIMEOUT_S
    rps: int = 0
    connections: int = 1
    metadata: dict[str, str] = field(default_factory=dict)
    #: What --reflection sends with its reflection calls (ghz's reflect-metadata);
    #: a coordinator with API keys answers reflection only with a key.
    reflect_metadata: dict[str, str] = field(default_factory=dict)
    name: str = ""
    skip_first: int = 0
    count_errors: bool = False
    #: TLS as ghz's insecure, cacert, cert, key and cname say; None: plaintext.
    tls: ClientTls | None = None

    def check(self) -> None:
        if not self.call:
            raise LoadTestError("the config names no call (e.g. shoal.v1.ShoalService.Search)")
        if not self.host:
            raise LoadTestError("no host: set it in the config or pass --host HOST:PORT")
        if not self.data:
            raise LoadTestError("no request data: give data or data-file")
        for name, value in [("total", self.total), ("concurrency", self.concurrency)]:
            if value < 1:
                raise LoadTestError(f"{name} must be at least 1, not {value}")
        if self.connections < 1 or self.connections > self.concurrency:
            raise LoadTestError("connections must be between 1 and concurrency")


def _data_items(data: Any, origin: str) -> list[dict[str, Any]]:
    """ghz data: one request object, or a list of them used round-robin."""
    items = data if isinstance(data, list) else [data]
    if not items or not all(isinstance(item, dict) for item in items):
        raise LoadTestError(f"{origin}: data must be an object or a non-empty list of objects")
    return items


def _tls(raw: dict[str, Any], path: Path) -> ClientTls | None:
    """ghz's TLS: plaintext with `insecure: true`; otherwise TLS, checked with
    `cacert` (else the system's CAs), `cert` and `key` for a client certificate,
    `cname` the name the server's certificate must carry. Unlike ghz, a config
    that says neither `insecure` nor `cacert` is plaintext (as this tool has
    always run it); `insecure: false` or any of cacert, cert, key turns TLS on,
    as `shoal loadtest --cacert CA` does for Shoal's own configs."""
    if "skipTLS" in raw:
        raise LoadTestError(f"{path}: skipTLS is not supported: give the server's CA as cacert")
    wants_tls = raw.get("insecure") is False or any(raw.get(k) for k in ("cacert", "cert", "key"))
    if not wants_tls:
        return None
    paths = {key: Path(raw[key]) if raw.get(key) else None for key in ("cacert", "cert", "key")}
    try:
        return ClientTls(
            ca=paths["cacert"],
            cert=paths["cert"],
            key=paths["key"],
            server_name=str(raw["cname"]) if raw.get("cname") else None,
        )
    except TlsConfigError as error:
        raise LoadTestError(f"{path}: {error}") from None


def load_config(path: Path, overrides: dict[str, Any] | None = None) -> LoadConfig:
    """Read a ghz JSON config; `overrides` (ghz key -> value) win over the file.

    As in ghz, a relative data-file is read from the current directory.
    """
    try:
        raw: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise LoadTestError(f"{path}: {error}") from None
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    unknown = set(raw) - HONOURED_KEYS - IGNORED_KEYS
    if unknown:
        raise LoadTestError(f"{path}: ghz options {sorted(unknown)} are not supported here")
    tls = _tls(raw, path)

    if "data-file" in raw:
        data_path = Path(raw["data-file"])
        try:
            data = json.loads(data_path.read_text())
        except OSError as error:
            raise LoadTestError(
                f"data-file {data_path}: {error.strerror}; run from the repository root, "
                "after `python -m loadtest.generate` has written the data"
            ) from None
        items = _data_items(data, str(data_path))
    elif "data" in raw:
        items = _data_items(raw["data"], str(path))
    else:
        items = []

    duration = parse_duration(raw.get("duration", 0))
    max_duration = parse_duration(raw.get("max-duration", 0))
    total = int(raw.get("total", DEFAULT_TOTAL))
    if max_duration > 0:  # ghz: max-duration caps a count-bound run
        duration = max_duration
    elif duration > 0:  # ghz: with a duration, total is ignored
        total = sys.maxsize
    config = LoadConfig(
        call=str(raw.get("call", "")),
        host=str(raw.get("host", "")),
        data=items,
        total=total,
        concurrency=int(raw.get("concurrency", DEFAULT_CONCURRENCY)),
        duration_s=duration,
        timeout_s=parse_duration(raw.get("timeout", DEFAULT_TIMEOUT_S)),
        connect_timeout_s=parse_duration(raw.get("connect-timeout", DEFAULT_CONNECT_TIMEOUT_S)),
        rps=int(raw.get("rps", 0)),
        connections=int(raw.get("connections", 1)),
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
        reflect_metadata={str(k): str(v) for k, v in (raw.get("reflect-metadata") or {}).items()},
        name=str(raw.get("name", "")),
        skip_first=int(raw.get("skipFirst", 0)),
        count_errors=bool(raw.get("count-errors", False)),
        tls=tls,
    )
    return config
