"""TLS and mTLS credentials for every Shoal server and client, in one place.

Servers (shoal.runtime.server) serve TLS from a certificate and key on disk,
read again whenever either file (or the client CA) changes: gRPC asks
`CertificateFiles.fetch` for the configuration on each new handshake, so a
certificate cert-manager rotates is served to new connections without a
restart, while connections already open keep theirs. With a client CA a server
requires a client certificate signed by it (mTLS: the shards and the embedder
with the cluster CA), and `require_identity` accepts only the identities it is
given (the certificate's common name or a subject alternative name: e.g.
`shoal-coordinator` and `shoal-shard` on a shard), so that even a certificate of
the cluster CA issued for another role cannot call it.

Clients (the coordinator to shards and the embedder, a shard to its peers, the
SDK, the CLI, loadtests) open their channels with `aio_channel` or
`sync_channel`: TLS with the CA to verify the server by, and a client
certificate where the server requires one; without `ClientTls`, plaintext.
A client's own certificate is read when its channel opens.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import grpc.aio
from cryptography import x509
from cryptography.hazmat.primitives import serialization

if TYPE_CHECKING:
    from shoal.runtime.handlers import Handler, Wrapper

log = logging.getLogger(__name__)

#: The identities a Shoal certificate names (its common name, or a DNS SAN),
#: one per role; the cluster's servers accept calls only from these.
COORDINATOR_IDENTITY = "shoal-coordinator"
SHARD_IDENTITY = "shoal-shard"
EMBEDDER_IDENTITY = "shoal-embedder"

#: What a client gives gRPC to check the server's certificate against a name
#: other than the one in the target (an IP, a port-forward).
SERVER_NAME_OPTION = "grpc.ssl_target_name_override"


class TlsConfigError(ValueError):
    """Certificate settings that cannot work together; the message says why."""


@dataclass(frozen=True)
class ServerTls:
    """A server's certificate and key, and the CA its clients' certificates must
    be signed by (None: no client certificate asked for)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    #: Identities a client certificate must name (empty: any the client CA signed).
    allowed_clients: frozenset[str] = frozenset()


