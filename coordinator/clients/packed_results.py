"""A shard's Search reply as a `PackedBatch`, whichever form the shard answered in.

The coordinator asks for the packed form (`ShardSearchRequest.packed`); its
columns are read with `np.frombuffer`, without a Python object per hit. A shard
that predates the packed form answers with a `Hit` per hit, which is packed
here so that the rest of the coordinator sees one form.
"""

from collections.abc import Sequence

import numpy as np

from coordinator.core.packed import PackedBatch
from shoal.errors import Internal
from shoal.v1 import shard_pb2


def packed_from_reply(reply: shard_pb2.ShardSearchResponse, queries: int) -> PackedBatch:
    """The reply to `queries` queries, packed."""
    if len(reply.hit_counts) != queries and len(reply.results) == queries:
        return _pack_hits(reply.results)
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


def _pack_hits(results: Sequence[shard_pb2.ShardSearchResult]) -> PackedBatch:
    """A reply in the per-hit form, packed (a shard of an older version); each hit's
    `Document` is kept, as it holds whatever stored fields were asked for."""
    hits = [hit for result in results for hit in result.hits]
    return PackedBatch.from_counts(
        [len(result.hits) for result in results],
        [hit.id for hit in hits],
        np.array([hit.score for hit in hits], dtype=np.float32),
        np.array([hit.distance for hit in hits], dtype=np.float32),
        [hit.document for hit in hits],
    )
