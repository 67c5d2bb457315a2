"""A whole Shoal cluster as real processes on one machine: etcd, an embedder, the
shard groups' replicas and a coordinator (shoal.cli.service_process runs each).

`shoal up` uses this to start a local cluster, and the tests use it to start
real servers on 127.0.0.1:0.

A local cluster owns its directory (`DataDirLock`: a second one on the same
directory is refused, naming the first), and its processes end with it: they
(etcd too) run under `shoal.runtime.lifeline`, so even a SIGKILLed `shoal up` leaves
nothing behind.
"""

import asyncio
import dataclasses
import json
import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType

from shoal.cli.certs import LOCAL_HOSTS, LocalPki
from shoal.cli.service_process import ClusterError, ServiceProcess
from shoal.errors import ShoalError
from shoal.etcd.client import EtcdClient
from shoal.etcd.server import EtcdCluster, EtcdFailed
from shoal.etcd.topology_store import EtcdTopology
from shoal.runtime.data_lock import DataDirInUse, DataDirLock
from shoal.runtime.tls import ClientTls
from shoal.topology import Topology

log = logging.getLogger(__name__)

DEFAULT_MODEL = "all-MiniLM-L6-v2"

Progress = Callable[[str], None]


async def publish_topology(endpoints: Sequence[str], topology: Topology) -> int:
    """Make etcd's topology list the replicas of `topology`; its version after.

    A local cluster's shards are its topology: the first start seeds etcd with
    them, and a start that finds them on other ports (no --base-port) stores their
    new addresses as a new version. Partitions moved meanwhile stay moved as
    long as the number of groups is the same.
    """
    client = EtcdClient(endpoints)
    try:
        store = EtcdTopology(client)
        current, _ = await store.read()
        if current is None:
            return (await store.seed(topology)).version
        if current.groups == topology.groups:
            return current.version
        same_groups = len(current.groups) == len(topology.groups)
        if same_groups:  # moves, done and in flight, stay as they are
            replaced = dataclasses.replace(current, groups=topology.groups)
        else:
            replaced = Topology(topology.version, topology.groups, {})
        return (await store.update(current.version, replaced)).version
    finally:
        await client.close()


def _quiet(_: str) -> None:
    """A Progress that says nothing (tests)."""


@dataclass
class ClusterSpec:
    groups: int = 2
    replicas: int = 2
    model: str = DEFAULT_MODEL
    host: str = "127.0.0.1"
    coordinator_port: int = 0
    # Fixed ports for every service from here, in the order of `LocalCluster.services`:
    # coordinator, embedder, then the shards group by group; None: the coordinator
    # takes `coordinator_port` and the rest any free port.
    base_port: int | None = None
    shard_threads: int = 0  # 0: the service's default
    # Torch threads for the embedder; None: the embedder's own default, every CPU it
    # may use. That suits a local cluster too, although the shards share the cores:
    # the embedder batches concurrent texts into one encode, and on 2 cores 16
    # concurrent text searches ran 146/s with 2 torch threads against 107/s with 1
    # (python -m bench.text_search, docs/benchmarks.md).
    embedder_threads: int | None = None
    ready_timeout: float = 120.0
    # Metrics on consecutive ports from here, in the same order as base_port; 0: off.
    metrics_port_base: int = 0
    # More flags for every shard (e.g. a shorter --anti-entropy-interval-s in tests).
    shard_args: tuple[str, ...] = ()
    # More flags for the coordinator (e.g. --api-keys-file, --snapshot-location).
    coordinator_args: tuple[str, ...] = ()
    # Members of the etcd (the collection catalog) started under ROOT/etcd; 0: none.
    etcd_members: int = 1
    # TLS on the public API and mTLS inside, with a local CA and certificates made
    # (once) under ROOT/tls (see shoal.cli.certs); False: plaintext everywhere.
    secure: bool = False

    @property
    def service_count(self) -> int:
        return 2 + self.groups * self.replicas

    def __post_init__(self) -> None:
        if self.embedder_threads is not None and self.embedder_threads < 1:
            raise ValueError(f"embedder threads {self.embedder_threads}: must be at least 1")
        if self.base_port is None:
            return
        last = self.base_port + self.service_count - 1
        if self.base_port < 1 or last > 65535:
            raise ValueError(
                f"base port {self.base_port}: the {self.service_count} services need ports"
                f" {self.base_port}-{last}, which must lie within 1-65535"
            )
        if self.coordinator_port not in (0, self.base_port):
            raise ValueError(
                f"coordinator port {self.coordinator_port} and base port {self.base_port}:"
                " give one (the coordinator takes the base port)"
            )


