"""A vector search's answer in the packed form of `ShardSearchResponse`.

A message per hit costs the shard a Python call to build and the coordinator a
Python object to read, more than hnswlib spends finding the hit (see
docs/benchmarks.md). The packed form carries every query's hits as columns:
counts per query, ids as one repeated string, scores and distances as float32
bytes made by numpy. Only the stored fields a search asked for still come as a
`Document` per hit.
"""

from collections.abc import Iterable, Sequence
from itertools import chain

import numpy as np

from shard.api.proto_reads import fill_document
from shard.core.documents import QueryHits
from shoal.v1 import common_pb2, shard_pb2


def packed_response(
    results: Sequence[QueryHits], include: common_pb2.Include
) -> shard_pb2.ShardSearchResponse:
    """Every query's hits, in query order, as one packed response."""
    response = shard_pb2.ShardSearchResponse()
    response.hit_counts.extend([len(hits.ids) for hits in results])
    response.ids.extend(chain.from_iterable(hits.ids for hits in results))
    response.scores_f32 = _float32_bytes(hits.scores for hits in results)
    response.distances_f32 = _float32_bytes(hits.distances for hits in results)
    if include.vector or include.text or include.metadata:
        add = response.documents.add
        for hits in results:
            for doc_id, stored in zip(hits.ids, hits.documents or (), strict=True):
                document = add(id=doc_id)
                fill_document(document, stored, include)
    return response


def _float32_bytes(rows: Iterable[Sequence[float]]) -> bytes:
    """One array made of all rows' values: one numpy call per response, not per query."""
    return np.asarray(list(chain.from_iterable(rows)), dtype="<f4").tobytes()
