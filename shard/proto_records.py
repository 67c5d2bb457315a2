"""A document's record <-> the `ShardWrite` message, and the stored payload's format.

A document's text and metadata travel through the core as one opaque payload:
the bytes of a `Document` holding only those two fields, serialized
deterministically (so replicas given the same write store the same bytes and
last-writer-wins ties break the same way everywhere). A read that asks for both
merges the payload straight into the reply, with no per-field conversion
(shard.api.proto_reads).

A fetched record goes out as the `ShardWrite` that would have produced it: its
payload is unpacked into the write's text and metadata, and the receiving
replica packs them again into the same bytes, so equal versions keep comparing
equal everywhere. The servicer (writes, Fetch), the peer client (catch-up) and
the core's payload readers (wired in shard/__main__.py) all use these.
"""

from collections.abc import Mapping
from functools import partial

from google.protobuf.message import DecodeError

from shard.core.documents import WriteOp
from shoal.chunking import MAX_CHUNKS
from shoal.errors import DataLoss, InvalidArgument
from shoal.limits import MAX_METADATA_KEYS, MAX_TEXT_CHARS
from shoal.v1 import common_pb2, shard_pb2


def payload_from_write(write: shard_pb2.ShardWrite) -> bytes:
    """The stored payload of a write's text and metadata (b"" when it has neither),
    checked against the limits a replica enforces whoever sent the write."""
    has_text = write.HasField("text")
    if not has_text and not write.metadata and not write.chunks:
        return b""
    if has_text and len(write.text) > MAX_TEXT_CHARS:
        raise InvalidArgument(
            f"document {write.id!r}: text has {len(write.text)} characters;"
            f" the limit is {MAX_TEXT_CHARS}"
        )
    if len(write.metadata) > MAX_METADATA_KEYS:
        raise InvalidArgument(
            f"document {write.id!r}: {len(write.metadata)} metadata keys;"
            f" the limit is {MAX_METADATA_KEYS}"
        )
    for key, value in write.metadata.items():
        if value.WhichOneof("kind") is None:
            raise InvalidArgument(f"document {write.id!r}: metadata {key!r} has no value")
    document = common_pb2.Document(metadata=write.metadata, chunks=write.chunks)
    if has_text:
        document.text = write.text
    return document.SerializeToString(deterministic=True)


def check_chunks(write: shard_pb2.ShardWrite) -> None:
    """A chunked write has one vector per chunk, its spans ordered within its text."""
    if not write.chunks:
        return
    if len(write.chunks) > MAX_CHUNKS:
        raise InvalidArgument(
            f"document {write.id!r}: {len(write.chunks)} chunks; the limit is {MAX_CHUNKS}"
        )
    if len(write.vector_f32) % len(write.chunks):
        raise InvalidArgument(
            f"document {write.id!r}: {len(write.chunks)} chunks but"
            f" {len(write.vector_f32)} bytes of vectors, not one vector per chunk"
        )
    length = len(write.text) if write.HasField("text") else None
    for span in write.chunks:
        if span.start > span.end or (length is not None and span.end > length):
            raise InvalidArgument(
                f"document {write.id!r}: chunk span [{span.start}, {span.end}) is not"
                " within its text"
            )


def metadata_from_payload(payload: bytes) -> Mapping[str, object]:
    """The metadata of a stored payload as Python values (the core's MetadataReader)."""
    try:
        document = common_pb2.Document.FromString(payload)
    except DecodeError as error:
        raise DataLoss("stored text/metadata of a document is corrupt") from error
    result: dict[str, object] = {}
    for key, value in document.metadata.items():
        kind = value.WhichOneof("kind")
        if kind is None:
            continue
        field = getattr(value, kind)
        result[key] = list(field.values) if kind.endswith("_list") else field
    return result


def text_from_payload(payload: bytes) -> str | None:
    """The text of a stored payload (the core's TextReader)."""
    try:
        document = common_pb2.Document.FromString(payload)
    except DecodeError as error:
        raise DataLoss("stored text/metadata of a document is corrupt") from error
    return document.text if document.HasField("text") else None


def patch_payload(write: shard_pb2.ShardWrite, stored: bytes) -> bytes:
    """The stored payload with a partial update applied: metadata keys set and
    removed, the text replaced if the write has one; checked like a whole write."""
    try:
        document = common_pb2.Document.FromString(stored)
    except DecodeError as error:
        raise DataLoss(f"stored text/metadata of document {write.id!r} is corrupt") from error
    merged = shard_pb2.ShardWrite(id=write.id, metadata=document.metadata)
    # A new vector (a new text, embedded again) comes with its own chunks, if any.
    merged.chunks.extend(write.chunks if write.vector_f32 else document.chunks)
    for key in write.remove_metadata:
        merged.metadata.pop(key, None)
    for key, value in write.metadata.items():
        merged.metadata[key].CopyFrom(value)
    if write.HasField("text"):
        merged.text = write.text
    elif document.HasField("text"):
        merged.text = document.text
    return payload_from_write(merged)


def write_from_proto(write: shard_pb2.ShardWrite) -> WriteOp:
    if write.deleted:
        return WriteOp(write.id, write.version, True, b"", b"")
    check_chunks(write)
    if write.patch:
        payload_from_write(write)  # the patch's own values checked before any lock
        return WriteOp(
            write.id, write.version, False, write.vector_f32, b"", partial(patch_payload, write)
        )
    return WriteOp(write.id, write.version, False, write.vector_f32, payload_from_write(write))


def write_to_proto(op: WriteOp) -> shard_pb2.ShardWrite:
    write = shard_pb2.ShardWrite(id=op.id, version=op.version, deleted=op.deleted)
    if op.deleted:
        return write
    write.vector_f32 = op.vector
    if op.payload:
        try:
            stored = common_pb2.Document.FromString(op.payload)
        except DecodeError as error:
            raise DataLoss(f"stored text/metadata of document {op.id!r} is corrupt") from error
        if stored.HasField("text"):
            write.text = stored.text
        for key, value in stored.metadata.items():
            write.metadata[key].CopyFrom(value)
        write.chunks.extend(stored.chunks)
    return write
