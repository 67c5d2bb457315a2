"""A snapshot's data files and its manifest.

A data file holds the live records of one partition of one collection, each as
a 4-byte little-endian length and the record's bytes (the shard's own format,
`SnapshotRecord.data`), in id order. The manifest (JSON) names every file with
its size, record count and sha256, so a restore checks every byte before it
writes anything.
"""

import hashlib
import json
import re
import struct
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import BinaryIO

from coordinator.core.collection_config import from_entry, to_settings
from coordinator.core.ports import CollectionConfig
from shoal.catalog import CatalogEntry
from shoal.errors import DataLoss, InvalidArgument

FORMAT = 1
MANIFEST = "manifest.json"
_LENGTH = struct.Struct("<I")
SNAPSHOT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_READ_CHUNK = 1 << 20


def check_snapshot_name(name: str) -> None:
    if not SNAPSHOT_NAME.fullmatch(name) or ".." in name:
        raise InvalidArgument(
            f"snapshot name {name!r} is not allowed: use 1-128 letters, digits, '.', '_' or"
            " '-', starting with a letter or digit"
        )


def data_file_name(collection_index: int, partition: int) -> str:
    return f"data/{collection_index:04d}/p{partition:05d}.rec"


@dataclass(frozen=True, slots=True)
class DataFile:
    name: str
    partition: int
    records: int
    bytes: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CollectionEntry:
    name: str
    settings: dict[str, object]
    documents: int
    files: list[DataFile]

    @property
    def config(self) -> CollectionConfig:
        return from_entry(CatalogEntry(self.name, self.settings, 0))

    @property
    def partitions(self) -> int:
        return self.config.partitions


@dataclass(frozen=True, slots=True)
class Manifest:
    name: str
    cut: int
    created_at: str
    shoal_version: str
    collections: list[CollectionEntry] = field(default_factory=list)
    # group -> the replica addresses whose records were merged (newest per id)
    read_from: dict[str, list[str]] = field(default_factory=dict)
    format: int = FORMAT

    @property
    def total_bytes(self) -> int:
        return sum(f.bytes for c in self.collections for f in c.files)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, snapshot: str, data: bytes) -> "Manifest":
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise ValueError(f"format {raw.get('format')!r}, this Shoal reads {FORMAT}")
            collections = [
                CollectionEntry(
                    name=str(c["name"]),
                    settings=dict(c["settings"]),
                    documents=int(c["documents"]),
                    files=[DataFile(**f) for f in c["files"]],
                )
                for c in raw["collections"]
            ]
            manifest = cls(
                name=str(raw["name"]),
                cut=int(raw["cut"]),
                created_at=str(raw["created_at"]),
                shoal_version=str(raw["shoal_version"]),
                collections=collections,
                read_from={str(k): list(v) for k, v in raw.get("read_from", {}).items()},
            )
            for entry in collections:
                entry.config  # noqa: B018 - the settings must be readable
        except (ValueError, KeyError, TypeError, AttributeError, DataLoss) as error:
            raise DataLoss(f"snapshot {snapshot!r}: {MANIFEST} is unreadable ({error})") from error
        return manifest


def collection_entry(
    config: CollectionConfig, documents: int, files: list[DataFile]
) -> CollectionEntry:
    return CollectionEntry(config.name, to_settings(config), documents, files)


class DataFileWriter:
    """Appends records to one data file, hashing as it goes. The file may be closed
    between appends (`suspend`) and is reopened to append: a collection can have
    more partitions than a process may hold files open."""

    def __init__(self, path: Path, name: str, partition: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
        self.path = path
        self.name = name
        self.partition = partition
        self._file: BinaryIO | None = None
        self._hash = hashlib.sha256()
        self.records = 0
        self.bytes = 0

    def append(self, data: bytes) -> None:
        if self._file is None:
            self._file = self.path.open("ab")
        chunk = _LENGTH.pack(len(data)) + data
        self._file.write(chunk)
        self._hash.update(chunk)
        self.records += 1
        self.bytes += len(chunk)

    def suspend(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> DataFile:
        self.suspend()
        return DataFile(self.name, self.partition, self.records, self.bytes, self._hash.hexdigest())


#: Data files a snapshot keeps open at once (the least recently written is closed).
MAX_OPEN_FILES = 64


class DataFiles:
    """The data files of one collection, one per partition, made as records arrive."""

    def __init__(self, root: Path, collection_index: int, max_open: int = MAX_OPEN_FILES) -> None:
        self._root = root
        self._index = collection_index
        self._max_open = max_open
        self._writers: dict[int, DataFileWriter] = {}
        self._open: OrderedDict[int, None] = OrderedDict()

    def append(self, partition: int, data: bytes) -> None:
        writer = self._writers.get(partition)
        if writer is None:
            name = data_file_name(self._index, partition)
            writer = self._writers[partition] = DataFileWriter(self._root / name, name, partition)
        writer.append(data)
        self._open[partition] = None
        self._open.move_to_end(partition)
        if len(self._open) > self._max_open:
            oldest, _ = self._open.popitem(last=False)
            self._writers[oldest].suspend()

    def close(self) -> list[DataFile]:
        """Every file, in partition order."""
        self._open.clear()
        return [self._writers[p].close() for p in sorted(self._writers)]


def check_file(snapshot: str, expected: DataFile, path: Path) -> None:
    """DataLoss naming the file unless it has the manifest's size and sha256."""
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("rb") as source:
            while chunk := source.read(_READ_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as error:
        raise DataLoss(
            f"snapshot {snapshot!r}: file {expected.name} is unreadable: {error}"
        ) from error
    if size != expected.bytes or digest.hexdigest() != expected.sha256:
        raise DataLoss(
            f"snapshot {snapshot!r}: file {expected.name} is damaged: {size} bytes with sha256"
            f" {digest.hexdigest()}, the manifest says {expected.bytes} bytes with sha256"
            f" {expected.sha256}"
        )


def read_records(snapshot: str, name: str, path: Path) -> Iterator[bytes]:
    """The records of a data file whose checksum was checked."""
    with path.open("rb") as source:
        while header := source.read(_LENGTH.size):
            if len(header) < _LENGTH.size:
                raise DataLoss(f"snapshot {snapshot!r}: file {name} ends inside a record")
            (length,) = _LENGTH.unpack(header)
            data = source.read(length)
            if len(data) < length:
                raise DataLoss(f"snapshot {snapshot!r}: file {name} ends inside a record")
            yield data
