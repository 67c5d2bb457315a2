"""Whether the demo collection `shoal up --demo` fills is there already.

Importing the demo set embeds 1,000 texts, about two minutes on 2 cores, and
restarting a local cluster must not pay that again for documents it still
stores (issue 10). An import cut short leaves some of them missing; then it
is imported again, which is harmless because upserting a stored id replaces it.
"""

import json
from pathlib import Path

from shoal.client import Client


def sample_ids(sample: Path) -> list[str]:
    """The ids of a JSONL file's documents."""
    with sample.open() as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


def demo_is_loaded(client: Client, collection: str, sample: Path) -> bool:
    """Whether every document of `sample` is stored in `collection` (which must exist)."""
    ids = sample_ids(sample)
    return len(client.get(collection, ids, include=())) == len(set(ids))