@dataclass(frozen=True)
class ClientTls:
    """How a client checks the server (the CA; None: the system's roots) and the
    certificate it shows it (where the server asks for one)."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    #: The name the server's certificate must carry, if not the target's host.
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise TlsConfigError(
                "a client certificate needs both its certificate and its key file"
                f" (given: certificate {self.cert}, key {self.key})"
            )


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as error:
        raise TlsConfigError(f"cannot read the {what} {path}: {error.strerror}") from None


def _check_pair(cert: bytes, key: bytes, path: Path) -> None:
    """The certificate parses and belongs to the key: a rotation caught between
    writing the two files must not be served (every handshake would fail)."""
    try:
        certificate = x509.load_pem_x509_certificate(cert)
        private_key = serialization.load_pem_private_key(key, password=None)
    except (ValueError, TypeError) as error:
        raise TlsConfigError(
            f"{path} or its key is not a PEM certificate and key: {error}"
        ) from None

    def der(key: Any) -> bytes:
        info = serialization.PublicFormat.SubjectPublicKeyInfo
        return bytes(key.public_bytes(serialization.Encoding.DER, info))

    if der(certificate.public_key()) != der(private_key.public_key()):
        raise TlsConfigError(f"{path} is not the certificate of its key file")


def _stamp(paths: Iterable[Path | None]) -> tuple[tuple[int, int, int], ...]:
    """What changes when any of the files is replaced or rewritten (cert-manager
    swaps a Secret's files by renaming a directory link: the inode changes)."""
    stamps = []
    for path in paths:
        if path is None:
            continue
        try:
            stat = os.stat(path)
        except OSError:
            stamps.append((0, 0, 0))
            continue
        stamps.append((stat.st_ino, stat.st_mtime_ns, stat.st_size))
    return tuple(stamps)


class CertificateFiles:
    """A server's certificate configuration, read again whenever its files change."""

    def __init__(self, tls: ServerTls) -> None:
        self._tls = tls
        self._stamp = _stamp(self._paths)
        self.initial = self._load()

    @property
    def _paths(self) -> tuple[Path | None, ...]:
        return (self._tls.cert, self._tls.key, self._tls.client_ca)

    def _load(self) -> Any:
        tls = self._tls
        key, cert = _read(tls.key, "private key"), _read(tls.cert, "certificate")
        _check_pair(cert, key, tls.cert)
        client_ca = _read(tls.client_ca, "client CA") if tls.client_ca is not None else None
        return grpc.ssl_server_certificate_configuration([(key, cert)], client_ca)

    def fetch(self) -> Any:
        """gRPC's fetcher: a new configuration when the files changed, else None
        (keep the current one). A half-written or unreadable set keeps the
        current one too, and is read again on the next handshake."""
        stamp = _stamp(self._paths)
        if stamp == self._stamp:
            return None
        try:
            configuration = self._load()
        except TlsConfigError as error:
            log.warning("certificate files changed but cannot be read yet: %s", error)
            return None
        self._stamp = stamp
        log.info("certificate files changed: serving %s to new connections", self._tls.cert)
        return configuration


def server_credentials(tls: ServerTls) -> grpc.ServerCredentials:
    """Credentials that serve `tls`'s certificate, reloaded when its files change."""
    files = CertificateFiles(tls)
    return grpc.dynamic_ssl_server_credentials(
        files.initial, files.fetch, require_client_authentication=tls.client_ca is not None
    )


def channel_credentials(tls: ClientTls) -> grpc.ChannelCredentials:
    root = _read(tls.ca, "CA") if tls.ca is not None else None
    key = _read(tls.key, "client key") if tls.key is not None else None
    cert = _read(tls.cert, "client certificate") if tls.cert is not None else None
    return grpc.ssl_channel_credentials(root, key, cert)


def tls_options(tls: ClientTls | None) -> list[tuple[str, Any]]:
    if tls is not None and tls.server_name:
        return [(SERVER_NAME_OPTION, tls.server_name)]
    return []


def aio_channel(
    target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.aio.Channel:
    """An asyncio channel: TLS per `tls`, plaintext when it is None."""
    if tls is None:
        return grpc.aio.insecure_channel(target, options=list(options))
    return grpc.aio.secure_channel(
        target, channel_credentials(tls), options=[*options, *tls_options(tls)]
    )


def sync_channel(
    target: str, tls: ClientTls | None, options: Sequence[tuple[str, Any]] = ()
) -> grpc.Channel:
    """A blocking channel: TLS per `tls`, plaintext when it is None."""
    if tls is None:
        return grpc.insecure_channel(target, options=list(options))
    return grpc.secure_channel(
        target, channel_credentials(tls), options=[*options, *tls_options(tls)]
    )


def peer_identities(context: grpc.aio.ServicerContext[Any, Any]) -> set[str]:
    """The common name and subject alternative names of the caller's verified
    certificate (empty without one)."""
    auth = context.auth_context()
    names: set[str] = set()
    for key in ("x509_common_name", "x509_subject_alternative_name"):
        for value in auth.get(key, ()):
            names.add(value.decode() if isinstance(value, bytes) else str(value))
    return names


def require_identity(allowed: frozenset[str]) -> Wrapper:
    """A handler wrapper (shoal.runtime.handlers) that lets through only callers
    whose certificate names one of `allowed`: UNAUTHENTICATED without a
    certificate, PERMISSION_DENIED with one of another identity."""
    names = ", ".join(sorted(allowed))

    def wrap(method: str, handler: Handler) -> Handler:
        async def call(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            identities = peer_identities(context)
            if not identities:
                await context.abort(
                    grpc.StatusCode.UNAUTHENTICATED,
                    f"{method} needs a client certificate of the cluster CA naming one of: {names}",
                )
            if identities.isdisjoint(allowed):
                await context.abort(
                    grpc.StatusCode.PERMISSION_DENIED,
                    f"{method} is for {names}; the client certificate names"
                    f" {', '.join(sorted(identities))}",
                )
            return await handler(request, context)

        return call

    return wrap
