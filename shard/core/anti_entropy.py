"""Anti-entropy: a shard pulls from its peers what it missed, by comparing partition digests.

For every collection and every peer (the other replicas of its group): compare
partition digests; for the partitions that differ, compare version lists; fetch
the records the peer holds newer (tombstones included) and apply them through
the normal write path, where last-writer-wins keeps whichever version is newest.
Each replica only pulls: what it holds newer is its peers' to pull from it.

On start a shard runs one pass before it serves reads (`first_catch_up`), so a
replica that was down does not answer searches and gets from what it had
before: it answers UNAVAILABLE instead and the coordinator asks a peer. Writes
and the replication calls are served throughout, so peers catching up from
each other (a whole group restarting) do not wait on one another. If no peer
can be reached within a bound, the shard serves anyway and says so in the log:
it may be the only replica up, and refusing reads would only make things worse.

Then a pass runs every `interval_s`, so replicas converge even for writes no
hint covered (hints overflowed, a coordinator crashed mid-write).

A replica that holds no collection at all (started on an empty data directory)
first learns the collections from a peer and creates them, so it is rebuilt
completely. A replica that holds some collections does not learn others: a
collection missing on one replica is what a failed CreateCollection or
DeleteCollection leaves, and copying it back could undo a delete; the client
was told to retry either.
"""

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shard.core.config import CollectionConfig
from shard.core.documents import WriteOp
from shoal.errors import DeadlineExceeded, NotFound, ShoalError, Unavailable
from shoal.replication import PartitionDigest, VersionState, differing_partitions, newer_than_mine
from shoal.runtime.periodic import PeriodicTask
from shoal.version_horizon import VersionHorizon

log = logging.getLogger(__name__)


class Peer(Protocol):
    """Another replica of this shard's group. Calls raise shoal.errors: Unavailable
    or DeadlineExceeded when it cannot be reached, NotFound for a collection it lacks."""

    @property
    def address(self) -> str: ...

    async def list_collections(self, timeout_s: float) -> list[CollectionConfig]: ...

    async def digest(
        self, collection: str, timeout_s: float, incarnation: int = 0
    ) -> list[PartitionDigest]: ...

    async def list_versions(
        self, collection: str, partitions: Sequence[int], timeout_s: float, incarnation: int = 0
    ) -> dict[str, VersionState]: ...

    async def fetch(
        self, collection: str, ids: Sequence[str], timeout_s: float, incarnation: int = 0
    ) -> list[WriteOp]:
        """The stored records among `ids`, tombstones included. Every call with
        `incarnation` (not 0) is for that incarnation only: a peer holding another
        answers NotFound or Unavailable."""
        ...


class LocalReplica(Protocol):
    """This shard's own collections, as anti-entropy needs them."""

    async def collection_configs(self) -> list[CollectionConfig]: ...

    async def create_collection(self, config: CollectionConfig) -> None: ...

    async def digest(self, collection: str, *, incarnation: int = 0) -> list[PartitionDigest]: ...

    async def versions(
        self, collection: str, partitions: Sequence[int], incarnation: int = 0
    ) -> dict[str, VersionState]:
        """Raises NotFound if the collection (that incarnation of it) is gone."""
        ...

    async def apply(self, collection: str, ops: Sequence[WriteOp], incarnation: int = 0) -> int:
        """Write through the normal path; how many records were newer than what was held.
        Raises NotFound if that incarnation of the collection is gone."""
        ...


class Readiness:
    """Whether this shard serves reads yet (it does once its first catch-up is over)."""

    def __init__(self, ready: bool = False) -> None:
        self._ready = ready

    @property
    def ready(self) -> bool:
        return self._ready

    def set_ready(self) -> None:
        self._ready = True

    def require(self) -> None:
        if not self._ready:
            raise Unavailable(
                "shard is catching up with its peers after a restart; ask another replica"
            )


@dataclass(frozen=True)
class AntiEntropySettings:
    #: Seconds between passes once the shard serves.
    interval_s: float = 30.0
    #: How long the first catch-up waits for a peer to answer before serving anyway.
    first_wait_s: float = 30.0
    #: Pause between attempts of the first catch-up while no peer answers.
    retry_s: float = 1.0
    #: Deadline of each call to a peer.
    call_timeout_s: float = 30.0
    #: Ids per Fetch and write; partitions per ListVersions.
    fetch_batch: int = 256
    partitions_per_call: int = 16
    #: An empty replica creates the collections a peer holds. Off with a catalog:
    #: collections then come from the catalog alone.
    learn_collections: bool = True


@dataclass
class PassReport:
    reached: list[str] = field(default_factory=list)  # peers compared for every collection
    failed: list[str] = field(default_factory=list)  # peers that could not be reached
    copied: int = 0  # records applied that were newer than what this replica held
    learned: list[str] = field(default_factory=list)  # collections created from a peer


