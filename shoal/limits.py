"""Limits and naming rules every Shoal service enforces the same way."""

import argparse
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shoal.errors import InvalidArgument, ResourceExhausted

#: Collection names become directory names on shards: no path characters.
COLLECTION_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,62}")
MAX_ID_BYTES = 512
MAX_K = 1024
MAX_EF = 4096
MAX_DIMENSION = 4096
MAX_BATCH_DOCUMENTS = 10_000
MAX_BATCH_QUERIES = 1_000
MAX_PARTITIONS = 4096
MAX_METADATA_KEYS = 64
MAX_TEXT_CHARS = 65_536

# HNSW settings a collection gets when it leaves them 0. The coordinator fills
# them in and the shard does too (for its own callers), so both read them here.
DEFAULT_HNSW_M = 16
DEFAULT_HNSW_EF_CONSTRUCTION = 200
DEFAULT_HNSW_EF = 64
#: hnswlib accepts more, but memory per element grows with M and recall stops improving.
MAX_HNSW_M = 128


def check_collection_name(name: str) -> None:
    if not COLLECTION_NAME.fullmatch(name):
        raise InvalidArgument(
            f"collection name {name!r} is not allowed: use 1-63 letters, digits, '_' or '-',"
            " starting with a letter or digit"
        )


def check_document_id(doc_id: str) -> None:
    if not doc_id:
        raise InvalidArgument("document id is empty")
    size = len(doc_id.encode())
    if size > MAX_ID_BYTES:
        raise InvalidArgument(
            f"document id {doc_id[:32]!r}... has {size} bytes; the limit is {MAX_ID_BYTES}"
        )


def check_batch_size(count: int, limit: int, what: str) -> None:
    if count > limit:
        raise ResourceExhausted(f"{count} {what} in one request; the limit is {limit}")


def check_k(k: int) -> None:
    if not 1 <= k <= MAX_K:
        raise InvalidArgument(f"k is {k}; it must be between 1 and {MAX_K}")


def check_ef(ef: int) -> None:
    if ef > MAX_EF:
        raise InvalidArgument(f"ef is {ef}; the limit is {MAX_EF}")


# Bounded work per request (issue 14): the coordinator checks these before it
# looks anything up or asks any shard, so a request that would take too much
# memory or time is refused at once with the limit it broke. Each is a
# coordinator flag (`python -m coordinator --help`, SHOAL_MAX_...).

#: Bytes of a reply per hit besides stored fields: id, score, distance, framing.
HIT_BYTES = 64
#: What an included text or metadata is taken to cost per hit in the reply
#: estimate (a document's real size is known only after the search).
ESTIMATED_TEXT_BYTES = 1024
ESTIMATED_METADATA_BYTES = 512


@dataclass(frozen=True)
class RequestLimits:
    """The configurable limits; the defaults are what `python -m coordinator` uses."""

    #: A document's metadata: keys and values as sent (protobuf bytes).
    max_metadata_bytes: int = 64 * 1024
    #: One metadata value (a string, or a whole list).
    max_metadata_value_bytes: int = 16 * 1024
    #: A document's or a query's text in UTF-8 bytes (besides MAX_TEXT_CHARS).
    max_text_bytes: int = 4 * MAX_TEXT_CHARS
    #: queries x ef (at least k, or the hybrid candidates) of one Search or SearchBatch:
    #: an HNSW search's cost grows with its ef, not with k x ef.
    max_search_work: int = 1 << 21
    #: The estimated reply of a search (HIT_BYTES, vectors, ESTIMATED_*_BYTES per hit).
    max_reply_bytes: int = 32 * 1024 * 1024

    def check_metadata(self, what: str, entries: Iterable[tuple[str, int]]) -> None:
        """`entries`: (key, the value's size in bytes) of one document."""
        total = 0
        for key, size in entries:
            if size > self.max_metadata_value_bytes:
                raise ResourceExhausted(
                    f"{what}: metadata value {key[:64]!r} has {size} bytes; the limit is"
                    f" {self.max_metadata_value_bytes} (--max-metadata-value-bytes)"
                )
            total += len(key.encode()) + size
            if total > self.max_metadata_bytes:
                raise ResourceExhausted(
                    f"{what}: metadata has more than {self.max_metadata_bytes} bytes"
                    " (--max-metadata-bytes)"
                )

    def check_text(self, what: str, text: str) -> None:
        # Fewer characters than the byte limit / 4 cannot exceed it: skip the encode.
        if len(text) * 4 <= self.max_text_bytes:
            return
        size = len(text.encode())
        if size > self.max_text_bytes:
            raise ResourceExhausted(
                f"{what}: text has {size} bytes; the limit is {self.max_text_bytes}"
                " (--max-text-bytes)"
            )

    def check_search(
        self,
        queries: int,
        k: int,
        ef: int,
        candidates: int = 0,
        dimension: int = 0,
        text: bool = False,
        metadata: bool = False,
    ) -> None:
        """Refuse a search whose work or estimated reply is over the limits.

        `ef` 0 (the collection's default) counts as DEFAULT_HNSW_EF; any ef counts
        as at least k (or the hybrid candidates), as the shards search that deep
        anyway. `dimension`: the vector size when vectors are included, else 0.
        """
        work = search_work(queries, k, ef, candidates)
        if work > self.max_search_work:
            raise ResourceExhausted(
                f"search asks for {queries} queries x ef {work // max(queries, 1)}"
                f"{f' (candidates {candidates})' if candidates > k else ''} = {work}; the"
                f" limit is {self.max_search_work} (--max-search-work): ask for fewer queries"
                " per batch, or a smaller ef or k"
            )
        size = reply_bytes(queries * k, dimension, text, metadata)
        if size > self.max_reply_bytes:
            raise ResourceExhausted(
                f"the reply to {queries} queries x k {k} would be about {size} bytes; the"
                f" limit is {self.max_reply_bytes} (--max-reply-bytes): include fewer fields"
                " (vectors cost 4 bytes per dimension), or ask for fewer queries or a smaller k"
            )


