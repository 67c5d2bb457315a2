"""Run Shoal services as real processes on one machine.

`shoal up` uses this to start a local cluster, and the tests use it to start
real servers on 127.0.0.1:0: each process writes the port it bound to a port
file, and a service counts as ready once its health check says SERVING.
"""

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import grpc
from grpc_health.v1 import health_pb2

from shoal.etcd_server import EtcdCluster
from shoal.wait import wait_for

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"
HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"


class ServiceFailed(RuntimeError):
    """A service process exited or never became healthy."""


def health_status(address: str, timeout: float = 1.0) -> int | None:
    """The server's overall health status, or None if it cannot be reached."""
    with grpc.insecure_channel(address) as channel:
        check = channel.unary_unary(
            HEALTH_CHECK_METHOD,
            request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=health_pb2.HealthCheckResponse.FromString,
        )
        try:
            reply: health_pb2.HealthCheckResponse = check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return None
    return int(reply.status)


def is_serving(address: str) -> bool:
    return health_status(address) == health_pb2.HealthCheckResponse.SERVING


@dataclass
class ServiceProcess:
    """One service (`python -m <module>`) with its port file and log in `workdir`."""

    name: str
    module: str
    args: Sequence[str]
    workdir: Path
    host: str = "127.0.0.1"
    port: int = 0
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        if not self.port:
            raise ServiceFailed(f"{self.name} has no port yet: start it and wait_ready()")
        return f"{self.host}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / f"{self.name}.log"

    @property
    def _port_file(self) -> Path:
        return self.workdir / f"{self.name}.port"

    def start(self) -> None:
        """Spawn the process; on a restart it binds the port it had before."""
        if self.running:
            raise ServiceFailed(f"{self.name} is already running")
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._port_file.unlink(missing_ok=True)
        command = [
            sys.executable, "-m", self.module,
            "--host", self.host, "--port", str(self.port),
            "--port-file", str(self._port_file),
            *self.args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env={**os.environ, **self.env},
                start_new_session=True,  # Ctrl-C in a terminal reaches only `shoal up`
            )
        log.debug("started %s (pid %d): %s", self.name, self.process.pid, " ".join(command))

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _check_alive(self) -> None:
        if not self.running:
            raise ServiceFailed(f"{self.name} exited; its log:\n{self.log_tail()}")

    def _read_port(self) -> int:
        self._check_alive()
        try:
            return int(self._port_file.read_text())
        except (FileNotFoundError, ValueError):
            return 0

    def _serving(self) -> bool:
        self._check_alive()
        return is_serving(self.address)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the port file, then for the health check to say SERVING."""
        self.port = wait_for(self._read_port, timeout, f"{self.name} to bind a port")
        wait_for(self._serving, timeout, f"{self.name} at {self.address} to serve")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in %.0fs; killing it", self.name, timeout)
                self.kill()
        self.process = None

    def kill(self) -> None:
        """SIGKILL: the crash a fault test wants."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.process = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class ClusterSpec:
    groups: int = 2
    replicas: int = 2
    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    coordinator_port: int = 0
    shard_threads: int = 0  # 0: the service's default
    ready_timeout: float = 120.0
    # Metrics on consecutive ports from here: coordinator, embedder, then shards; 0: off.
    metrics_port_base: int = 0
    # More flags for every shard (e.g. a shorter --anti-entropy-interval-s in tests).
    shard_args: tuple[str, ...] = ()
    # Members of the etcd (the collection catalog) started under ROOT/etcd; 0: none.
    etcd_members: int = 1


class LocalCluster:
    """An embedder, `groups` x `replicas` shard servers and a coordinator.

    Every process keeps its data, port file and log under `root`, so stopping
    and starting a cluster on the same root brings the same data back.
    """

    def __init__(self, root: Path, spec: ClusterSpec | None = None) -> None:
        self.root = root
        self.spec = spec or ClusterSpec()
        self._services = 0
        self.coordinator = self._service(
            "coordinator",
            "coordinator",
            ["--topology", str(self.topology_path)],
            port=self.spec.coordinator_port,
        )
        self.embedder = self._service("embedder", "embedder", ["--model", self.spec.model])
        self.shards = [
            [self._shard(group, replica) for replica in range(self.spec.replicas)]
            for group in range(self.spec.groups)
        ]
        self.etcd = (
            EtcdCluster(root / "etcd", self.spec.etcd_members) if self.spec.etcd_members else None
        )
        if self.etcd is not None:
            for service in [self.coordinator, *self.all_shards]:
                service.args = [*service.args, "--etcd", self.etcd.endpoints_flag]

    @property
    def topology_path(self) -> Path:
        return self.root / "topology.json"

    @property
    def address(self) -> str:
        return self.coordinator.address

    @property
    def all_shards(self) -> list[ServiceProcess]:
        return [shard for group in self.shards for shard in group]

    def _service(self, name: str, module: str, args: list[str], port: int = 0) -> ServiceProcess:
        if self.spec.metrics_port_base:
            args = [*args, "--metrics-port", str(self.spec.metrics_port_base + self._services)]
        self._services += 1
        return ServiceProcess(name, module, args, self.root / "run", host=self.spec.host, port=port)

    def _shard(self, group: int, replica: int) -> ServiceProcess:
        name = f"shard-{group}-{replica}"
        # Shards find their peers (for catch-up) in the topology; it is written once
        # they have bound their ports, and they read it again when it changes.
        args = [
            "--data-dir", str(self.root / "data" / name),
            "--topology", str(self.topology_path),
            *self.spec.shard_args,
        ]  # fmt: skip
        if self.spec.shard_threads:
            args += ["--threads", str(self.spec.shard_threads)]
        return self._service(name, "shard", args)

    def write_topology(self) -> None:
        topology = {
            "version": 1,
            "groups": [{"replicas": [shard.address for shard in group]} for group in self.shards],
        }
        self.topology_path.write_text(json.dumps(topology, indent=2) + "\n")

    def start(self) -> None:
        """Start everything and wait until the coordinator serves."""
        self.root.mkdir(parents=True, exist_ok=True)
        backends = [self.embedder, *self.all_shards]
        try:
            if self.etcd is not None:
                self.etcd.start()
            for service in backends:
                service.start()
            for service in backends:
                service.wait_ready(self.spec.ready_timeout)
            self.write_topology()
            self.coordinator.args = [*self.coordinator.args, "--embedder", self.embedder.address]
            self.coordinator.start()
            self.coordinator.wait_ready(self.spec.ready_timeout)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the coordinator first, so no write is cut off half-way."""
        for service in [self.coordinator, *self.all_shards, self.embedder]:
            service.stop()
        if self.etcd is not None:
            self.etcd.stop()

    def __enter__(self) -> "LocalCluster":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
