"""A chunking collection walks the graph with ef grown by the chunks it asks for."""

from pathlib import Path

from shard.core.collection_registry import Collections
from shard.core.config import CollectionConfig
from shard.core.documents import Include
from shard.storage.layout import DataDir
from shoal.chunking import ChunkingSettings
from tests.unit.test_shard_chunked_restart import DIM, chunked, unit_rows


def test_the_walk_keeps_the_candidates_per_result_the_caller_chose(tmp_path: Path) -> None:
    registry = Collections(DataDir(tmp_path))
    registry.load()
    chunking = ChunkingSettings(enabled=True, chunk_tokens=16, overlap_tokens=2)
    registry.create(CollectionConfig("chunked", DIM, chunking=chunking))
    registry.create(CollectionConfig("plain", DIM))
    chunked_collection, plain = registry.get("chunked"), registry.get("plain")
    chunked_collection.write([chunked(f"d{i}", 1, unit_rows(3, i)) for i in range(30)])
    plain.write([chunked(f"d{i}", 1, unit_rows(1, i)) for i in range(30)])
    queries = unit_rows(2, 99)
    try:
        for k, ef, walked in ((10, 64, 167), (5, 40, 168), (50, 64, 128), (10, 4000, 4096)):
            chunked_collection.search(queries, k, ef, Include())
            plain.search(queries, k, ef, Include())
            assert chunked_collection.index_stats().ef == walked, (k, ef)
            assert plain.index_stats().ef == ef
    finally:
        registry.close()
