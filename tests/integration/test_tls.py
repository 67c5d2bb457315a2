"""TLS and mTLS on real servers (shoal.runtime.tls), with CAs made in the test.

A shard that requires client certificates of the cluster CA accepts the
coordinator's and a peer shard's, and refuses a client without one, one from
another CA, one of the CA for another role, and plaintext; a server picks up
a replaced certificate on new connections without a restart; and a whole
local cluster with TLS outside and mTLS inside serves upserts and searches.
"""

import json
import os
import signal
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.certs import Issued, PemFiles, issue, make_ca, write_pem
from shoal.cli.service_process import ServiceProcess, health_status
from shoal.errors import Unavailable
from shoal.runtime.server import GRPC_OPTIONS
from shoal.runtime.tls import (
    COORDINATOR_IDENTITY,
    EMBEDDER_IDENTITY,
    SHARD_IDENTITY,
    ClientTls,
    sync_channel,
)
from shoal.runtime.wait import wait_for
from shoal.v1 import embedder_pb2, embedder_pb2_grpc, shard_pb2, shard_pb2_grpc
from tests.conftest import StartCluster
from tests.integration.shoal_up import ShoalUp

TIMEOUT = 60.0


@dataclass(frozen=True)
class Pki:
    """The cluster CA with a certificate per role, and a stranger's CA."""

    directory: Path
    ca: Path
    coordinator: PemFiles
    shard: PemFiles
    embedder: PemFiles
    other_ca: Path
    other_coordinator: PemFiles

    def client(self, files: PemFiles | None, ca: Path | None = None) -> ClientTls:
        if files is None:
            return ClientTls(ca or self.ca)
        return ClientTls(ca or self.ca, files.cert, files.key)


