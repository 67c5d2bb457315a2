"""The one place the SDK opens its channels to a coordinator (`shoal.Client`,
`shoal.AsyncClient`): the options every channel gets, TLS, and the metadata (the
API key) every call carries.

TLS comes from the arguments, else from the environment: SHOAL_CA_FILE (the CA
that signed the coordinator's certificate), SHOAL_CLIENT_CERT and
SHOAL_CLIENT_KEY (a client certificate, where the server asks for one),
SHOAL_SERVER_NAME (the name the server's certificate carries, when the address
is an IP or a port-forward) and SHOAL_TLS=1 (TLS checked against the system's
roots, with no CA file). With none of them the channel is plaintext. The API
key comes from the argument, else SHOAL_API_KEY.

A call the coordinator could not take (UNAVAILABLE: it is restarting, a pod was
rolled, no replica of a group answered) is retried by gRPC itself, up to
`RETRY_ATTEMPTS` calls in all with exponential backoff within the call's
deadline, and the channel reconnects within half a second of a coordinator
coming back. Nothing else is retried: every other status is the request's own.
A retried write is applied again with a newer version, which last-writer-wins
makes the same as applying it once.
"""

import json
import os
from pathlib import Path
from typing import Any

import grpc
import grpc.aio

from shoal.runtime.balancing import RECONNECT_OPTIONS, ROUND_ROBIN_SERVICE_CONFIG
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.settings import boolean
from shoal.runtime.tls import ClientTls, aio_channel, sync_channel

DEFAULT_ADDRESS = "127.0.0.1:50051"
#: Seconds each call of a client gets, unless the client is given another.
DEFAULT_TIMEOUT = 30.0
API_KEY_ENV = "SHOAL_API_KEY"
CA_FILE_ENV = "SHOAL_CA_FILE"
CLIENT_CERT_ENV = "SHOAL_CLIENT_CERT"
CLIENT_KEY_ENV = "SHOAL_CLIENT_KEY"
SERVER_NAME_ENV = "SHOAL_SERVER_NAME"
TLS_ENV = "SHOAL_TLS"

#: Calls in all, the first included, for a call answered UNAVAILABLE.
RETRY_ATTEMPTS = 5
_RETRY_POLICY = {
    "maxAttempts": RETRY_ATTEMPTS,
    "initialBackoff": "0.1s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
#: Round robin over every address the name resolves to (in Kubernetes, give the
#: coordinators' headless Service to balance calls over all of them), and the retries.
SERVICE_CONFIG = json.dumps(
    {
        **json.loads(ROUND_ROBIN_SERVICE_CONFIG),
        "methodConfig": [
            {"name": [{"service": "shoal.v1.ShoalService"}], "retryPolicy": _RETRY_POLICY}
        ],
    }
)
CHANNEL_OPTIONS: list[tuple[str, Any]] = [
    *GRPC_OPTIONS,
    *RECONNECT_OPTIONS,
    ("grpc.service_config", SERVICE_CONFIG),
]

PathLike = str | os.PathLike[str]

#: Metadata: a tuple of (name, value) pairs, as grpc's `metadata=` takes it.
Metadata = tuple[tuple[str, str], ...]


def resolve_api_key(api_key: str | None) -> str | None:
    """The key given, else SHOAL_API_KEY, else None (no key: for clusters without keys)."""
    return api_key if api_key is not None else (os.environ.get(API_KEY_ENV) or None)


def call_metadata(api_key: str | None) -> Metadata:
    """What every call sends: `authorization: Bearer <key>` when there is a key
    (given, else SHOAL_API_KEY)."""
    key = resolve_api_key(api_key)
    return (("authorization", f"Bearer {key}"),) if key else ()


def _given(value: PathLike | None, env_name: str) -> Path | None:
    if value is not None:
        return Path(value)
    from_env = os.environ.get(env_name)
    return Path(from_env) if from_env else None


def client_tls(
    ca_file: PathLike | None = None,
    cert_file: PathLike | None = None,
    key_file: PathLike | None = None,
    server_name: str | None = None,
    tls: bool | None = None,
) -> ClientTls | None:
    """The TLS a client uses: each argument, else its environment variable; None
    (plaintext) when neither names a CA, a client certificate or `tls`."""
    ca = _given(ca_file, CA_FILE_ENV)
    cert = _given(cert_file, CLIENT_CERT_ENV)
    key = _given(key_file, CLIENT_KEY_ENV)
    name = server_name if server_name is not None else os.environ.get(SERVER_NAME_ENV) or None
    wanted = tls if tls is not None else boolean(os.environ.get(TLS_ENV, ""))
    if not (wanted or ca or cert or key):
        return None
    return ClientTls(ca=ca, cert=cert, key=key, server_name=name)


def open_channel(address: str, tls: ClientTls | None) -> grpc.Channel:
    """A blocking channel to a coordinator (plaintext when `tls` is None)."""
    return sync_channel(address, tls, CHANNEL_OPTIONS)


def open_aio_channel(address: str, tls: ClientTls | None) -> grpc.aio.Channel:
    """An asyncio channel to a coordinator (plaintext when `tls` is None)."""
    return aio_channel(address, tls, CHANNEL_OPTIONS)
