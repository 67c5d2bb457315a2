"""Limits and naming rules every Shoal service enforces the same way."""

import re

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
