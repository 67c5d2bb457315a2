"""A shard's Search reply: a `PackedBatch`, or its `Hit` messages where the shard
answered per hit.

The coordinator asks for the packed form (`ShardSearchRequest.packed`); its
columns are read with `np.frombuffer`, without a Python object per hit. A shard
answers per hit where the packed form cannot carry what it found (the chunk of a
chunking collection each hit scored by) or where it predates the packed form;
those answers are kept as they are, and merged hit by hit.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.packed import PackedBatch
from shoal.errors import Internal
from shoal.v1 import shard_pb2


def packed_from_reply(
    reply: shard_pb2.ShardSearchResponse, queries: int
) -> PackedBatch | Sequence[shard_pb2.ShardSearchResult]:
    """The reply to `queries` queries: packed, or the per-hit results as they are."""
    if len(reply.hit_counts) != queries and len(reply.results) == queries:
        return reply.results
    if len(reply.hit_counts) != queries:
        raise Internal(f"the shard answered {len(reply.hit_counts)} of {queries} queries")
    ids = list(reply.ids)
    scores = np.frombuffer(reply.scores_f32, dtype="<f4")
    distances = np.frombuffer(reply.distances_f32, dtype="<f4")
    documents = list(reply.documents) if len(reply.documents) else None
    counts = np.fromiter(reply.hit_counts, dtype=np.int64, count=queries)
    try:
        return PackedBatch.from_counts(counts, ids, scores, distances, documents)
    except ValueError as error:
        raise Internal(f"the shard's packed search reply is malformed: {error}") from None
