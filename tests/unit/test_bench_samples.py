"""Samples of repeated runs aggregate to medians per measurement, and survive a JSON dump."""

from pathlib import Path

from bench.samples import Recorder, aggregate, select


def _recorder() -> Recorder:
    recorder = Recorder()
    for run, qps in enumerate([100.0, 300.0, 200.0]):
        recorder.add("search", "d", "shard", "batch", run, {"qps": qps, "recall": 0.9}, ef=16)
        recorder.add("search", "d", "shard", "batch", run, {"qps": qps * 2}, ef=32)
    recorder.add("search", "d", "coordinator x1", "batch", 0, {"qps": 50.0}, ef=16)
    return recorder


def test_aggregate_takes_the_median_of_the_runs_per_measurement() -> None:
    aggregates = aggregate(_recorder().samples)
    assert [(a.system, a.params["ef"]) for a in aggregates] == [
        ("shard", 16),
        ("shard", 32),
        ("coordinator x1", 16),
    ]
    first = aggregates[0]
    assert first.runs == 3
    assert first.values == {"qps": 200.0, "recall": 0.9}
    assert aggregates[1].get("qps") == 400.0
    assert aggregates[1].get("recall") is None


def test_a_figure_missing_from_some_runs_is_the_median_of_the_others() -> None:
    recorder = Recorder()
    recorder.add("s", "d", "x", "m", 0, {"qps": 1.0, "p50_ms": 4.0})
    recorder.add("s", "d", "x", "m", 1, {"qps": 3.0})
    (only,) = aggregate(recorder.samples)
    assert only.values == {"qps": 2.0, "p50_ms": 4.0}


def test_select_matches_fields_and_parameters() -> None:
    aggregates = aggregate(_recorder().samples)
    assert len(select(aggregates, suite="search", system="shard")) == 2
    assert [a.params for a in select(aggregates, params={"ef": 16})] == [{"ef": 16}, {"ef": 16}]
    assert select(aggregates, mode="concurrent") == []


def test_dump_and_load_keep_samples_notes_and_meta(tmp_path: Path) -> None:
    recorder = _recorder()
    recorder.notes["build"] = "fast"
    path = tmp_path / "out" / "samples.json"
    recorder.dump(path, {"plan": "quick"})
    loaded, meta = Recorder.load(path)
    assert meta == {"plan": "quick"}
    assert loaded.notes == {"build": "fast"}
    assert aggregate(loaded.samples) == aggregate(recorder.samples)
