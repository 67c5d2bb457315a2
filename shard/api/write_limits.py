"""The sizes a shard's Write holds every document to, whoever sent it.

The coordinator checks the same limits (coordinator.api.request_limits) before
it writes anything; a shard checks them again, as its defence in depth behind
mTLS: a caller with a cluster certificate (a peer, a coordinator of another
version, anyone holding a stolen certificate) still cannot make a replica store
and copy documents of any size. Checked before the write takes its queue or
touches the store, so an oversized request costs a scan of its messages only.
"""

from collections.abc import Sequence

from shoal.limits import RequestLimits
from shoal.v1 import shard_pb2


def check_writes(limits: RequestLimits, writes: Sequence[shard_pb2.ShardWrite]) -> None:
    # A write's metadata, any one value and its text are each no larger than the
    # whole write: one size per write settles the usual, small ones.
    bound = min(limits.max_metadata_value_bytes, limits.max_metadata_bytes, limits.max_text_bytes)
    for write in writes:
        if write.deleted or write.ByteSize() <= bound:
            continue
        what = f"document {write.id[:64]!r}"
        if write.metadata:
            limits.check_metadata(
                what, ((key, value.ByteSize()) for key, value in write.metadata.items())
            )
        if write.HasField("text"):
            limits.check_text(what, write.text)
