"""Snapshot data files and manifests: a round trip, and damage named by file."""

import re
from itertools import combinations
from pathlib import Path

import pytest

from coordinator.core.collection_config import with_defaults
from coordinator.core.model import WriteConsistency
from coordinator.core.ports import CollectionConfig
from coordinator.core.snapshot_files import (
    DataFiles,
    DataFileWriter,
    Manifest,
    check_file,
    check_snapshot_name,
    collection_entry,
    read_records,
)
from coordinator.core.snapshots import replicas_to_read
from shoal.errors import DataLoss, InvalidArgument


def test_records_and_manifest_round_trip(tmp_path: Path) -> None:
    writer = DataFileWriter(tmp_path / "data/0000/p00003.rec", "data/0000/p00003.rec", 3)
    records = [b"", b"one", bytes(range(256)) * 10]
    for record in records:
        writer.append(record)
    data_file = writer.close()
    check_file("s", data_file, writer.path)
    assert list(read_records("s", data_file.name, writer.path)) == records
    config = with_defaults(CollectionConfig("docs", dimension=8, partitions=4))
    manifest = Manifest(
        "s", 123, "2026-01-01T00:00:00Z", "0.1.0", [collection_entry(config, 3, [data_file])]
    )
    again = Manifest.from_json("s", manifest.to_json())
    assert again == manifest
    assert again.collections[0].config == config
    assert again.total_bytes == data_file.bytes


def test_more_partitions_than_open_files(tmp_path: Path) -> None:
    files = DataFiles(tmp_path, 0, max_open=2)
    for n in range(40):
        files.append(n % 5, f"record {n}".encode())
    closed = files.close()
    assert [f.partition for f in closed] == list(range(5))
    for data_file in closed:
        path = tmp_path / data_file.name
        check_file("s", data_file, path)
        expected = [f"record {n}".encode() for n in range(40) if n % 5 == data_file.partition]
        assert list(read_records("s", data_file.name, path)) == expected


def test_a_damaged_file_is_named(tmp_path: Path) -> None:
    writer = DataFileWriter(tmp_path / "f.rec", "data/0000/p00001.rec", 1)
    writer.append(b"x" * 100)
    data_file = writer.close()
    raw = bytearray(writer.path.read_bytes())
    raw[50] ^= 1
    writer.path.write_bytes(bytes(raw))
    with pytest.raises(DataLoss, match=re.escape("data/0000/p00001.rec is damaged")):
        check_file("s", data_file, writer.path)


def test_an_unreadable_manifest_is_data_loss() -> None:
    with pytest.raises(DataLoss, match=re.escape("manifest.json is unreadable")):
        Manifest.from_json("s", b'{"format": 1, "name": "s"')


@pytest.mark.parametrize("name", ["", "../x", "a/b", "-a", "a..b"])
def test_snapshot_names_stay_inside_the_location(name: str) -> None:
    with pytest.raises(InvalidArgument):
        check_snapshot_name(name)


def test_a_snapshot_reads_enough_replicas_to_see_every_quorum_write() -> None:
    for replicas in range(1, 8):
        quorum = WriteConsistency.QUORUM.required(replicas)
        read = replicas_to_read(replicas)
        assert read <= replicas
        for written in combinations(range(replicas), quorum):
            for seen in combinations(range(replicas), read):
                assert set(written) & set(seen), (replicas, written, seen)
