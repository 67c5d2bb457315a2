"""Run etcd, the cluster metadata store, as real processes on loopback.

`shoal up` starts a one-member etcd under its data dir, and the tests start one
or three members. Members listen on 127.0.0.1 on ports chosen once and kept in
`ports.json` under the etcd root, so a member restarted on the same data dir
comes back at the address its peers know it by. A member counts as ready once
its `/health` endpoint says the cluster has a leader.

etcd 3.4.22+ or 3.5.6+ is required (3.5.0-3.5.5 can lose writes on a crash,
etcd-io/etcd#13766): Debian's `etcd-server` (3.4.23), which `make install`
installs, is the reference. SHOAL_ETCD_BINARY names another binary.
"""

import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from shoal.runtime.wait import wait_for

log = logging.getLogger(__name__)

INSTALL_HINT = (
    "etcd is not installed: run 'make install' (it installs Debian's etcd-server 3.4.23),"
    " or 'apt-get install -y etcd-server' as root, or set SHOAL_ETCD_BINARY to an etcd 3.4.22+"
    " or 3.5.6+ binary"
)


#: How often a never-started cluster picks new ports when one was taken before etcd bound it.
PORT_ATTEMPTS = 4
ADDRESS_IN_USE = "address already in use"


class EtcdFailed(RuntimeError):
    """etcd is missing, exited, or never became healthy."""