class AntiEntropy:
    def __init__(
        self,
        local: LocalReplica,
        peers: Callable[[], list[str]],
        connect: Callable[[str], Peer],
        settings: AntiEntropySettings | None = None,
        readiness: Readiness | None = None,
        record: Callable[[str, int], None] | None = None,
        horizon: VersionHorizon | None = None,
    ) -> None:
        """`peers` lists the peer addresses now; `connect` gives a client for one
        (called once per address). `record(collection, records)` counts copies."""
        self._local = local
        self._peers = peers
        self._connect = connect
        self.settings = settings or AntiEntropySettings()
        self.readiness = readiness or Readiness()
        self._record = record
        self._horizon = horizon or VersionHorizon()
        self._clients: dict[str, Peer] = {}
        self._periodic = PeriodicTask(
            "anti-entropy", self.pass_once, self.settings.interval_s, wait_first=True
        )
        self._lock = asyncio.Lock()  # one pass at a time

    def _client(self, address: str) -> Peer:
        client = self._clients.get(address)
        if client is None:
            client = self._clients[address] = self._connect(address)
        return client

    # -- the first catch-up ---------------------------------------------------

    async def first_catch_up(self) -> PassReport | None:
        """Catch up with the peers before serving reads; then mark the shard ready.

        Returns the pass that reached a peer, or None when there are no peers
        or none answered within `first_wait_s`.
        """
        started = time.monotonic()
        try:
            while True:
                addresses = self._peers()
                if not addresses:
                    log.info("no peers to catch up from; serving")
                    return None
                report = await self.pass_once()
                if report.reached:
                    log.info(
                        "caught up with %s in %.1fs: %d records copied%s",
                        ", ".join(report.reached),
                        time.monotonic() - started,
                        report.copied,
                        f"; collections learned: {', '.join(report.learned)}"
                        if report.learned
                        else "",
                    )
                    return report
                if time.monotonic() - started >= self.settings.first_wait_s:
                    log.warning(
                        "no peer (%s) answered within %.0fs; serving reads without catching"
                        " up: this replica may miss writes until a peer is back",
                        ", ".join(addresses),
                        self.settings.first_wait_s,
                    )
                    return None
                await asyncio.sleep(self.settings.retry_s)
        finally:
            self.readiness.set_ready()

    # -- passes ---------------------------------------------------------------

    async def pass_once(self) -> PassReport:
        """Pull from every peer what it holds newer, for every collection."""
        async with self._lock:
            report = PassReport()
            addresses = self._peers()
            if not addresses:
                return report
            if self.settings.learn_collections and not await self._local.collection_configs():
                await self._learn_collections(addresses, report)
            configs = await self._local.collection_configs()
            for address in addresses:
                try:
                    for config in configs:
                        report.copied += await self._pull(self._client(address), config)
                except ShoalError as error:
                    # Unreachable, or failing: try again next pass (a local failure
                    # to apply what it sent lands here too, and is logged the same).
                    log.info("catch-up from %s failed: %s", address, error)
                    report.failed.append(address)
                    continue
                report.reached.append(address)
            return report

    async def _learn_collections(self, addresses: list[str], report: PassReport) -> None:
        timeout_s = self.settings.call_timeout_s
        for address in addresses:
            try:
                configs = await self._client(address).list_collections(timeout_s)
            except (Unavailable, DeadlineExceeded):
                continue
            for config in configs:
                try:
                    await self._local.create_collection(config)
                except ShoalError as error:
                    log.warning("cannot create %r from %s: %s", config.name, address, error)
                    continue
                report.learned.append(config.name)
            if configs:
                log.info("empty replica: created %d collections known to %s", len(configs), address)
            return

    async def _pull(self, peer: Peer, config: CollectionConfig) -> int:
        """Apply what `peer` holds newer than this replica in the collection; how many.

        Every call names the incarnation held here, so nothing of a dropped
        collection (on either side) reaches a new one of the same name."""
        timeout_s = self.settings.call_timeout_s
        collection, incarnation = config.name, config.incarnation
        try:
            mine = await self._local.digest(collection, incarnation=incarnation)
            theirs = await peer.digest(collection, timeout_s, incarnation)
        except NotFound:
            return 0  # deleted here meanwhile, or the peer lacks it
        differing = differing_partitions([mine, theirs])
        step = self.settings.partitions_per_call
        copied = 0
        for start in range(0, len(differing), step):
            chunk = differing[start : start + step]
            try:
                their_versions = await peer.list_versions(collection, chunk, timeout_s, incarnation)
                my_versions = await self._local.versions(collection, chunk, incarnation)
            except NotFound:
                return copied
            fresh = self._horizon.drop_future(their_versions)
            if len(fresh) < len(their_versions):
                log.warning(
                    "collection %r: %s holds versions beyond this replica's clock + %g s;"
                    " not copied",
                    collection,
                    peer.address,
                    self._horizon.max_skew_s,
                )
            wanted = newer_than_mine(my_versions, fresh)
            for begin in range(0, len(wanted), self.settings.fetch_batch):
                ids = wanted[begin : begin + self.settings.fetch_batch]
                try:
                    records = await peer.fetch(collection, ids, timeout_s, incarnation)
                    # A record changed since it was listed is checked again.
                    limit = self._horizon.limit_ms()
                    records = [r for r in records if self._horizon.within(r.version, limit)]
                    applied = await self._local.apply(collection, records, incarnation)
                except NotFound:
                    return copied
                copied += applied
                if applied and self._record is not None:
                    self._record(collection, applied)
        if copied:
            log.info(
                "collection %r: copied %d newer records from %s", collection, copied, peer.address
            )
        return copied

    # -- the periodic task ----------------------------------------------------

    def start(self) -> None:
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
