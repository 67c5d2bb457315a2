"""What every suite records: one `Sample` per measurement per run, aggregated by median.

A sample is keyed by suite, dataset, system, mode and integer parameters (ef,
batch size, replication...), and carries named figures (qps, recall, p50_ms...).
Keeping one flat shape makes the medians, the JSON dump and the report generic.
"""

import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.stats import median

Key = tuple[str, str, str, str, tuple[tuple[str, int], ...]]


@dataclass(frozen=True)
class Sample:
    suite: str
    dataset: str
    system: str
    mode: str
    params: Mapping[str, int]
    run: int
    values: Mapping[str, float]

    @property
    def key(self) -> Key:
        return (
            self.suite,
            self.dataset,
            self.system,
            self.mode,
            tuple(sorted(self.params.items())),
        )


@dataclass(frozen=True)
class Aggregate:
    """The medians over runs of one measurement; `runs` says how many went in."""

    suite: str
    dataset: str
    system: str
    mode: str
    params: Mapping[str, int]
    runs: int
    values: Mapping[str, float]

    def get(self, name: str) -> float | None:
        return self.values.get(name)


def aggregate(samples: Iterable[Sample]) -> list[Aggregate]:
    """Medians per key, in the order the keys were first recorded.

    A figure missing from some runs is the median of the runs that have it.
    """
    grouped: dict[Key, list[Sample]] = defaultdict(list)
    for sample in samples:
        grouped[sample.key].append(sample)
    result = []
    for group in grouped.values():
        first = group[0]
        names = list(dict.fromkeys(name for sample in group for name in sample.values))
        values = {
            name: median([s.values[name] for s in group if name in s.values]) for name in names
        }
        result.append(
            Aggregate(
                first.suite,
                first.dataset,
                first.system,
                first.mode,
                dict(first.params),
                len({s.run for s in group}),
                values,
            )
        )
    return result


def select(
    aggregates: Sequence[Aggregate],
    suite: str | None = None,
    dataset: str | None = None,
    system: str | None = None,
    mode: str | None = None,
    params: Mapping[str, int] | None = None,
) -> list[Aggregate]:
    """The aggregates matching every given field and parameter."""
    wanted = dict(params or {})
    return [
        a
        for a in aggregates
        if (suite is None or a.suite == suite)
        and (dataset is None or a.dataset == dataset)
        and (system is None or a.system == system)
        and (mode is None or a.mode == mode)
        and all(a.params.get(name) == value for name, value in wanted.items())
    ]


@dataclass
class Recorder:
    """Collects samples as the suites run, and notes that go into the report."""

    samples: list[Sample] = field(default_factory=list)
    notes: dict[str, str] = field(default_factory=dict)

    def add(
        self,
        suite: str,
        dataset: str,
        system: str,
        mode: str,
        run: int,
        values: Mapping[str, float],
        **params: int,
    ) -> Sample:
        sample = Sample(suite, dataset, system, mode, dict(params), run, dict(values))
        self.samples.append(sample)
        return sample

    def dump(self, path: Path, meta: Mapping[str, Any]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {
            "meta": dict(meta),
            "notes": self.notes,
            "samples": [asdict(sample) for sample in self.samples],
        }
        path.write_text(json.dumps(data, indent=1) + "\n")

    @classmethod
    def load(cls, path: Path) -> tuple["Recorder", dict[str, Any]]:
        data = json.loads(path.read_text())
        recorder = cls([Sample(**sample) for sample in data["samples"]], dict(data["notes"]))
        return recorder, dict(data["meta"])
