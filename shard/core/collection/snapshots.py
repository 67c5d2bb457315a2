"""Snapshot pins: one collection's records as they were at a cut, read while writes go on.

Records are last-writer-wins and a replica stores only the newest version of
each id, so a write newer than the cut would destroy the version a snapshot
at that cut must copy. A pin for cut C keeps it:

1. `pin(C)` (under the write lock): refused if the replica already holds a
   version newer than C (a coordinator's clock ran ahead; the caller takes a
   later cut). From then on, a write with version > C that replaces a record
   with version <= C first keeps the replaced record (its pre-image) here, in
   memory, for the pin's life.
2. `seal(C)`, when the scan starts: from then on a write with version <= C is
   refused (`Unavailable`, so the caller retries with a new version). The
   coordinator seals only once the cut lies far enough in the past that such a
   write is one delayed past every deadline, so in practice none is refused.
3. The scan reads the store a page at a time: per id the live record if its
   version <= C, else the pre-image, else nothing (the id was created after
   the cut); then the pre-images of ids that left the store meanwhile.

Between pin and seal every write <= C is applied as usual and every write > C
keeps the pre-image, so at seal time the live records and pre-images together
hold exactly the state at C, and after the seal that state can no longer
change. Pre-images live in memory: a pin dies with its process, and so does
the scan stream reading it, so the snapshot fails and is taken again; keeping
them on disk would buy nothing. Their bytes are capped; past the cap the pin
breaks and its scan fails with RESOURCE_EXHAUSTED instead of growing memory.
"""

from dataclasses import dataclass

from shard.core.collection.snapshot_pins import DEFAULT_PAGE_SIZE, DEFAULT_PIN_TTL_S
from shard.core.collection.state import CollectionState
from shard.core.documents import WriteOp
from shard.storage import records
from shard.storage.records import Record
from shoal.errors import FailedPrecondition

__all__ = [
    "DEFAULT_PAGE_SIZE",
    "DEFAULT_PIN_TTL_S",
    "ScanPosition",
    "pin",
    "release",
    "scan_page",
    "seal",
]


def pin(state: CollectionState, cut: int, ttl_s: float) -> int:
    """Pin `cut`; the newest version the replica holds."""
    with state.life.use(), state.write_lock:
        pins = state.pins
        if pins.max_version is None:
            pins.max_version = max(
                (header.version for _, header in state.store.headers()), default=0
            )
        if pins.max_version > cut:
            raise FailedPrecondition(
                f"this replica holds version {pins.max_version}, newer than the snapshot cut"
                f" {cut}; take the snapshot with a later cut"
            )
        pins.add(cut, ttl_s)
        return pins.max_version


def seal(state: CollectionState, cut: int, ttl_s: float) -> None:
    """From now on writes at or before `cut` are refused (under the write lock, so a
    batch is either committed before the seal or checked after it)."""
    with state.life.use(), state.write_lock:
        state.pins.get(cut, ttl_s).sealed = True


def release(state: CollectionState, cut: int) -> bool:
    return state.pins.release(cut)


@dataclass
class ScanPosition:
    """Where a scan is: the last id read, and whether the store is read to its end."""

    after_id: str = ""
    done: bool = False


def _op(doc_id: str, record: Record) -> WriteOp:
    return WriteOp(doc_id, record.version, record.deleted, record.vector, record.payload)


def scan_page(
    state: CollectionState, cut: int, position: ScanPosition, limit: int, ttl_s: float
) -> list[WriteOp]:
    """The next records as of `cut`, tombstones included, in id order across pages;
    `position` moves on. An empty page with `position.done` ends the scan.

    Pre-images of ids that left the store (a purge) are merged in by id, so the
    coordinator can merge the replicas' streams by id.
    """
    pin = state.pins.get(cut, ttl_s)
    if not pin.sealed:
        raise FailedPrecondition(f"snapshot pin for cut {cut} is not sealed")
    out: list[WriteOp] = []
    if position.done:
        return out
    seen: set[str] = set()
    last = position.after_id
    exhausted = True
    with state.life.use():
        for doc_id, data in state.store.records_after(position.after_id):
            seen.add(doc_id)
            last = doc_id
            record = records.decode(data, doc_id)
            if record.version > cut:
                kept = pin.preimages.get(doc_id)
                if kept is None:
                    continue  # created after the cut
                record = kept
            out.append(_op(doc_id, record))
            if len(seen) >= limit:
                exhausted = False
                break
    low = position.after_id
    gone = [
        _op(doc_id, record)
        for doc_id, record in state.pins.kept(pin)
        if doc_id > low and (exhausted or doc_id <= last) and doc_id not in seen
    ]
    if gone:
        out = sorted([*out, *gone], key=lambda op: op.id)
    position.after_id = last
    position.done = exhausted
    return out
