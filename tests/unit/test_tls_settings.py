"""The TLS flags every server has (shoal.runtime.settings) and the SDK's TLS
arguments and environment (shoal.sdk.channel)."""

from pathlib import Path

import pytest

from shard.settings import parse_args as shard_args
from shoal.runtime.tls import COORDINATOR_IDENTITY, SHARD_IDENTITY, ClientTls, ServerTls
from shoal.sdk.channel import client_tls


def test_a_shard_requires_cluster_certificates_of_the_coordinator_or_a_shard() -> None:
    settings = shard_args(
        [
            "--data-dir", "d", "--tls-cert", "s.pem", "--tls-key", "s-key.pem",
            "--tls-client-ca", "ca.pem", "--cluster-ca", "ca.pem",
        ]
    ).server  # fmt: skip
    assert settings.tls.server() == ServerTls(
        Path("s.pem"),
        Path("s-key.pem"),
        Path("ca.pem"),
        frozenset({COORDINATOR_IDENTITY, SHARD_IDENTITY}),
    )
    # To its peers it shows the certificate it serves.
    assert settings.tls.cluster() == ClientTls(Path("ca.pem"), Path("s.pem"), Path("s-key.pem"))


def test_environment_gives_the_tls_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_TLS_CERT", "/etc/shoal/tls/tls.crt")
    monkeypatch.setenv("SHOAL_TLS_KEY", "/etc/shoal/tls/tls.key")
    monkeypatch.setenv("SHOAL_HEALTH_PORT", "8081")
    settings = shard_args(["--data-dir", "d"]).server
    server = settings.tls.server()
    assert server is not None and server.cert == Path("/etc/shoal/tls/tls.crt")
    assert server.client_ca is None and settings.health_port == 8081
    assert settings.tls.cluster() is None  # no --cluster-ca: plaintext to peers


def test_insecure_wins_over_certificates() -> None:
    settings = shard_args(
        ["--data-dir", "d", "--tls-cert", "c", "--tls-key", "k", "--cluster-ca", "a", "--insecure"]
    ).server
    assert settings.tls.server() is None and settings.tls.cluster() is None


@pytest.mark.parametrize(
    "flags",
    [
        ["--tls-cert", "c"],  # no key
        ["--tls-client-ca", "ca"],  # requiring client certificates without serving TLS
        ["--cluster-ca", "ca", "--cluster-cert", "c"],  # a client certificate without its key
    ],
)
def test_certificate_flags_that_cannot_work_are_refused(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        shard_args(["--data-dir", "d", *flags])


def test_sdk_tls_from_arguments_else_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOAL_CA_FILE", "SHOAL_CLIENT_CERT", "SHOAL_CLIENT_KEY", "SHOAL_SERVER_NAME"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("SHOAL_TLS", raising=False)
    assert client_tls() is None
    assert client_tls(tls=True) == ClientTls()
    monkeypatch.setenv("SHOAL_CA_FILE", "env-ca.pem")
    monkeypatch.setenv("SHOAL_SERVER_NAME", "shoal-coordinator")
    assert client_tls() == ClientTls(Path("env-ca.pem"), server_name="shoal-coordinator")
    assert client_tls(ca_file="arg-ca.pem") == ClientTls(
        Path("arg-ca.pem"), server_name="shoal-coordinator"
    )
