"""The demo collection `shoal up --demo` fills: 1,000 Debian package descriptions.

Importing the demo set embeds 1,000 texts, about two minutes on 2 cores, and
restarting a local cluster must not pay that again for documents it still
stores (issue 10). An import cut short leaves some of them missing; then it
is imported again, which is harmless because upserting a stored id replaces it.
"""

import json
from importlib import resources
from pathlib import Path

from shoal.cli.document_commands import import_jsonl, print_hits
from shoal.cli.local_cluster import DEFAULT_MODEL
from shoal.sdk.client import Client

DEMO_COLLECTION = "demo"
DEMO_QUERY = "a tool to resize photos from the command line"


def sample_ids(sample: Path) -> list[str]:
    """The ids of a JSONL file's documents."""
    with sample.open() as lines:
        return [json.loads(line)["id"] for line in lines if line.strip()]


def demo_is_loaded(client: Client, collection: str, sample: Path) -> bool:
    """Whether every document of `sample` is stored in `collection` (which must exist)."""
    ids = sample_ids(sample)
    return len(client.get(collection, ids, include=())) == len(set(ids))


def load_demo(client: Client, model: str = DEFAULT_MODEL) -> None:
    """Create and fill the demo collection, unless an earlier run already has."""
    client.create_collection(DEMO_COLLECTION, embedding_model=model)
    sample = resources.files("shoal") / "data" / "debian-sample.jsonl"
    with resources.as_file(sample) as path:
        if demo_is_loaded(client, DEMO_COLLECTION, path):
            print(f"collection {DEMO_COLLECTION!r} is loaded already: not importing it again")
        else:
            import_jsonl(client, DEMO_COLLECTION, path, batch_size=128)
    print(f"\ncollection {DEMO_COLLECTION!r}: {client.count(DEMO_COLLECTION)} Debian packages")
    print(f"search {DEMO_QUERY!r}:")
    print_hits(client.search(DEMO_COLLECTION, text=DEMO_QUERY, k=5, include=["text"]))
