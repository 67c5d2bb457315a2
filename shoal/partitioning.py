"""Which partition of a collection a document id belongs to.

The hash must give the same answer in every process and on every machine, so
coordinators agree on where a document lives and replicas agree on what each
partition holds when they compare digests: Python's `hash()` is salted per
process and never used.
"""

import hashlib


def stable_hash(doc_id: str) -> int:
    """A 64-bit hash of the id that never changes between processes or releases."""
    digest = hashlib.blake2b(doc_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def partition_of(doc_id: str, partitions: int) -> int:
    return stable_hash(doc_id) % partitions
