"""One Shoal service as a real process: started with its port file and log in a
work directory, ready once its health check says SERVING, stopped gracefully.

Each process writes the port it bound to its port file, so tests start real
servers on 127.0.0.1:0. It runs under `shoal.runtime.lifeline` (unless told
not to), so it ends with whoever started it, even when that one is SIGKILLed.
"""

import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from shoal.runtime.tls import ClientTls, sync_channel
from shoal.runtime.wait import wait_for

log = logging.getLogger(__name__)

HEALTH_CHECK_METHOD = "/grpc.health.v1.Health/Check"


class ClusterError(RuntimeError):
    """The local cluster could not start; the message says why."""


class ServiceFailed(ClusterError):
    """A service process exited or never became healthy."""


def health_status(address: str, timeout: float = 1.0, tls: ClientTls | None = None) -> int | None:
    """The server's overall health status, or None if it cannot be reached."""
    with sync_channel(address, tls) as channel:
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


def is_serving(address: str, tls: ClientTls | None = None) -> bool:
    return health_status(address, tls=tls) == health_pb2.HealthCheckResponse.SERVING


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
    #: End the process when this one ends, even by SIGKILL (see shoal.runtime.lifeline).
    die_with_parent: bool = True
    #: How to reach it for its health check when it serves TLS.
    tls: ClientTls | None = None

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
        launcher = (
            ["-m", "shoal.runtime.lifeline", str(os.getpid())] if self.die_with_parent else ["-m"]
        )
        command = [
            sys.executable, *launcher, self.module,
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
        return is_serving(self.address, self.tls)

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait for the port file, then for the health check to say SERVING."""
        self.port = wait_for(self._read_port, timeout, f"{self.name} to bind a port")
        wait_for(self._serving, timeout, f"{self.name} at {self.address} to serve")

    def terminate(self) -> None:
        """SIGTERM: begin a graceful shutdown without waiting for it (see `stop`)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.terminate()
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
