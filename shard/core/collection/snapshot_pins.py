"""Snapshot pins of one collection: the cuts being copied and the records writes
replaced since (pre-images). How a scan uses them: `snapshots`."""

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from shard.core.documents import WriteOp
from shard.storage.records import Record
from shoal.errors import NotFound, ResourceExhausted, Unavailable

#: How long a pin lives without its scan asking for a page (a coordinator that died).
DEFAULT_PIN_TTL_S = 600.0

#: Pre-image bytes one collection keeps for all its pins before breaking them.
MAX_PREIMAGE_BYTES = 512 * 1024 * 1024

#: Records per scan page.
DEFAULT_PAGE_SIZE = 1000


@dataclass
class Pin:
    cut: int
    expires: float
    sealed: bool = False
    broken: str = ""
    # id -> the newest record with version <= cut that a later write replaced.
    preimages: dict[str, Record] = field(default_factory=dict)
    preimage_bytes: int = 0


class SnapshotPins:
    """The pins of one collection. Writes consult it under the collection's write
    lock; its own lock guards the pin table against scans in other threads."""

    def __init__(self, max_bytes: int = MAX_PREIMAGE_BYTES) -> None:
        self._pins: dict[int, Pin] = {}
        self._lock = threading.Lock()
        self._max_bytes = max_bytes
        #: The newest version stored; None until a pin first needs it.
        self.max_version: int | None = None

    def active(self) -> bool:
        return bool(self._pins)

    def _expire(self, now: float) -> None:
        for cut in [cut for cut, pin in self._pins.items() if pin.expires < now]:
            del self._pins[cut]

    def add(self, cut: int, ttl_s: float) -> None:
        with self._lock:
            self._expire(time.monotonic())
            pin = self._pins.get(cut)
            if pin is None:
                self._pins[cut] = Pin(cut, time.monotonic() + ttl_s)
            else:
                pin.expires = max(pin.expires, time.monotonic() + ttl_s)

    def get(self, cut: int, ttl_s: float) -> Pin:
        """The pin for `cut`, its life extended; NotFound when it was released or expired."""
        with self._lock:
            pin = self._pins.get(cut)
            if pin is None:
                raise NotFound(
                    f"no snapshot pin for cut {cut} (released, expired, or the replica"
                    " restarted); take the snapshot again"
                )
            if pin.broken:
                raise ResourceExhausted(pin.broken)
            pin.expires = time.monotonic() + ttl_s
            return pin

    def kept(self, pin: Pin) -> list[tuple[str, Record]]:
        """The pin's pre-images, in id order."""
        with self._lock:
            return sorted(pin.preimages.items())

    def release(self, cut: int) -> bool:
        with self._lock:
            return self._pins.pop(cut, None) is not None

    def check_writes(self, ops: Sequence[WriteOp], stored: Sequence[Record | None]) -> None:
        """Refuse the batch if a sealed pin's cut is at or after a write that would
        apply (a write that loses to the stored record changes nothing)."""
        sealed = [pin.cut for pin in self._pins.values() if pin.sealed]
        if not sealed:
            return
        newest_sealed = max(sealed)
        for op, old in zip(ops, stored, strict=True):
            if op.version <= newest_sealed and (old is None or op.version > old.version):
                raise Unavailable(
                    f"document {op.id!r}: version {op.version} is at or before the cut"
                    f" {newest_sealed} of a snapshot being copied; retry the write"
                )

    def note_replaced(self, doc_id: str, old: Record | None, version: int) -> None:
        """A write with `version` replaces `old`: keep `old` for every pin whose cut
        lies between the two. Runs under the write lock, before the commit."""
        if self.max_version is not None:
            self.max_version = max(self.max_version, version)
        if old is None:
            return
        with self._lock:
            for pin in self._pins.values():
                if old.version <= pin.cut < version and doc_id not in pin.preimages:
                    pin.preimages[doc_id] = old
                    pin.preimage_bytes += len(old.vector) + len(old.payload) + len(doc_id)
                    if pin.preimage_bytes > self._max_bytes and not pin.broken:
                        pin.broken = (
                            f"snapshot at cut {pin.cut}: writes during the copy replaced more"
                            f" than {self._max_bytes} bytes of records; take it again with"
                            " less write load"
                        )
                        pin.preimages.clear()
