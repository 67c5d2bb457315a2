"""Looking at replicas directly (ShardService), around the coordinator, for the fault tests.

Each helper opens its own short-lived channel, so it can be called right after
a replica restarts on the same port.
"""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import grpc
import numpy as np
import numpy.typing as npt

from shoal.runtime.server import GRPC_OPTIONS
from shoal.v1 import common_pb2, shard_pb2, shard_pb2_grpc

TIMEOUT = 60.0
EVERYTHING = common_pb2.Include(metadata=True, text=True, vector=True)
#: Ids per Get and queries per Search sent to one shard.
BATCH = 500


@contextmanager
def shard_stub(address: str) -> Iterator[shard_pb2_grpc.ShardServiceStub]:
    with grpc.insecure_channel(address, options=GRPC_OPTIONS) as channel:
        yield shard_pb2_grpc.ShardServiceStub(channel)


@dataclass(frozen=True)
class Stored:
    """What one replica answers for one live document."""

    vector: bytes
    text: str | None
    metadata: dict[str, common_pb2.Value]


def documents(address: str, collection: str, ids: Sequence[str]) -> dict[str, Stored]:
    """The live documents among `ids` on one replica, with every field."""
    found: dict[str, Stored] = {}
    with shard_stub(address) as stub:
        for start in range(0, len(ids), BATCH):
            request = shard_pb2.ShardGetRequest(
                collection=collection, ids=ids[start : start + BATCH], include=EVERYTHING
            )
            reply = stub.Get(request, timeout=TIMEOUT)
            for document in reply.documents:
                found[document.id] = Stored(
                    document.vector_f32,
                    document.text if document.HasField("text") else None,
                    dict(document.metadata.items()),
                )
    return found


def count(address: str, collection: str) -> int:
    with shard_stub(address) as stub:
        reply = stub.Count(shard_pb2.ShardCountRequest(collection=collection), timeout=TIMEOUT)
    return int(reply.count)


def digests(address: str, collection: str) -> dict[int, tuple[int, int]]:
    """partition -> (records, hash) on one replica."""
    with shard_stub(address) as stub:
        reply = stub.Digest(shard_pb2.ShardDigestRequest(collection=collection), timeout=TIMEOUT)
    return {p.partition: (p.records, p.hash) for p in reply.partitions}


def nearest(
    address: str, collection: str, vectors: npt.NDArray[np.float32], k: int, ef: int = 0
) -> list[list[str]]:
    """The ids of the k nearest documents per vector, on one replica."""
    found: list[list[str]] = []
    with shard_stub(address) as stub:
        for start in range(0, len(vectors), BATCH):
            chunk = vectors[start : start + BATCH]
            request = shard_pb2.ShardSearchRequest(
                collection=collection, queries_f32=chunk.astype("<f4").tobytes(), k=k, ef=ef
            )
            reply = stub.Search(request, timeout=TIMEOUT)
            found += [[hit.id for hit in result.hits] for result in reply.results]
    return found


def versions(
    address: str, collection: str, partitions: Sequence[int]
) -> dict[str, tuple[int, bool]]:
    """id -> (version, deleted) of every record, tombstones included, in `partitions`
    on one replica (what replication compares)."""
    with shard_stub(address) as stub:
        request = shard_pb2.ShardListVersionsRequest(
            collection=collection, partitions=list(partitions)
        )
        reply = stub.ListVersions(request, timeout=TIMEOUT)
    return {record.id: (record.version, record.deleted) for record in reply.records}
