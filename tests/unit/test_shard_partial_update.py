"""Partial updates on one shard collection: a read-modify-write of the stored record
under the write lock, stored as a newer version, the vector and HNSW index kept."""

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from shard import proto_records
from shard.core.collection import Collection
from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include, WriteOp
from shard.core.filters import Condition, Op, validated
from shard.storage.layout import DataDir
from shoal.errors import InvalidArgument
from shoal.runtime.proto_values import metadata_to_proto
from shoal.v1 import shard_pb2

DIM = 8


@pytest.fixture
def collection(tmp_path: Path) -> Iterator[Collection]:
    registry = Collections(
        DataDir(tmp_path / "data"),
        read_metadata=proto_records.metadata_from_payload,
        read_text=proto_records.text_from_payload,
    )
    registry.load()
    registry.create(CollectionConfig("c", DIM))
    yield registry.get("c")
    registry.close()


def whole(doc_id: str, version: int, seed: int, **metadata: object) -> WriteOp:
    vector = np.random.default_rng(seed).standard_normal(DIM).astype("<f4").tobytes()
    write = shard_pb2.ShardWrite(
        id=doc_id,
        version=version,
        vector_f32=vector,
        text=f"text of {doc_id}",
        metadata=metadata_to_proto(metadata),
    )
    return proto_records.write_from_proto(write)


def patch(doc_id: str, version: int, remove: tuple[str, ...] = (), **metadata: object) -> WriteOp:
    write = shard_pb2.ShardWrite(
        id=doc_id,
        version=version,
        metadata=metadata_to_proto(metadata),
        patch=True,
        remove_metadata=remove,
    )
    return proto_records.write_from_proto(write)


def stored(collection: Collection, doc_id: str) -> tuple[bytes, dict[str, object], str | None]:
    [document] = collection.get([doc_id], Include(vector=True, payload=True))
    metadata = dict(proto_records.metadata_from_payload(document.payload))
    return document.vector, metadata, proto_records.text_from_payload(document.payload)


def test_a_patch_sets_and_removes_keys_and_keeps_vector_and_text(collection: Collection) -> None:
    collection.write([whole("a", 10, 1, colour="red", size=3)])
    vector, _, _ = stored(collection, "a")
    assert collection.write([patch("a", 11, remove=("size",), shape="round")]).applied == 1
    after_vector, metadata, text = stored(collection, "a")
    assert after_vector == vector
    assert metadata == {"colour": "red", "shape": "round"}
    assert text == "text of a"
    [record] = collection.fetch(["a"])
    assert record.version == 11
    assert collection.count(validated(Condition("shape", Op.EQ, "round"))) == 1
    assert collection.count(validated(Condition("size", Op.EQ, 3))) == 0


def test_a_metadata_patch_leaves_the_hnsw_index_alone(collection: Collection) -> None:
    collection.write([whole("a", 10, 1, colour="red")])
    index = collection._state.index

    def refuse(*args: object) -> None:
        raise AssertionError("the HNSW index was updated by a metadata-only patch")

    index.update = refuse  # type: ignore[method-assign,assignment]
    index.add = refuse  # type: ignore[method-assign,assignment]
    assert collection.write([patch("a", 11, colour="blue")]).applied == 1
    assert collection._state.index is index  # not rebuilt after a failure either
    assert collection.count(validated(Condition("colour", Op.EQ, "blue"))) == 1


def test_a_patch_of_an_absent_or_deleted_document_is_skipped(collection: Collection) -> None:
    collection.write([WriteOp("gone", 5, True, b"", b"")])
    result = collection.write([patch("missing", 7, colour="x"), patch("gone", 7, colour="x")])
    assert result.applied == 0
    assert collection.count() == 0


def test_an_older_patch_loses_to_a_newer_whole_write(collection: Collection) -> None:
    collection.write([whole("a", 20, 1, colour="red")])
    assert collection.write([patch("a", 15, colour="blue")]).applied == 0
    assert stored(collection, "a")[1] == {"colour": "red"}


def test_a_patch_past_the_metadata_key_limit_is_refused(collection: Collection) -> None:
    from shoal.limits import MAX_METADATA_KEYS

    collection.write([whole("a", 10, 1, **{f"k{i}": i for i in range(MAX_METADATA_KEYS)})])
    with pytest.raises(InvalidArgument, match="metadata keys"):
        collection.write([patch("a", 11, extra=1)])
    assert len(stored(collection, "a")[1]) == MAX_METADATA_KEYS


def test_a_whole_write_with_the_stored_vector_leaves_the_hnsw_index_alone(
    collection: Collection,
) -> None:
    """The coordinator's partial update writes the whole record back with the vector
    it read: a metadata change must still not touch the index."""
    collection.write([whole("a", 10, 1, colour="red")])
    index = collection._state.index

    def refuse(*args: object) -> None:
        raise AssertionError("the HNSW index was updated by a write keeping the vector")

    index.update = refuse  # type: ignore[method-assign,assignment]
    index.add = refuse  # type: ignore[method-assign,assignment]
    index.delete = refuse  # type: ignore[method-assign,assignment]
    assert collection.write([whole("a", 11, 1, colour="blue")]).applied == 1
    assert collection._state.index is index  # not rebuilt after a failure either
    assert collection.count(validated(Condition("colour", Op.EQ, "blue"))) == 1
    assert collection.count(validated(Condition("colour", Op.EQ, "red"))) == 0
    assert stored(collection, "a")[1] == {"colour": "blue"}