def write_ca(directory: Path, name: str, ca: Issued) -> Path:
    path = directory / f"{name}.pem"
    path.write_bytes(ca.cert_pem())
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca, other = make_ca("Shoal test CA"), make_ca("Another CA")
    return Pki(
        directory=directory,
        ca=write_ca(directory, "ca", ca),
        coordinator=write_pem(directory, "coordinator", issue(ca, COORDINATOR_IDENTITY)),
        shard=write_pem(directory, "shard", issue(ca, SHARD_IDENTITY)),
        embedder=write_pem(directory, "embedder", issue(ca, EMBEDDER_IDENTITY)),
        other_ca=write_ca(directory, "other-ca", other),
        other_coordinator=write_pem(directory, "other", issue(other, COORDINATOR_IDENTITY)),
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_shard(workdir: Path, args: list[str], tls: ClientTls | None) -> ServiceProcess:
    shard = ServiceProcess(
        "shard", "shard", ["--data-dir", str(workdir / "data"), *args], workdir, tls=tls
    )
    shard.start()
    try:
        shard.wait_ready(TIMEOUT)
    except BaseException:
        shard.kill()
        raise
    return shard


@pytest.fixture(scope="module")
def mtls_shard(pki: Pki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """A shard as the cluster runs one: its own certificate, clients of the cluster CA."""
    health_port = free_port()
    args = [
        "--tls-cert", str(pki.shard.cert), "--tls-key", str(pki.shard.key),
        "--tls-client-ca", str(pki.ca), "--cluster-ca", str(pki.ca),
        "--health-port", str(health_port),
    ]  # fmt: skip
    shard = start_shard(tmp_path_factory.mktemp("shard"), args, pki.client(pki.coordinator))
    shard.env["HEALTH_PORT"] = str(health_port)  # for the probe test
    yield shard
    shard.stop()


def list_collections(address: str, tls: ClientTls | None) -> shard_pb2.ShardListCollectionsResponse:
    with sync_channel(address, tls, GRPC_OPTIONS) as channel:
        stub = shard_pb2_grpc.ShardServiceStub(channel)
        reply: shard_pb2.ShardListCollectionsResponse = stub.ListCollections(
            shard_pb2.ShardListCollectionsRequest(), timeout=10
        )
        return reply


def refused(address: str, tls: ClientTls | None) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as raised:
        list_collections(address, tls)
    code: grpc.StatusCode = raised.value.code()
    return code


def test_shard_accepts_the_coordinator_certificate(mtls_shard: ServiceProcess, pki: Pki) -> None:
    reply = list_collections(mtls_shard.address, pki.client(pki.coordinator))
    assert list(reply.collections) == []


def test_shard_accepts_a_peer_shard_certificate(mtls_shard: ServiceProcess, pki: Pki) -> None:
    reply = list_collections(mtls_shard.address, pki.client(pki.shard))
    assert list(reply.collections) == []


def test_shard_refuses_a_client_without_certificate(mtls_shard: ServiceProcess, pki: Pki) -> None:
    assert refused(mtls_shard.address, pki.client(None)) == grpc.StatusCode.UNAVAILABLE


def test_shard_refuses_a_certificate_of_another_ca(mtls_shard: ServiceProcess, pki: Pki) -> None:
    # The same identity, signed by a CA the shard does not trust.
    tls = pki.client(pki.other_coordinator)
    assert refused(mtls_shard.address, tls) == grpc.StatusCode.UNAVAILABLE


def test_shard_refuses_the_cluster_ca_certificate_of_another_role(
    mtls_shard: ServiceProcess, pki: Pki
) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        list_collections(mtls_shard.address, pki.client(pki.embedder))
    assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert EMBEDDER_IDENTITY in str(raised.value.details())


def test_plaintext_client_against_the_tls_port_fails(mtls_shard: ServiceProcess) -> None:
    assert refused(mtls_shard.address, None) == grpc.StatusCode.UNAVAILABLE


def test_health_port_answers_plaintext_probes_and_nothing_else(
    mtls_shard: ServiceProcess,
) -> None:
    address = f"127.0.0.1:{mtls_shard.env['HEALTH_PORT']}"
    assert health_status(address) == health_pb2.HealthCheckResponse.SERVING
    assert refused(address, None) == grpc.StatusCode.UNIMPLEMENTED


def test_tls_server_without_client_ca_serves_any_tls_client(pki: Pki, tmp_path: Path) -> None:
    """The public side: TLS, no client certificate asked for."""
    args = ["--tls-cert", str(pki.shard.cert), "--tls-key", str(pki.shard.key)]
    shard = start_shard(tmp_path, args, pki.client(None))
    try:
        assert list(list_collections(shard.address, pki.client(None)).collections) == []
        assert refused(shard.address, None) == grpc.StatusCode.UNAVAILABLE
        # A CA that did not sign the server's certificate does not trust it.
        other = ClientTls(pki.other_ca)
        assert refused(shard.address, other) == grpc.StatusCode.UNAVAILABLE
    finally:
        shard.stop()


def test_replaced_certificate_is_served_to_new_connections_without_restart(
    tmp_path: Path,
) -> None:
    first, second = make_ca("first CA"), make_ca("second CA")
    directory = tmp_path / "tls"
    files = write_pem(directory, "server", issue(first, SHARD_IDENTITY))
    first_ca = write_ca(directory, "first-ca", first)
    second_ca = write_ca(directory, "second-ca", second)
    shard = start_shard(
        tmp_path, ["--tls-cert", str(files.cert), "--tls-key", str(files.key)], ClientTls(first_ca)
    )
    try:
        assert shard.process is not None
        pid = shard.process.pid
        serving = health_pb2.HealthCheckResponse.SERVING
        assert health_status(shard.address, 10, ClientTls(first_ca)) == serving

        # As cert-manager does: new files put in place by rename.
        replacement = write_pem(tmp_path / "new", "server", issue(second, SHARD_IDENTITY))
        os.replace(replacement.key, files.key)
        os.replace(replacement.cert, files.cert)

        def second_ca_trusts_it() -> bool:
            return health_status(shard.address, 10, ClientTls(second_ca)) == serving

        wait_for(second_ca_trusts_it, 10.0, "the shard to serve the replaced certificate")
        assert refused(shard.address, ClientTls(first_ca)) == grpc.StatusCode.UNAVAILABLE
        assert shard.process is not None and shard.process.pid == pid
    finally:
        shard.stop()


def test_secure_cluster_serves_upserts_searches_and_loadtests(
    start_cluster: StartCluster, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """TLS to the coordinator; mTLS from it to the shards and the embedder, and
    between the replicas of a group; `shoal loadtest` with the CA, as ghz's
    --cacert, on one of Shoal's ghz configs (which say insecure: true)."""
    cluster = start_cluster(groups=2, replicas=2, model="hash-384", secure=True)
    assert cluster.pki is not None
    with Client(cluster.address, timeout=TIMEOUT, ca_file=cluster.pki.ca) as client:
        client.create_collection("docs", embedding_model="hash-384")
        texts = [{"id": str(i), "text": f"document number {i}"} for i in range(40)]
        written = client.upsert("docs", texts, consistency="all")
        assert written.replicas_acknowledged == 2
        hits = client.search("docs", text="document number 7", k=3).hits
        # The same text, embedded the same way: the best score (maybe tied, as
        # the fake model hashes words into few coordinates).
        assert "7" in [hit.id for hit in hits if hit.score == hits[0].score]
        assert client.count("docs") == 40
        config = tmp_path / "search.json"
        ghz = json.loads(Path("loadtest/ghz/search_text.json").read_text())
        ghz.pop("data-file")
        ghz["data"] = {"collection": "docs", "query": {"text": "document number 3"}, "k": 3}
        config.write_text(json.dumps(ghz))
        capsys.readouterr()
        cli(["loadtest", "--config", str(config), "--address", cluster.address,
             "--cacert", str(cluster.pki.ca), "-n", "20", "-c", "2", "--json"])  # fmt: skip
        report = json.loads(capsys.readouterr().out)
        assert report["count"] == 20 and report["statusCodeDistribution"] == {"OK": 20}
    # The public port is TLS: a plaintext client gets nowhere.
    with Client(cluster.address, timeout=5) as plaintext, pytest.raises(Unavailable):
        plaintext.list_collections()


def test_shoal_up_secure_prints_how_to_connect_and_the_cli_connects_with_the_ca(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    up = ShoalUp(tmp_path / "data", ["--port", "0", "--secure"], tmp_path)
    try:
        up.start()
        up.wait_serving()
        ca = (tmp_path / "data" / "tls" / "ca.pem").resolve()
        wait_for(lambda: f"SHOAL_CA_FILE={ca}" in up.output, TIMEOUT, "how to connect")
        key = up.output.split("export SHOAL_API_KEY=", 1)[1].split()[0]  # --secure: keys too
        address = up.address()
        tls = ["--address", address, "--ca-file", str(ca), "--api-key", key]
        cli([*tls, "create", "notes", "--dimension", "4"])
        capsys.readouterr()
        cli(["list", *tls, "--json"])
        assert [c["name"] for c in json.loads(capsys.readouterr().out)] == ["notes"]
        with pytest.raises(SystemExit):  # plaintext against the TLS port
            cli(["--address", address, "--api-key", key, "list"])
    finally:
        if up.process is not None and up.process.poll() is None:
            up.signal(signal.SIGTERM)
            up.wait()
        up.clean_up()


def test_plaintext_is_logged_as_a_warning_at_start(tmp_path: Path) -> None:
    shard = start_shard(tmp_path, [], None)
    try:
        log = shard.log_path.read_text()
    finally:
        shard.stop()
    (line,) = [line for line in log.splitlines() if "plaintext on" in line]
    assert "WARNING" in line and "no --tls-cert" in line


def test_replicas_catch_up_from_each_other_over_mtls(start_cluster: StartCluster) -> None:
    """Anti-entropy alone (the coordinator, and its hints, gone) copies what a
    replica missed from its peer: shard to shard with the shard's certificate."""
    cluster = start_cluster(
        groups=1, replicas=2, model="hash-8", secure=True,
        shard_args=("--anti-entropy-interval-s", "0.5", "--catch-up-wait-s", "5"),
    )  # fmt: skip
    assert cluster.pki is not None
    peer, victim = cluster.shards[0]
    victim.kill()
    with Client(cluster.address, timeout=TIMEOUT, ca_file=cluster.pki.ca) as client:
        client.create_collection("docs", dimension=4)
        documents = [{"id": str(i), "vector": [1.0, float(i), 0.0, 0.0]} for i in range(30)]
        client.upsert("docs", documents, consistency="one")
    cluster.coordinator.stop()  # its hints for the victim go with it
    victim.start()
    victim.wait_ready(TIMEOUT)
    inside = ClientTls(cluster.pki.ca, cluster.pki.coordinator.cert, cluster.pki.coordinator.key)

    def victim_count() -> int:
        with sync_channel(victim.address, inside, GRPC_OPTIONS) as channel:
            stub = shard_pb2_grpc.ShardServiceStub(channel)
            try:
                reply = stub.Count(shard_pb2.ShardCountRequest(collection="docs"), timeout=10)
            except grpc.RpcError:
                return 0
            return int(reply.count)

    wait_for(lambda: victim_count() == 30, TIMEOUT, "the victim to copy the documents")
    assert "CERTIFICATE_VERIFY_FAILED" not in peer.log_path.read_text()


def test_the_embedder_serves_only_the_coordinator(pki: Pki, tmp_path: Path) -> None:
    args = [
        "--model", "hash-8",
        "--tls-cert", str(pki.embedder.cert), "--tls-key", str(pki.embedder.key),
        "--tls-client-ca", str(pki.ca),
    ]  # fmt: skip
    embedder = ServiceProcess(
        "embedder", "embedder", args, tmp_path, tls=pki.client(pki.coordinator)
    )
    embedder.start()
    try:
        embedder.wait_ready(TIMEOUT)

        def embed(tls: ClientTls) -> int:
            with sync_channel(embedder.address, tls, GRPC_OPTIONS) as channel:
                stub = embedder_pb2_grpc.EmbedderServiceStub(channel)
                reply = stub.Embed(embedder_pb2.EmbedRequest(texts=["a", "b"]), timeout=10)
                return int(reply.dimension)

        assert embed(pki.client(pki.coordinator)) == 8
        with pytest.raises(grpc.RpcError) as raised:
            embed(pki.client(pki.shard))
        assert raised.value.code() == grpc.StatusCode.PERMISSION_DENIED
        with pytest.raises(grpc.RpcError) as raised:
            embed(pki.client(pki.other_coordinator))
        assert raised.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        embedder.stop()
