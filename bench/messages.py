"""Requests serialized ahead of time, and the answers parsed afterwards.

Document ids are the row numbers as strings, so an answer maps back to a row
of the data set (and to the ground truth) with `int()`.
"""

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from shoal.v1 import common_pb2, shard_pb2, shoal_pb2

SEARCH = "/shoal.v1.ShoalService/Search"
SEARCH_BATCH = "/shoal.v1.ShoalService/SearchBatch"
UPSERT = "/shoal.v1.ShoalService/Upsert"
SHARD_SEARCH = "/shoal.v1.ShardService/Search"
SHARD_WRITE = "/shoal.v1.ShardService/Write"
HEALTH_CHECK = "/grpc.health.v1.Health/Check"

Matrix = npt.NDArray[np.float32]

#: Ids, scores and distances only: what in-process hnswlib returns too.
NOTHING = common_pb2.Include()


def _f32(rows: Matrix) -> bytes:
    return np.ascontiguousarray(rows, dtype="<f4").tobytes()


def _batches(count: int, size: int) -> list[range]:
    return [range(start, min(start + size, count)) for start in range(0, count, size)]


def search_requests(collection: str, queries: Matrix, k: int, ef: int) -> list[bytes]:
    return [
        shoal_pb2.SearchRequest(
            collection=collection,
            query=shoal_pb2.Query(vector_f32=_f32(query)),
            k=k,
            ef=ef,
            include=NOTHING,
        ).SerializeToString()
        for query in queries
    ]


def search_batch_requests(
    collection: str, queries: Matrix, k: int, ef: int, batch: int
) -> list[bytes]:
    return [
        shoal_pb2.SearchBatchRequest(
            collection=collection,
            queries=[shoal_pb2.Query(vector_f32=_f32(queries[row])) for row in rows],
            k=k,
            ef=ef,
            include=NOTHING,
        ).SerializeToString()
        for rows in _batches(len(queries), batch)
    ]


def shard_search_requests(
    collection: str, queries: Matrix, k: int, ef: int, batch: int
) -> list[bytes]:
    return [
        shard_pb2.ShardSearchRequest(
            collection=collection,
            queries_f32=_f32(queries[rows.start : rows.stop]),
            k=k,
            ef=ef,
            include=NOTHING,
        ).SerializeToString()
        for rows in _batches(len(queries), batch)
    ]


def upsert_requests(
    collection: str, documents: Matrix, batch: int, first_row: int = 0
) -> list[bytes]:
    """Upserts with vectors given, `batch` documents per call (write consistency QUORUM)."""
    requests = []
    for rows in _batches(len(documents), batch):
        request = shoal_pb2.UpsertRequest(collection=collection)
        for row in rows:
            request.documents.add(id=str(first_row + row), vector_f32=_f32(documents[row]))
        requests.append(request.SerializeToString())
    return requests


def shard_write_requests(
    collection: str, documents: Matrix, batch: int, version: int, first_row: int = 0
) -> list[bytes]:
    """Writes straight to one shard (no coordinator), with a small metadata map each."""
    requests = []
    for rows in _batches(len(documents), batch):
        request = shard_pb2.ShardWriteRequest(collection=collection)
        for row in rows:
            write = request.writes.add(
                id=str(first_row + row), version=version, vector_f32=_f32(documents[row])
            )
            write.metadata["group"].int_value = (first_row + row) % 100
        requests.append(request.SerializeToString())
    return requests


def health_requests(count: int) -> list[bytes]:
    return [b""] * count  # an empty HealthCheckRequest: the server's overall status


def search_rows(responses: Sequence[bytes]) -> list[list[int]]:
    """The hit rows of each Search answer."""
    rows: list[list[int]] = []
    for data in responses:
        reply = shoal_pb2.SearchResponse.FromString(data)
        rows.append([int(hit.id) for hit in reply.hits])
    return rows


def search_batch_rows(responses: Sequence[bytes]) -> list[list[int]]:
    """The hit rows of every query of every SearchBatch answer, in query order."""
    rows: list[list[int]] = []
    for data in responses:
        reply = shoal_pb2.SearchBatchResponse.FromString(data)
        rows.extend([int(hit.id) for hit in result.hits] for result in reply.results)
    return rows


def shard_search_rows(responses: Sequence[bytes]) -> list[list[int]]:
    rows: list[list[int]] = []
    for data in responses:
        reply = shard_pb2.ShardSearchResponse.FromString(data)
        rows.extend([int(hit.id) for hit in result.hits] for result in reply.results)
    return rows
