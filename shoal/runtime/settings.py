"""Command-line flags every Shoal server shares.

Every flag also reads SHOAL_<FLAG_UPPER_SNAKE> from the environment as its
default (how the Kubernetes manifests configure the services).
"""

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shoal.runtime.help_format import ServerHelpFormatter, env_name
from shoal.runtime.keepalive import DEFAULT_INTERVAL_MS, MIN_INTERVAL_MS, Keepalive
from shoal.runtime.tls import ClientTls, ServerTls, TlsConfigError


def env(flag: str, default: str | None = None) -> str | None:
    """The environment's default for --flag."""
    return os.environ.get(env_name(flag), default)


def positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value


def positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive number")
    return value


def non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"{text} is negative")
    return value


def keepalive_interval(text: str) -> int:
    value = int(text)
    if value < MIN_INTERVAL_MS:
        raise argparse.ArgumentTypeError(f"{text} ms is below the minimum, {MIN_INTERVAL_MS} ms")
    return value


def boolean(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise argparse.ArgumentTypeError(f"{text!r} is not a boolean")


def _path(value: str | None) -> Path | None:
    return Path(value) if value else None


@dataclass(frozen=True)
class TlsSettings:
    """The certificates a server serves and shows (see shoal.runtime.tls); all
    None, or `insecure`: plaintext, which the server logs as a warning."""

    cert: Path | None = None
    key: Path | None = None
    client_ca: Path | None = None
    allowed_clients: frozenset[str] = frozenset()
    cluster_ca: Path | None = None
    cluster_cert: Path | None = None
    cluster_key: Path | None = None
    insecure: bool = False

    def server(self) -> ServerTls | None:
        """This server's TLS, or None for plaintext."""
        if self.insecure or self.cert is None or self.key is None:
            return None
        return ServerTls(self.cert, self.key, self.client_ca, self.allowed_clients)

    def cluster(self) -> ClientTls | None:
        """How this process calls the other Shoal services, or None for plaintext:
        the cluster CA, and its own certificate (the cluster one, else the served one)."""
        if self.insecure or self.cluster_ca is None:
            return None
        if self.cluster_cert is not None:
            return ClientTls(self.cluster_ca, self.cluster_cert, self.cluster_key)
        return ClientTls(self.cluster_ca, self.cert, self.key)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "TlsSettings":
        tls = cls(
            cert=_path(args.tls_cert),
            key=_path(args.tls_key),
            client_ca=_path(args.tls_client_ca),
            allowed_clients=frozenset(
                name.strip() for name in args.tls_allowed_clients.split(",") if name.strip()
            ),
            cluster_ca=_path(args.cluster_ca),
            cluster_cert=_path(args.cluster_cert),
            cluster_key=_path(args.cluster_key),
            insecure=args.insecure,
        )
        if not tls.insecure:
            if (tls.cert is None) != (tls.key is None):
                raise SystemExit("--tls-cert and --tls-key go together: give both or neither")
            if tls.client_ca is not None and tls.cert is None:
                raise SystemExit("--tls-client-ca needs --tls-cert and --tls-key")
            try:
                tls.cluster()
            except TlsConfigError as error:
                raise SystemExit(f"--cluster-cert and --cluster-key: {error}") from None
        return tls


@dataclass(frozen=True)
class ServerSettings:
    host: str
    port: int
    port_file: Path | None
    metrics_port: int  # 0: no metrics endpoint
    log_level: str
    log_format: str
    grace_seconds: float
    keepalive_ms: int = DEFAULT_INTERVAL_MS
    metrics_host: str = ""  # empty: the same as host
    tls: TlsSettings = TlsSettings()
    #: A plaintext port that serves only grpc.health.v1 (0: none), for probes
    #: that cannot speak TLS (the kubelet's gRPC probe).
    health_port: int = 0

    @property
    def keepalive(self) -> Keepalive:
        return Keepalive(self.keepalive_ms)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "ServerSettings":
        return cls(
            host=args.host,
            port=args.port,
            port_file=args.port_file,
            metrics_port=args.metrics_port,
            log_level=args.log_level,
            log_format=args.log_format,
            grace_seconds=args.grace_seconds,
            keepalive_ms=args.keepalive_ms,
            metrics_host=args.metrics_host,
            tls=TlsSettings.from_args(args),
            health_port=args.health_port,
        )


def add_server_flags(
    parser: argparse.ArgumentParser, default_port: int, allowed_clients: Sequence[str] = ()
) -> None:
    """--host, --port, --port-file, --metrics-port, --metrics-host, --log-level,
    --log-format, --grace-seconds, --keepalive-ms, and the TLS flags (`add_tls_flags`).

    Also makes the parser's --help show each flag's default and SHOAL_ variable.
    """
    parser.formatter_class = ServerHelpFormatter
    parser.add_argument("--host", default=env("host", "127.0.0.1"), help="address to bind")
    parser.add_argument(
        "--port", type=int, default=int(env("port", str(default_port)) or 0),
        help="gRPC port (0: any free port; see --port-file)",
    )  # fmt: skip
    parser.add_argument(
        "--port-file", type=Path, default=env("port-file"),
        help="write the bound port here once listening",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-port", type=int, default=int(env("metrics-port", "0") or 0),
        help="serve Prometheus metrics on /metrics at this port (0: off)",
    )  # fmt: skip
    parser.add_argument(
        "--metrics-host", default=env("metrics-host", ""),
        help="address the metrics endpoint binds (empty: --host); metrics carry no API"
        " key check, so bind them to an interface only the monitoring can reach",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default=env("log-level", "INFO"),
        help="DEBUG, INFO, WARNING or ERROR",
    )  # fmt: skip
    parser.add_argument(
        "--log-format", choices=["text", "json"], default=env("log-format", "text"),
        help="json: one JSON object per line",
    )  # fmt: skip
    parser.add_argument(
        "--grace-seconds", type=non_negative_float,
        default=non_negative_float(env("grace-seconds", "10") or "10"),
        help="on SIGTERM, how long in-flight calls may take to finish",
    )  # fmt: skip
    parser.add_argument(
        "--keepalive-ms", type=keepalive_interval,
        default=keepalive_interval(env("keepalive-ms", str(DEFAULT_INTERVAL_MS)) or "0"),
        help="channels to other Shoal services ping every this many ms; this server"
        " accepts pings every half of it (give every service of a cluster the same)",
    )  # fmt: skip
    add_tls_flags(parser, allowed_clients)


def add_tls_flags(parser: argparse.ArgumentParser, allowed_clients: Sequence[str]) -> None:
    """--tls-cert, --tls-key, --tls-client-ca, --tls-allowed-clients, --cluster-ca,
    --cluster-cert, --cluster-key, --insecure, --health-port.

    `allowed_clients`: the identities this service accepts calls from by default
    when it requires client certificates (shoal.runtime.tls).
    """
    group = parser.add_argument_group(
        "TLS (without --tls-cert, or with --insecure: plaintext, logged as a warning)"
    )
    group.add_argument(
        "--tls-cert", default=env("tls-cert"),
        help="PEM certificate (chain) this server serves; read again when the file changes",
    )  # fmt: skip
    group.add_argument("--tls-key", default=env("tls-key"), help="PEM private key of --tls-cert")
    group.add_argument(
        "--tls-client-ca", default=env("tls-client-ca"),
        help="require a client certificate signed by this CA (mTLS: the cluster CA)",
    )  # fmt: skip
    group.add_argument(
        "--tls-allowed-clients", default=env("tls-allowed-clients", ",".join(allowed_clients)),
        help="with --tls-client-ca: identities (certificate CN or DNS SAN), comma-separated,"
        " that may call this service's API (empty: any certificate of the CA)",
    )  # fmt: skip
    group.add_argument(
        "--cluster-ca", default=env("cluster-ca"),
        help="CA that signs the other Shoal services' certificates: calls to them use TLS",
    )  # fmt: skip
    group.add_argument(
        "--cluster-cert", default=env("cluster-cert"),
        help="client certificate shown to the other Shoal services (default: --tls-cert)",
    )  # fmt: skip
    group.add_argument(
        "--cluster-key", default=env("cluster-key"),
        help="private key of --cluster-cert (default: --tls-key)",
    )  # fmt: skip
    group.add_argument(
        "--insecure", action="store_true", default=boolean(env("insecure", "false") or "false"),
        help="plaintext everywhere, even where certificates are given (local development)",
    )  # fmt: skip
    group.add_argument(
        "--health-port", type=int, default=int(env("health-port", "0") or 0),
        help="also serve only the gRPC health check, plaintext, on this port (0: off;"
        " for probes that cannot speak TLS, such as the kubelet's)",
    )  # fmt: skip
