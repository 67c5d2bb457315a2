"""Index checkpoints: the hnswlib index plus its live id <-> label map, as of one write sequence.

A checkpoint is a directory `ckpt-<seq>` holding `hnsw.bin`, `labels.bin`,
`chunks.bin` and `meta.json` (sizes and CRC32s of the others). It is written
under a temporary name, synced and renamed into place, so a crash leaves either
the whole checkpoint or none; a checkpoint that fails its checks is skipped.

A chunked document holds the consecutive labels from its first, one per chunk:
`chunks.bin` (format 2) says how many, for the documents with more than one.
A format-1 checkpoint has no such file, so it can only stand for an index of
one label per document: a chunking collection skips it (and rebuilds).
"""

import json
import logging
import os
import shutil
import struct
import uuid
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from shard.storage.hnsw_index import HnswIndex
from shoal.errors import DataLoss

log = logging.getLogger(__name__)

FORMAT = 2
#: Format 1: no chunks file, every document one label.
FORMATS = (1, 2)
PREFIX = "ckpt-"
TMP_PREFIX = "tmp-"
INDEX_FILE = "hnsw.bin"
LABELS_FILE = "labels.bin"
CHUNKS_FILE = "chunks.bin"
META_FILE = "meta.json"
_COUNT = struct.Struct("<Q")
_CRC_CHUNK = 1 << 20


@dataclass
class Checkpoint:
    seq: int  # every write up to this sequence is in the index
    index: HnswIndex
    labels: dict[str, int]  # live id -> label (a chunked document's first)
    chunks: dict[str, int] = field(default_factory=dict)  # live id -> chunks, when not 1
    #: Whether the checkpoint says how many chunks each document holds (format 2).
    knows_chunks: bool = True


def live_labels(labels: Mapping[str, int], chunks: Mapping[str, int]) -> int:
    """Labels live in an index: one per chunk, one per unchunked document."""
    return len(labels) + sum(chunks.values()) - len(chunks)


def _crc32(path: Path) -> int:
    crc = 0
    with path.open("rb") as file:
        while chunk := file.read(_CRC_CHUNK):
            crc = zlib.crc32(chunk, crc)
    return crc


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _encode_labels(labels: Mapping[str, int]) -> bytes:
    ids = [doc_id.encode() for doc_id in labels]
    values = np.fromiter(labels.values(), dtype="<u8", count=len(labels))
    lengths = np.fromiter((len(i) for i in ids), dtype="<u4", count=len(ids))
    return b"".join((_COUNT.pack(len(ids)), values.tobytes(), lengths.tobytes(), *ids))


def _decode_labels(data: bytes) -> dict[str, int]:
    (count,) = _COUNT.unpack_from(data)
    offset = _COUNT.size
    values = np.frombuffer(data, dtype="<u8", count=count, offset=offset).tolist()
    offset += 8 * count
    lengths = np.frombuffer(data, dtype="<u4", count=count, offset=offset).tolist()
    offset += 4 * count
    labels: dict[str, int] = {}
    for value, length in zip(values, lengths, strict=True):
        labels[data[offset : offset + length].decode()] = value
        offset += length
    if offset != len(data):
        raise ValueError(f"{len(data) - offset} trailing bytes")
    return labels


def checkpoint_name(seq: int) -> str:
    return f"{PREFIX}{seq:020d}"


