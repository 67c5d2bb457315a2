"""RocksDB's memory on a shard is bounded by its flags: one block cache shared by every
collection, small memtables; and the malloc arena limit is a flag too."""

from pathlib import Path

import pytest

from shard.settings import parse_args
from shard.storage.document_store import MIB, DocumentStore, StoreMemory
from shard.storage.records import Record
from shoal.runtime.native_memory import limit_arenas, release_free_memory

VECTOR = bytes(4 * 384)


def _fill(store: DocumentStore, count: int, first_seq: int = 1) -> None:
    written = [
        (f"doc-{i:06d}", Record(1, False, first_seq + i, i, VECTOR, b"x" * 200))
        for i in range(count)
    ]
    store.commit(written, [], first_seq + count - 1, count)


def test_defaults_are_small_and_flags_change_them(monkeypatch: pytest.MonkeyPatch) -> None:
    defaults = parse_args(["--data-dir", "/tmp/x"])
    assert defaults.rocksdb_block_cache_mib == 8
    assert defaults.rocksdb_write_buffer_mib == 4
    assert defaults.rocksdb_write_buffers == 2
    assert defaults.malloc_arenas == 2
    changed = parse_args(
        [
            "--data-dir", "/tmp/x",
            "--rocksdb-block-cache-mib", "64",
            "--rocksdb-write-buffer-mib", "16",
            "--rocksdb-write-buffers", "3",
            "--malloc-arenas", "0",
        ]
    )  # fmt: skip
    assert (
        changed.rocksdb_block_cache_mib,
        changed.rocksdb_write_buffer_mib,
        changed.rocksdb_write_buffers,
        changed.malloc_arenas,
    ) == (64, 16, 3, 0)
    monkeypatch.setenv("SHOAL_ROCKSDB_BLOCK_CACHE_MIB", "32")
    assert parse_args(["--data-dir", "/tmp/x"]).rocksdb_block_cache_mib == 32


@pytest.mark.parametrize(
    "flag", ["--rocksdb-block-cache-mib", "--rocksdb-write-buffer-mib", "--malloc-arenas"]
)
def test_bad_sizes_are_refused(flag: str) -> None:
    with pytest.raises(SystemExit):
        parse_args(["--data-dir", "/tmp/x", flag, "-1"])


def test_every_store_shares_one_bounded_block_cache(tmp_path: Path) -> None:
    memory = StoreMemory(block_cache_bytes=1 * MIB, write_buffer_bytes=1 * MIB)
    paths = [tmp_path / "a", tmp_path / "b"]
    for path in paths:
        store = DocumentStore.open(path, memory=memory)
        _fill(store, 2000)  # 3.5 MB of records: more than the cache holds
        store.close()
    # Reopened, the records are in table files: reads go through the block cache.
    stores = [DocumentStore.open(path, memory=memory) for path in paths]
    try:
        ids = [f"doc-{i:06d}" for i in range(2000)]
        for store in stores:
            assert all(record is not None for record in store.get(ids))
        usage = [store.memory_usage()["block-cache-usage"] for store in stores]
        assert usage[0] == usage[1] == memory.cache_usage()  # one cache
        assert 0 < memory.cache_usage() <= 1 * MIB * 1.05
    finally:
        for store in stores:
            store.close()


def test_memtables_stay_within_the_write_buffers(tmp_path: Path) -> None:
    memory = StoreMemory(block_cache_bytes=1 * MIB, write_buffer_bytes=1 * MIB, max_write_buffers=2)
    store = DocumentStore.open(tmp_path / "db", memory=memory)
    try:
        for batch in range(8):  # 8 x 0.9 MB: RocksDB's default 64 MiB memtable would hold all
            _fill(store, 500, first_seq=1 + 500 * batch)
        # Two 1 MiB memtables and a flush in progress, not the 7 MB written.
        assert store.memory_usage()["cur-size-all-mem-tables"] <= 4 * MIB
    finally:
        store.close()


def test_allocator_calls_are_safe_to_make() -> None:
    limit_arenas(0)  # glibc's default: nothing to change
    assert isinstance(release_free_memory(), bool)


def test_scans_leave_the_block_cache_to_point_reads(tmp_path: Path) -> None:
    """Loading a collection scans every record; the cache keeps none of that."""
    memory = StoreMemory(block_cache_bytes=4 * MIB, write_buffer_bytes=1 * MIB)
    store = DocumentStore.open(tmp_path / "db", memory=memory)
    _fill(store, 2000)
    store.close()
    store = DocumentStore.open(tmp_path / "db", memory=memory)
    try:
        before = memory.cache_usage()
        assert sum(1 for _ in store.scan_payloads()) == 2000
        assert sum(1 for _ in store.headers()) == 2000
        assert memory.cache_usage() - before < 64 * 1024
        store.get([f"doc-{i:06d}" for i in range(0, 2000, 10)])
        assert memory.cache_usage() - before > 64 * 1024  # point reads do fill it
    finally:
        store.close()