def etcd_binary() -> str:
    """The etcd to run: $SHOAL_ETCD_BINARY, else `etcd` on PATH."""
    configured = os.environ.get("SHOAL_ETCD_BINARY")
    if configured:
        if shutil.which(configured) is None:
            raise EtcdFailed(f"SHOAL_ETCD_BINARY is {configured!r}, not a program; {INSTALL_HINT}")
        return configured
    found = shutil.which("etcd")
    if found is None:
        raise EtcdFailed(INSTALL_HINT)
    return found


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (etcd cannot bind port 0 and report it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def is_healthy(client_url: str, timeout: float = 1.0) -> bool:
    """etcd's own health check: true once the member sees a leader and can serve."""
    try:
        with urllib.request.urlopen(f"{client_url}/health", timeout=timeout) as reply:
            body = json.loads(reply.read())
    except (OSError, urllib.error.URLError, ValueError):
        return False
    return bool(body.get("health") in ("true", True))


@dataclass
class EtcdMember:
    name: str
    data_dir: Path
    client_port: int
    peer_port: int
    host: str = "127.0.0.1"
    process: subprocess.Popen[bytes] | None = None

    @property
    def client_url(self) -> str:
        return f"http://{self.host}:{self.client_port}"

    @property
    def peer_url(self) -> str:
        return f"http://{self.host}:{self.peer_port}"

    @property
    def endpoint(self) -> str:
        return f"{self.host}:{self.client_port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir.parent / f"{self.name}.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


@dataclass
class EtcdCluster:
    """`size` etcd members on loopback, their data and logs under `root`."""

    root: Path
    size: int = 1
    host: str = "127.0.0.1"
    members: list[EtcdMember] = field(default_factory=list)
    #: End the members when this process ends, even by SIGKILL (see shoal.runtime.lifeline).
    die_with_parent: bool = True

    def __post_init__(self) -> None:
        ports_file = self.root / "ports.json"
        #: True when this object chose the ports: nothing has been stored under them yet,
        #: so a port another process took since can still be swapped for a free one.
        self._fresh = not ports_file.exists()
        if self._fresh:
            self._choose_ports()
        ports = json.loads(ports_file.read_text())
        if len(ports) != self.size:
            raise EtcdFailed(
                f"{ports_file} lists {len(ports)} etcd members, not {self.size}:"
                " an etcd data dir keeps its member count; remove it to start afresh"
            )
        self.members = [
            EtcdMember(f"etcd-{i}", self.root / f"etcd-{i}", client, peer, self.host)
            for i, (client, peer) in enumerate(ports)
        ]

    def _choose_ports(self) -> None:
        ports = [[free_port(self.host), free_port(self.host)] for _ in range(self.size)]
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "ports.json").write_text(json.dumps(ports) + "\n")
        for member, (client, peer) in zip(self.members, ports, strict=False):
            member.client_port, member.peer_port = client, peer
            shutil.rmtree(member.data_dir, ignore_errors=True)
            member.log_path.unlink(missing_ok=True)

    @property
    def endpoints(self) -> list[str]:
        """HOST:PORT of every member's client listener (what `--etcd` takes)."""
        return [member.endpoint for member in self.members]

    @property
    def endpoints_flag(self) -> str:
        return ",".join(self.endpoints)

    def _command(self, member: EtcdMember) -> list[str]:
        initial = ",".join(f"{m.name}={m.peer_url}" for m in self.members)
        return [
            etcd_binary(),
            "--name", member.name,
            "--data-dir", str(member.data_dir),
            "--listen-client-urls", member.client_url,
            "--advertise-client-urls", member.client_url,
            "--listen-peer-urls", member.peer_url,
            "--initial-advertise-peer-urls", member.peer_url,
            "--initial-cluster", initial,
            "--initial-cluster-state", "new",
            "--initial-cluster-token", f"shoal-{self.root.name}",
            "--logger", "zap",
            "--log-level", "warn",
        ]  # fmt: skip

    def start_member(self, index: int) -> None:
        member = self.members[index]
        if member.running:
            raise EtcdFailed(f"{member.name} is already running")
        member.data_dir.parent.mkdir(parents=True, exist_ok=True)
        command = self._command(member)
        if self.die_with_parent:
            command = [
                sys.executable,
                "-m",
                "shoal.runtime.lifeline",
                str(os.getpid()),
                "--exec",
                *command,
            ]
        with member.log_path.open("ab") as log_file:
            member.process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        log.debug("started %s (pid %d) at %s", member.name, member.process.pid, member.client_url)

    def wait_member(self, index: int, timeout: float = 30.0) -> None:
        member = self.members[index]

        def healthy() -> bool:
            if not member.running:
                raise EtcdFailed(f"{member.name} exited; its log:\n{member.log_tail()}")
            return is_healthy(member.client_url)

        wait_for(healthy, timeout, f"{member.name} at {member.client_url} to be healthy")

    def start(self, timeout: float = 30.0) -> None:
        """Start every member (they elect a leader together), then wait for health.

        A port is probed free and then handed to etcd, so another process can take
        it in between. A cluster that has never started picks fresh ports and tries
        again when that happens; one with data keeps the addresses its peers know.
        """
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._start_once(timeout)
                self._fresh = False
                return
            except EtcdFailed:
                if not (self._fresh and attempt < PORT_ATTEMPTS and self._lost_a_port()):
                    raise
                log.warning("an etcd port was taken before etcd bound it; choosing new ports")
                self._choose_ports()

    def _start_once(self, timeout: float) -> None:
        try:
            for index in range(self.size):
                self.start_member(index)
            wait_for(self._all_healthy, timeout, f"{self.size} etcd member(s) to be healthy")
        except BaseException:
            self.stop()
            raise

    def _all_healthy(self) -> bool:
        for member in self.members:
            if not member.running:
                raise EtcdFailed(f"{member.name} exited; its log:\n{member.log_tail()}")
        return all(is_healthy(member.client_url) for member in self.members)

    def _lost_a_port(self) -> bool:
        return any(ADDRESS_IN_USE in member.log_tail() for member in self.members)

    def stop_member(self, index: int, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL if it does not exit in time."""
        member = self.members[index]
        if member.process is None:
            return
        if member.process.poll() is None:
            member.process.send_signal(signal.SIGTERM)
            try:
                member.process.wait(timeout)
            except subprocess.TimeoutExpired:
                member.process.kill()
                member.process.wait()
        member.process = None

    def kill_member(self, index: int) -> None:
        member = self.members[index]
        if member.process is None:
            return
        if member.process.poll() is None:
            member.process.kill()
        member.process.wait()
        member.process = None

    def stop(self) -> None:
        for index in range(len(self.members)):
            self.stop_member(index)

    def __enter__(self) -> "EtcdCluster":
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
