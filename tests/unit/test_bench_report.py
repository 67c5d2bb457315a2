"""The targets table reads the right medians and says met or missed."""

from bench import embedding, ingest, search
from bench.report import Target, targets, targets_table
from bench.samples import Recorder, aggregate


def _found(recorder: Recorder) -> dict[str, Target]:
    return {target.what: target for target in targets(aggregate(recorder.samples), ef=64)}


def test_search_ratio_targets_use_the_median_ratio() -> None:
    recorder = Recorder()
    for run, value in enumerate([0.6, 0.8, 0.75]):
        values = {"ratio": value, "qps": 1.0, "reference_qps": 1.0, "ef": 32.0}
        recorder.add("search-ratio", "d", search.coordinator(1), search.BATCH, run, values)
    recorder.add("search-ratio", "d", search.coordinator(1), search.CONCURRENT, 0, {"ratio": 0.1})
    found = _found(recorder)
    batch = found["SearchBatch via coordinator x1, QPS at recall@10 ≥ 0.95 / in-process hnswlib"]
    assert batch.met is True
    assert batch.measured.startswith("75%")
    concurrent = found["concurrent single-query Search via coordinator x1 / in-process hnswlib"]
    assert concurrent.met is False


def test_latency_targets_compare_the_coordinator_with_the_single_shard() -> None:
    recorder = Recorder()
    shard = {"p50_ms": 1.0, "p99_ms": 2.0}
    coordinator = {"p50_ms": 1.4, "p99_ms": 5.0}
    recorder.add("search", "d", search.SHARD, search.SEQUENTIAL, 0, shard, ef=64)
    recorder.add("search", "d", search.coordinator(1), search.SEQUENTIAL, 0, coordinator, ef=64)
    found = _found(recorder)
    p50 = found["coordinator x1 p50 - single-shard p50 (sequential, ef 64)"]
    p99 = found["coordinator x1 p99 / single-shard p99 (sequential, ef 64)"]
    assert (p50.met, p99.met) == (True, False)
    assert p50.measured.startswith("+0.40 ms")
    assert p99.measured.startswith("2.50x")


def test_embed_and_ingest_targets() -> None:
    recorder = Recorder()
    recorder.add("embed", "d", embedding.SERVICE, "64 in flight", 0, {"ratio": 0.85}, batch=64)
    recorder.add("embed", "d", embedding.SERVICE, "1 in flight", 0, {"ratio": 0.2}, batch=64)
    for batch, value in [(100, 0.4), (1000, 0.9)]:
        recorder.add(
            "ingest",
            "d",
            ingest.coordinator(1),
            "sequential",
            0,
            {"ratio": value},
            batch=batch,
            replication=1,
        )
    recorder.add(
        "ingest",
        "d",
        ingest.coordinator(2),
        "sequential",
        0,
        {"ratio": 0.1},
        batch=100,
        replication=2,
    )
    found = _found(recorder)
    assert found["embedder, 64 in flight single-text calls / raw encode (batch 64)"].met is True
    assert not any("1 in flight" in what for what in found)  # no target for unbatched calls
    assert found["Upsert with vectors, R=1, batch 100 / raw add_items"].met is False
    assert found["Upsert with vectors, R=1, batch 1000 / raw add_items"].met is True
    assert len(found) == 3  # R=2 has no target
    table = targets_table(list(found.values()))
    assert "**missed**" in table
    assert "| met |" in table