def check_documents_reply(
    limits: RequestLimits,
    what: str,
    documents: int,
    dimension: int = 0,
    text: bool = False,
    metadata: bool = False,
) -> None:
    """Refuse a Get or a Scroll page whose estimated reply (as a search's, per
    document) is over --max-reply-bytes, before any shard is asked."""
    size = reply_bytes(documents, dimension, text, metadata)
    if size > limits.max_reply_bytes:
        raise ResourceExhausted(
            f"the reply to {what} of {documents} documents would be about {size} bytes; the"
            f" limit is {limits.max_reply_bytes} (--max-reply-bytes): ask for fewer"
            " documents per call, or include fewer fields (vectors cost 4 bytes per"
            " dimension)"
        )


def search_work(queries: int, k: int, ef: int, candidates: int = 0) -> int:
    """How much a search asks of the shards: queries x the depth of each HNSW
    search (ef, at least k or the hybrid candidates)."""
    return queries * max(ef or DEFAULT_HNSW_EF, k, candidates)


def reply_bytes(hits: int, dimension: int = 0, text: bool = False, metadata: bool = False) -> int:
    per_hit = HIT_BYTES + 4 * dimension
    per_hit += ESTIMATED_TEXT_BYTES if text else 0
    per_hit += ESTIMATED_METADATA_BYTES if metadata else 0
    return hits * per_hit


_LIMIT_FLAGS: dict[str, str] = {
    "max_metadata_bytes": "a document's metadata, keys and values, in bytes",
    "max_metadata_value_bytes": "one metadata value (a string or a whole list) in bytes",
    "max_text_bytes": "a document's or query's text in UTF-8 bytes",
    "max_search_work": "queries x ef (at least k or the hybrid candidates) of one"
    " Search/SearchBatch",
    "max_reply_bytes": "the estimated reply of a search, Get or Scroll page in bytes"
    " (hits or documents x (64 + 4 x dimension"
    " if vectors + 1024 if text + 512 if metadata))",
}


#: The limits a shard also enforces on its own Write (defence in depth: a write that
#: did not come through a coordinator is held to the same sizes).
WRITE_LIMITS = ("max_metadata_bytes", "max_metadata_value_bytes", "max_text_bytes")


def add_limit_flags(
    parser: argparse.ArgumentParser,
    env: Callable[[str, str | None], str | None],
    names: Iterable[str] = tuple(_LIMIT_FLAGS),
) -> None:
    """--max-metadata-bytes, --max-metadata-value-bytes, --max-text-bytes,
    --max-search-work, --max-reply-bytes (or those in `names`); `env(flag, default)`
    gives the default."""
    defaults = RequestLimits()
    for name in names:
        help_text = _LIMIT_FLAGS[name]
        flag = name.replace("_", "-")
        parser.add_argument(
            f"--{flag}",
            type=_positive,
            default=_positive(env(flag, str(getattr(defaults, name))) or "0"),
            help=help_text,
        )


def limits_from_args(args: argparse.Namespace) -> RequestLimits:
    """The limits the parser's flags (all or some, see add_limit_flags) set; the
    others keep their defaults."""
    return RequestLimits(
        **{name: getattr(args, name) for name in _LIMIT_FLAGS if hasattr(args, name)}
    )


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not a positive integer")
    return value
