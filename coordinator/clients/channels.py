"""gRPC channels to the other Shoal services, opened once and shared by all calls."""

import grpc
import grpc.aio

from shoal.runtime.balancing import RECONNECT_OPTIONS, ROUND_ROBIN_OPTIONS, dns_target
from shoal.runtime.keepalive import Keepalive
from shoal.runtime.server import channel_options
from shoal.runtime.tls import ClientTls, aio_channel


def open_channel(
    address: str, keepalive: Keepalive, tls: ClientTls | None = None
) -> grpc.aio.Channel:
    """A channel to another Shoal service (calls on it pass `outgoing_metadata()`);
    mTLS with the cluster's certificates when `tls` is given."""
    options = [*channel_options(keepalive), *RECONNECT_OPTIONS]
    return aio_channel(address, tls, options)


def open_balanced_channel(
    address: str, keepalive: Keepalive | None = None, tls: ClientTls | None = None
) -> grpc.aio.Channel:
    """A channel that spreads its calls, one by one, over every address `address`
    resolves to (the pods behind a headless Service; shoal.runtime.balancing says why).

    For a service with several interchangeable replicas, such as the embedder;
    with one address it behaves like `open_channel`.
    """
    options = [*channel_options(keepalive), *RECONNECT_OPTIONS, *ROUND_ROBIN_OPTIONS]
    return aio_channel(dns_target(address), tls, options)
