"""One collection's RocksDB (rocksdict in raw mode): config, records, write order, counters.

Keys (see `records`): the config, the state (last write sequence and next index
label), one record per document id, and one `seq -> id` entry per id for its
latest write, so that an index checkpoint at sequence S is caught up by reading
only what was written after S.
"""

from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import cast

from rocksdict import (
    BlockBasedOptions,
    Cache,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

from shard.storage import records
from shard.storage.records import Record
from shoal.errors import DataLoss

MIB = 2**20


class StoreMemory:
    """RocksDB's memory, bounded: one block cache for every collection of a shard,
    and per collection at most `max_write_buffers` memtables of `write_buffer_bytes`.

    RocksDB's defaults (64 MiB memtables, two of them, per collection) suit a
    database that owns the machine; here RocksDB holds what the HNSW graph, the
    payload index and the keyword index already have in memory, and is read only
    for stored fields, exact scans and loading, so small buffers cost little (the
    operating system's page cache still holds the files). Index blocks stay with
    the table readers, outside the cache: about 1% of the data, and evicting them
    would slow every read of a stored field.
    """

    def __init__(
        self,
        block_cache_bytes: int = 8 * MIB,
        write_buffer_bytes: int = 4 * MIB,
        max_write_buffers: int = 2,
    ) -> None:
        self.block_cache_bytes = block_cache_bytes
        self.write_buffer_bytes = write_buffer_bytes
        self.max_write_buffers = max_write_buffers
        self._cache = Cache(block_cache_bytes)  # shared by every store opened with these

    def options(self) -> Options:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_keep_log_file_num(2)
        options.set_write_buffer_size(self.write_buffer_bytes)
        options.set_max_write_buffer_number(self.max_write_buffers)
        table = BlockBasedOptions()
        table.set_block_cache(self._cache)
        options.set_block_based_table_factory(table)
        return options

    def cache_usage(self) -> int:
        """Bytes the shared block cache holds now."""
        return int(self._cache.get_usage())


class DocumentStore:
    """Thread-safe for reads; the collection serializes writes (one writer at a time)."""

    def __init__(self, db: Rdict, sync: bool) -> None:
        self._db = db
        self._write_options = WriteOptions()
        # The WAL is always on: a write acknowledged without sync survives a process
        # crash (SIGKILL); with sync it also survives losing the machine.
        self._write_options.sync = sync
        self._scan_options = ReadOptions()
        # rocksdict's stub omits the argument the method takes.
        self._scan_options.fill_cache(False)  # type: ignore[call-arg]

    @classmethod
    def open(
        cls, path: Path, sync: bool = False, memory: StoreMemory | None = None
    ) -> "DocumentStore":
        """`memory`: the shard's RocksDB budget (None: a small one of this store's own)."""
        options = (memory if memory is not None else StoreMemory()).options()
        try:
            # The column family's options too: without them rocksdict reopens a store
            # with the ones saved in it, RocksDB's defaults (8 MiB cache of its own,
            # 64 MiB memtables), whatever `options` say.
            db = Rdict(str(path), options, column_families={"default": options})
        except Exception as error:  # rocksdict raises plain Exception on open failures
            raise DataLoss(f"cannot open the document store at {path}: {error}") from error
        return cls(db, sync)

    @classmethod
    def initialize(cls, path: Path, config: bytes) -> None:
        """Create a new store holding only the config, synced to disk, and close it."""
        store = cls.open(path, sync=True)
        try:
            batch = WriteBatch(raw_mode=True)
            batch.put(records.CONFIG_KEY, config)
            batch.put(records.STATE_KEY, records.encode_state(0, 0))
            store._db.write(batch, store._write_options)
        finally:
            store.close()

    def set_config(self, config: bytes) -> None:
        """Replace the stored config (a collection adopting its catalog incarnation)."""
        batch = WriteBatch(raw_mode=True)
        batch.put(records.CONFIG_KEY, config)
        self._db.write(batch, self._write_options)

    def config(self) -> bytes:
        data = self._db.get(records.CONFIG_KEY)
        if data is None:
            raise DataLoss(f"the document store at {self._db.path()} has no collection config")
        return bytes(data)

    def state(self) -> tuple[int, int]:
        """(last write sequence, next free index label)."""
        data = self._db.get(records.STATE_KEY)
        if data is None:
            raise DataLoss(f"the document store at {self._db.path()} has no state record")
        return records.decode_state(data)

    def get(self, ids: Sequence[str]) -> list[Record | None]:
        """The records of `ids`, in order; None where an id was never written."""
        if not ids:
            return []
        keys: list[str | int | float | bytes | bool] = [records.doc_key(i) for i in ids]
        found = cast(list[bytes | None], self._db.get(keys))
        return [
            None if data is None else records.decode(data, doc_id)
            for doc_id, data in zip(ids, found, strict=True)
        ]

    def get_encoded(self, ids: Sequence[str]) -> list[bytes | None]:
        """The encoded records of `ids`, in order, for callers that decode only what they need."""
        if not ids:
            return []
        keys: list[str | int | float | bytes | bool] = [records.doc_key(i) for i in ids]
        return cast(list[bytes | None], self._db.get(keys))

    def commit(
        self,
        written: Sequence[tuple[str, Record]],
        superseded_seqs: Sequence[int],
        last_seq: int,
        next_label: int,
    ) -> None:
        """Write records, their sequence entries and the new state as one atomic batch."""
        batch = WriteBatch(raw_mode=True)
        for seq in superseded_seqs:
            batch.delete(records.seq_key(seq))
        for doc_id, record in written:
            batch.put(records.doc_key(doc_id), records.encode(record))
            batch.put(records.seq_key(record.seq), doc_id.encode())
        batch.put(records.STATE_KEY, records.encode_state(last_seq, next_label))
        self._db.write(batch, self._write_options)

    def _items(self, prefix: bytes, start: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Entries from `start` on while their keys begin with `prefix` (raw mode: bytes).

        Scans (loading, replication, scroll) read past the block cache: they touch
        every block once and would push out the ones point reads come back to.
        """
        for key, data in self._db.items(from_key=start, read_opt=self._scan_options):
            raw_key = cast(bytes, key)
            if not raw_key.startswith(prefix):
                break
            yield raw_key, cast(bytes, data)

    def scan(self) -> Iterator[tuple[str, Record]]:
        """Every record (live and tombstones), in id byte order."""
        for key, data in self._items(records.DOC_PREFIX, records.DOC_PREFIX):
            doc_id = records.id_from_doc_key(key)
            yield doc_id, records.decode(data, doc_id)

    def scan_payloads(self) -> Iterator[tuple[str, int, bytes]]:
        """(id, label, payload) of every live record, without copying vectors."""
        for key, data in self._items(records.DOC_PREFIX, records.DOC_PREFIX):
            doc_id = records.id_from_doc_key(key)
            header = records.decode_header(data, doc_id)
            if not header.deleted:
                yield doc_id, header.label, records.payload_of(data, doc_id)

    def headers(self) -> Iterator[tuple[str, records.Header]]:
        """(id, header) of every record, tombstones included, in id order; no vectors copied."""
        for key, data in self._items(records.DOC_PREFIX, records.DOC_PREFIX):
            doc_id = records.id_from_doc_key(key)
            yield doc_id, records.decode_header(data, doc_id)

    def purge(self, purged: Sequence[tuple[str, int]]) -> None:
        """Remove records (id, write sequence) and their sequence entries, in one batch.

        The state (last sequence, next label) is untouched: sequences are never reused.
        """
        if not purged:
            return
        batch = WriteBatch(raw_mode=True)
        for doc_id, seq in purged:
            batch.delete(records.doc_key(doc_id))
            batch.delete(records.seq_key(seq))
        self._db.write(batch, self._write_options)

    def records_after(self, doc_id: str) -> Iterator[tuple[str, bytes]]:
        """(id, encoded record) of every id after `doc_id` ("" for all), in id order.

        Decoding is left to the caller, which can read the header alone first.
        """
        start = records.doc_key_after(doc_id)
        for key, data in self._items(records.DOC_PREFIX, start):
            yield records.id_from_doc_key(key), data

    def ids_written_after(self, seq: int) -> Iterator[tuple[int, str]]:
        """(sequence, id) of every id whose latest write is newer than `seq`, oldest first."""
        for key, data in self._items(records.SEQ_PREFIX, records.seq_key(seq + 1)):
            yield records.seq_from_key(key), data.decode()

    def memory_usage(self) -> dict[str, int]:
        """RocksDB's own estimates of its memory (bytes): memtables, the block cache
        (shared with the shard's other stores), table readers outside the cache."""
        return {
            name: int(self._db.property_int_value(f"rocksdb.{name}") or 0)
            for name in (
                "cur-size-all-mem-tables",
                "block-cache-usage",
                "estimate-table-readers-mem",
            )
        }

    def close(self) -> None:
        self._db.close()