def save(
    directory: Path,
    index: HnswIndex,
    labels: Mapping[str, int],
    seq: int,
    chunks: Mapping[str, int] | None = None,
) -> Path:
    """Write a checkpoint of `index`, `labels` and `chunks` (the chunk counts of the
    documents with more than one) at `seq`; return its directory.

    The caller keeps the index and the maps unchanged meanwhile (it holds the
    collection's write lock); concurrent queries are fine.
    """
    chunks = {doc_id: n for doc_id, n in (chunks or {}).items() if n != 1}
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / checkpoint_name(seq)
    tmp = directory / f"{TMP_PREFIX}{uuid.uuid4().hex}"
    tmp.mkdir()
    try:
        index.save(tmp / INDEX_FILE)
        (tmp / LABELS_FILE).write_bytes(_encode_labels(labels))
        (tmp / CHUNKS_FILE).write_bytes(_encode_labels(chunks))
        meta = {
            "format": FORMAT,
            "seq": seq,
            "live": len(labels),
            "chunked": len(chunks),
            "files": {
                name: {"bytes": (tmp / name).stat().st_size, "crc32": _crc32(tmp / name)}
                for name in (INDEX_FILE, LABELS_FILE, CHUNKS_FILE)
            },
        }
        (tmp / META_FILE).write_text(json.dumps(meta))
        for name in (INDEX_FILE, LABELS_FILE, CHUNKS_FILE, META_FILE):
            _fsync(tmp / name)
        _fsync(tmp)
        if final.exists():  # the same sequence saved before: identical content
            shutil.rmtree(final)
        tmp.rename(final)
        _fsync(directory)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def _seq_of(path: Path) -> int | None:
    if not path.name.startswith(PREFIX):
        return None
    try:
        return int(path.name[len(PREFIX) :])
    except ValueError:
        return None


def _load(path: Path, space: str, dimension: int, ef: int) -> Checkpoint:
    meta = json.loads((path / META_FILE).read_text())
    if meta.get("format") not in FORMATS:
        raise DataLoss(f"checkpoint {path} has unknown format {meta.get('format')}")
    knows_chunks = meta["format"] >= 2
    if knows_chunks and CHUNKS_FILE not in meta["files"]:
        raise DataLoss(f"checkpoint {path} lists no {CHUNKS_FILE}")
    for name, expected in meta["files"].items():
        file = path / name
        if file.stat().st_size != expected["bytes"] or _crc32(file) != expected["crc32"]:
            raise DataLoss(f"checkpoint file {file} does not match its checksum")
    labels = _decode_labels((path / LABELS_FILE).read_bytes())
    if len(labels) != meta["live"]:
        raise DataLoss(f"checkpoint {path} lists {len(labels)} ids, meta says {meta['live']}")
    chunks: dict[str, int] = {}
    if knows_chunks:
        chunks = _decode_labels((path / CHUNKS_FILE).read_bytes())
        if len(chunks) != meta["chunked"]:
            raise DataLoss(
                f"checkpoint {path} lists {len(chunks)} chunked ids, meta says {meta['chunked']}"
            )
        if any(doc_id not in labels or n < 2 for doc_id, n in chunks.items()):
            raise DataLoss(f"checkpoint {path} has chunk counts of ids it does not hold")
    live = live_labels(labels, chunks)
    index = HnswIndex.load(path / INDEX_FILE, space, dimension, ef, live=live)
    return Checkpoint(int(meta["seq"]), index, labels, chunks, knows_chunks)


def load_newest(
    directory: Path, space: str, dimension: int, ef: int, max_seq: int, chunked: bool = False
) -> Checkpoint | None:
    """The newest checkpoint that passes its checks and is not ahead of the store.

    A checkpoint newer than `max_seq` (the store's last write) describes writes
    the store no longer has, so it is skipped too; so is, for a `chunked`
    collection, one that does not say how many chunks each document holds.
    """
    if not directory.is_dir():
        return None
    candidates = sorted(
        ((seq, path) for path in directory.iterdir() if (seq := _seq_of(path)) is not None),
        reverse=True,
    )
    for seq, path in candidates:
        if seq > max_seq:
            log.warning("skipping checkpoint %s: ahead of the store (seq %d)", path, max_seq)
            continue
        try:
            checkpoint = _load(path, space, dimension, ef)
            if chunked and not checkpoint.knows_chunks:
                raise DataLoss("it does not hold the documents' chunk counts (format 1)")
            return checkpoint
        except (DataLoss, OSError, ValueError, KeyError, TypeError, struct.error) as error:
            log.warning("skipping checkpoint %s: %s", path, error)
    return None


def prune(directory: Path, keep: Path | None) -> None:
    """Remove every checkpoint and temporary directory except `keep`."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        if path == keep:
            continue
        if path.name.startswith((PREFIX, TMP_PREFIX)):
            shutil.rmtree(path, ignore_errors=True)
