"""The on-disk form of one document version and the key layout of a collection's RocksDB.

A record is a fixed little-endian header followed by the vector bytes and the
payload (text and metadata, encoded by the api layer and opaque here), so
writing and reading one costs a `struct` call and two slices.
"""

import struct
from dataclasses import dataclass

from shoal.errors import DataLoss

#: The label of a record that is not in the index (a tombstone).
NO_LABEL = 2**64 - 1

FORMAT = 1
_DELETED = 0x01
# format, flags, version, seq, label, vector byte count
_HEADER = struct.Struct("<BBQQQI")
# last write sequence, next free index label
_STATE = struct.Struct("<QQ")

CONFIG_KEY = b"c"
STATE_KEY = b"m"
DOC_PREFIX = b"d"
SEQ_PREFIX = b"s"


@dataclass(frozen=True, slots=True)
class Record:
    """The stored state of one document id: a live version or a tombstone."""

    version: int
    deleted: bool
    seq: int  # this replica's write sequence when the record was written
    label: int  # hnswlib label; NO_LABEL for a tombstone
    vector: bytes  # little-endian float32; empty for a tombstone
    payload: bytes  # text and metadata; empty for a tombstone


def encode(record: Record) -> bytes:
    header = _HEADER.pack(
        FORMAT,
        _DELETED if record.deleted else 0,
        record.version,
        record.seq,
        record.label,
        len(record.vector),
    )
    return b"".join((header, record.vector, record.payload))


def decode(data: bytes, doc_id: str) -> Record:
    """The record, or DataLoss if the bytes are not one this code wrote."""
    if len(data) < _HEADER.size:
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    fmt, flags, version, seq, label, vector_bytes = _HEADER.unpack_from(data)
    if fmt != FORMAT or flags & ~_DELETED:
        raise DataLoss(f"record of document {doc_id!r} has unknown format {fmt}/{flags:#x}")
    end = _HEADER.size + vector_bytes
    if end > len(data):
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    return Record(
        version=version,
        deleted=bool(flags & _DELETED),
        seq=seq,
        label=label,
        vector=data[_HEADER.size : end],
        payload=data[end:],
    )


@dataclass(frozen=True, slots=True)
class Header:
    """What a record says about itself without its vector and payload."""

    deleted: bool
    seq: int
    label: int
    vector_bytes: int
    version: int = 0


def decode_header(data: bytes, doc_id: str) -> Header:
    """The record's header alone: cheaper than `decode` for scans that skip most records."""
    if len(data) < _HEADER.size:
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    fmt, flags, version, seq, label, vector_bytes = _HEADER.unpack_from(data)
    if fmt != FORMAT or flags & ~_DELETED:
        raise DataLoss(f"record of document {doc_id!r} has unknown format {fmt}/{flags:#x}")
    if _HEADER.size + vector_bytes > len(data):
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    return Header(bool(flags & _DELETED), seq, label, vector_bytes, version)


def vector_of(data: bytes, header: Header) -> bytes:
    """The vector bytes of a record whose header was decoded."""
    return data[_HEADER.size : _HEADER.size + header.vector_bytes]


def payload_of(data: bytes, doc_id: str) -> bytes:
    """The payload of a record, without copying its vector."""
    if len(data) < _HEADER.size:
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    end = _HEADER.size + _HEADER.unpack_from(data)[5]
    if end > len(data):
        raise DataLoss(f"record of document {doc_id!r} is truncated ({len(data)} bytes)")
    return data[end:]


def doc_key(doc_id: str) -> bytes:
    return DOC_PREFIX + doc_id.encode()


def id_from_doc_key(key: bytes) -> str:
    return key[len(DOC_PREFIX) :].decode()


def doc_key_after(doc_id: str) -> bytes:
    """The smallest key after `doc_id`'s ("" for the first document).

    Keys are the prefix plus the id's UTF-8 bytes, and UTF-8 byte order is code
    point order, so RocksDB's key order is Python's `str` order of the ids.
    """
    if not doc_id:
        return DOC_PREFIX
    return doc_key(doc_id) + b"\x00"


def seq_key(seq: int) -> bytes:
    # Big-endian so that RocksDB's byte order is sequence order.
    return SEQ_PREFIX + seq.to_bytes(8, "big")


def seq_from_key(key: bytes) -> int:
    return int.from_bytes(key[len(SEQ_PREFIX) :], "big")


def encode_state(last_seq: int, next_label: int) -> bytes:
    return _STATE.pack(last_seq, next_label)


def decode_state(data: bytes) -> tuple[int, int]:
    if len(data) != _STATE.size:
        raise DataLoss(f"collection state has {len(data)} bytes, expected {_STATE.size}")
    last_seq, next_label = _STATE.unpack(data)
    return int(last_seq), int(next_label)