class LocalCluster:
    """An embedder, `groups` x `replicas` shard servers and a coordinator.

    Every process keeps its data, port file and log under `root`, so stopping
    and starting a cluster on the same root brings the same data back. Only one
    cluster at a time may use a root: `start` locks it (see shoal.runtime.data_lock).
    """

    def __init__(self, root: Path, spec: ClusterSpec | None = None) -> None:
        self.root = root
        self.spec = spec or ClusterSpec()
        self._lock = DataDirLock(root, "shoal up")
        self._services = 0
        self.pki = self._pki() if self.spec.secure else None
        self.coordinator = self._service(
            "coordinator",
            "coordinator",
            ["--topology", str(self.topology_path), *self.spec.coordinator_args],
        )
        embedder_args = ["--model", self.spec.model]
        if self.spec.embedder_threads is not None:
            embedder_args += ["--torch-threads", str(self.spec.embedder_threads)]
        self.embedder = self._service("embedder", "embedder", embedder_args)
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
        if self.pki is not None:
            self._secure(self.pki)
        # `start` adds the embedder's address to these once the embedder has bound it.
        self._coordinator_args = list(self.coordinator.args)

    @property
    def tls_dir(self) -> Path:
        return self.root / "tls"

    def _pki(self) -> LocalPki:
        """The CA and certificates of an earlier secure run on this root, so clients
        that trust its CA keep working; else new ones."""
        hosts = tuple(dict.fromkeys([*LOCAL_HOSTS, self.spec.host]))
        return LocalPki.existing(self.tls_dir) or LocalPki.create(self.tls_dir, hosts)

    def _secure(self, pki: LocalPki) -> None:
        """TLS flags for every service: the coordinator serves the public API with
        TLS (no client certificate asked) and calls the rest with mTLS; shards and
        the embedder require a certificate of the local CA."""
        self.coordinator.args = [*self.coordinator.args, *pki.server_args(pki.coordinator, False)]
        self.coordinator.tls = self.client_tls
        # Health checks of the mTLS services show the coordinator's certificate.
        inside = ClientTls(pki.ca, pki.coordinator.cert, pki.coordinator.key)
        self.embedder.args = [*self.embedder.args, *pki.server_args(pki.embedder, True)]
        self.embedder.tls = inside
        for shard in self.all_shards:
            shard.args = [*shard.args, *pki.server_args(pki.shard, True)]
            shard.tls = inside

    @property
    def client_tls(self) -> ClientTls | None:
        """How a client reaches the coordinator: TLS with the local CA, or plaintext."""
        return ClientTls(self.pki.ca) if self.pki is not None else None

    @property
    def topology_path(self) -> Path:
        return self.root / "topology.json"

    @property
    def log_dir(self) -> Path:
        """Where every service's log (`<name>.log`) and port file live."""
        return self.root / "run"

    @property
    def address(self) -> str:
        return self.coordinator.address

    @property
    def all_shards(self) -> list[ServiceProcess]:
        return [shard for group in self.shards for shard in group]

    @property
    def services(self) -> list[ServiceProcess]:
        """Every process, in the order ports are given out from `base_port`."""
        return [self.coordinator, self.embedder, *self.all_shards]

    def _service(self, name: str, module: str, args: list[str]) -> ServiceProcess:
        index = self._services
        self._services += 1
        if self.spec.metrics_port_base:
            args = [*args, "--metrics-port", str(self.spec.metrics_port_base + index)]
        if self.spec.base_port is not None:
            port = self.spec.base_port + index
        else:
            port = self.spec.coordinator_port if module == "coordinator" else 0
        return ServiceProcess(name, module, args, self.log_dir, host=self.spec.host, port=port)

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
        """Atomically: shards read the file whenever it changes, never half of it.
        With etcd, the topology there is made to list these processes too."""
        topology = {
            "version": 1,
            "groups": [{"replicas": [shard.address for shard in group]} for group in self.shards],
        }
        tmp = self.topology_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(topology, indent=2) + "\n")
        tmp.replace(self.topology_path)
        if self.etcd is not None and any(member.running for member in self.etcd.members):
            try:
                version = asyncio.run(
                    publish_topology(self.etcd.endpoints, Topology.from_dict(topology))
                )
            except ShoalError as error:
                raise ClusterError(f"cannot write the topology to etcd: {error}") from None
            log.debug("topology version %d in etcd", version)

    def _prepare_topology(self) -> None:
        """Write the topology now if every port is known; else remove the last run's.

        A topology left from a run on other ports lists addresses no shard has any
        more: each would read it on start, not find itself and warn. Without one
        a shard waits for the file `start` writes once the ports are bound.
        """
        if all(shard.port for shard in self.all_shards):
            self.write_topology()
        else:
            self.topology_path.unlink(missing_ok=True)

    def _start_etcd(self, progress: Progress) -> None:
        """The metadata store first: shards and the coordinator read the catalog on start."""
        assert self.etcd is not None
        started = time.monotonic()
        try:
            self.etcd.start()
        except EtcdFailed as error:
            raise ClusterError(str(error)) from None
        progress(f"etcd ready at {self.etcd.endpoints_flag} in {time.monotonic() - started:.1f} s")

    def start(self, progress: Progress = _quiet) -> None:
        """Lock the root, start everything and wait until the coordinator serves.

        `progress` hears what is happening, a line at a time (`shoal up` prints it).
        """
        try:
            self._lock.acquire()
        except DataDirInUse as error:
            raise ClusterError(str(error)) from None
        backends = [self.embedder, *self.all_shards]
        try:
            progress(f"logs: {self.log_dir}/<service>.log")
            if self.etcd is not None:
                self._start_etcd(progress)
            self._prepare_topology()
            started = time.monotonic()
            for service in backends:
                service.start()
            for shard in self.all_shards:
                shard.wait_ready(self.spec.ready_timeout)
            progress(f"{len(self.all_shards)} shards ready in {time.monotonic() - started:.1f} s")
            progress(f"loading embedding model {self.spec.model}...")
            self.embedder.wait_ready(self.spec.ready_timeout)
            progress(f"embedding model ready in {time.monotonic() - started:.1f} s")
            self.write_topology()
            self.coordinator.args = [*self._coordinator_args, "--embedder", self.embedder.address]
            self.coordinator.start()
            self.coordinator.wait_ready(self.spec.ready_timeout)
            progress(f"coordinator ready in {time.monotonic() - started:.1f} s")
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the coordinator first, so no write is cut off half-way; then the rest
        all at once (each takes up to its grace period); etcd last, as the shards
        give their leases back on the way out; then unlock the root."""
        try:
            self.coordinator.stop()
            rest = [*self.all_shards, self.embedder]
            for service in rest:
                service.terminate()
            for service in rest:
                service.stop()
            if self.etcd is not None:
                self.etcd.stop()
        finally:
            self._lock.release()

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


class StopRequested(KeyboardInterrupt):
    """SIGTERM or SIGHUP (a closed terminal): stop the way Ctrl-C does."""


STOP_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


@contextmanager
def _stop_on_signals() -> Iterator[None]:
    """Turn the first SIGTERM or SIGHUP into StopRequested in the main thread."""
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def request_stop(signum: int, frame: FrameType | None) -> None:
        _ignore_stop_signals()  # once: a second one must not cut the clean-up short
        raise StopRequested(signal.Signals(signum).name)

    for sig in STOP_SIGNALS:
        signal.signal(sig, request_stop)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _ignore_stop_signals() -> None:
    for sig in STOP_SIGNALS:
        signal.signal(sig, signal.SIG_IGN)


def say_safely(text: str) -> None:
    """Print a line; a terminal that has gone away (SIGHUP) must not stop the clean-up."""
    with suppress(OSError):
        print(text, flush=True)


def run_until_stopped(
    cluster: LocalCluster,
    when_serving: Callable[[], None] = lambda: None,
    say: Progress = say_safely,
) -> None:
    """`shoal up`: start the cluster, run `when_serving`, then serve until Ctrl-C,
    SIGTERM or SIGHUP, and stop every process before returning.

    Raises ClusterError when the cluster cannot start (nothing is left running).
    """
    with _stop_on_signals():
        started = False
        try:
            cluster.start(say)
            started = True
            when_serving()
            say("press Ctrl-C to stop")
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
        finally:
            _ignore_stop_signals()
            if started:
                say("stopping...")
            cluster.stop()
            if started:
                say("stopped")
