"""ghz's report of a run: its summary text and its JSON, with ghz's own keys.

The same numbers ghz computes (its percentile rank, its ten-bucket histogram),
so tools that read ghz's reports read these too.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from loadtest.config import LoadConfig

PERCENTILES = (10, 25, 50, 75, 90, 95, 99)
HISTOGRAM_BUCKETS = 10


@dataclass(frozen=True)
class Result:
    timestamp: float
    latency_s: float
    status: str  # the status code as ghz names it: OK, Unavailable, DeadlineExceeded
    error: str


@dataclass
class Report:
    """ghz's report: the same numbers, the same JSON keys (durations in nanoseconds)."""

    config: LoadConfig
    results: list[Result]
    total_s: float
    end_reason: str
    date: datetime

    @classmethod
    def of(
        cls, config: LoadConfig, results: list[Result], total_s: float, timed_out: bool
    ) -> Report:
        return cls(
            config, results, total_s, "timeout" if timed_out else "normal", datetime.now(UTC)
        )

    @property
    def count(self) -> int:
        return len(self.results)

    @property
    def rps(self) -> float:
        return self.count / self.total_s if self.total_s > 0 else 0.0

    @property
    def average_s(self) -> float:
        return sum(r.latency_s for r in self.results) / self.count if self.results else 0.0

    @property
    def latencies(self) -> list[float]:
        """Sorted latencies of the calls that count: OK ones, or all with count-errors."""
        chosen = [r.latency_s for r in self.results if r.status == "OK" or self.config.count_errors]
        return sorted(chosen)

    @property
    def status_codes(self) -> Counter[str]:
        return Counter(r.status for r in self.results)

    @property
    def errors(self) -> Counter[str]:
        return Counter(r.error for r in self.results if r.error)

    def percentiles(self) -> list[tuple[int, float]]:
        """ghz's rank: the value at index ceil(p/100 * n) - 1 of the sorted latencies."""
        latencies = self.latencies
        if not latencies:
            return []
        points = []
        for percent in PERCENTILES:
            rank = percent / 100 * len(latencies)
            index = int(rank) - 1 if rank == int(rank) else int(rank)
            points.append((percent, latencies[min(max(index, 0), len(latencies) - 1)]))
        return points

    def histogram(self) -> list[tuple[float, int, float]]:
        """(mark in seconds, count, frequency): ghz's 10 equal-width buckets plus the slowest."""
        latencies = self.latencies
        if not latencies:
            return []
        fastest, slowest = latencies[0], latencies[-1]
        width = (slowest - fastest) / HISTOGRAM_BUCKETS
        marks = [fastest + width * i for i in range(HISTOGRAM_BUCKETS)] + [slowest]
        counts = [0] * len(marks)
        bucket = 0
        for latency in latencies:
            while latency > marks[bucket] and bucket < len(marks) - 1:
                bucket += 1
            counts[bucket] += 1
        return [(m, c, c / len(latencies)) for m, c in zip(marks, counts, strict=True)]

    def to_json(self) -> dict[str, Any]:
        latencies = self.latencies
        ns = _nanoseconds
        return {
            "name": self.config.name,
            "endReason": self.end_reason,
            "date": self.date.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "options": {
                "call": self.config.call,
                "host": self.config.host,
                "total": self.config.total,
                "concurrency": self.config.concurrency,
                "connections": self.config.connections,
                "rps": self.config.rps,
                "duration": ns(self.config.duration_s),
                "timeout": ns(self.config.timeout_s),
                "metadata": self.config.metadata,
                "count-errors": self.config.count_errors,
                "skipFirst": self.config.skip_first,
            },
            "count": self.count,
            "total": ns(self.total_s),
            "average": ns(self.average_s),
            "fastest": ns(latencies[0]) if latencies else 0,
            "slowest": ns(latencies[-1]) if latencies else 0,
            "rps": self.rps,
            "errorDistribution": dict(self.errors),
            "statusCodeDistribution": dict(self.status_codes),
            "latencyDistribution": [
                {"percentage": p, "latency": ns(v)} for p, v in self.percentiles()
            ],
            "histogram": [{"mark": m, "count": c, "frequency": f} for m, c, f in self.histogram()],
            "details": [
                {
                    "timestamp": datetime.fromtimestamp(r.timestamp, UTC).isoformat(),
                    "latency": ns(r.latency_s),
                    "error": r.error,
                    "status": r.status,
                }
                for r in self.results
            ],
        }

    def summary(self) -> str:
        """The text ghz prints (its default 'summary' format), tabs and all."""
        latencies = self.latencies
        text = "\nSummary:\n"
        if self.config.name:
            text += f"  Name:\t\t{self.config.name}\n"
        text += (
            f"  Count:\t{self.count}\n"
            f"  Total:\t{format_duration(self.total_s)}\n"
            f"  Slowest:\t{format_duration(latencies[-1] if latencies else 0)}\n"
            f"  Fastest:\t{format_duration(latencies[0] if latencies else 0)}\n"
            f"  Average:\t{format_duration(self.average_s)}\n"
            f"  Requests/sec:\t{self.rps:4.2f}\n"
            "\nResponse time histogram:\n"
            f"{_histogram_text(self.histogram())}"
            "\nLatency distribution:"
        )
        text += "".join(f"\n  {p} % in {format_duration(v)} " for p, v in self.percentiles())
        text += "\n\n"
        if self.status_codes:
            rows = [(f"[{s}]", f"{n} responses") for s, n in self.status_codes.most_common()]
            text += "Status code distribution:\n" + _tabulate(rows)
        text += "\n"
        if self.errors:
            rows = [(f"[{n}]", error) for error, n in self.errors.most_common()]
            text += "Error distribution:\n" + _tabulate(rows)
        return text + "\n"


def _nanoseconds(seconds: float) -> int:
    return round(seconds * 1e9)


def format_duration(seconds: float) -> str:
    """ghz's formatNanoUnit: '950 ns', '12.34 ms', '1.50 s'."""
    nanoseconds = _nanoseconds(seconds)
    if nanoseconds < 10_000:
        return f"{nanoseconds} ns"
    milliseconds = nanoseconds / 1e6
    if milliseconds < 1000:
        return f"{milliseconds:4.2f} ms"
    return f"{milliseconds / 1000:4.2f} s"


def _histogram_text(buckets: list[tuple[float, int, float]]) -> str:
    """ghz's histogram: mark in ms, [count], and a bar of up to 40 '∎'."""
    if not buckets:
        return ""
    marks = [f"{mark * 1000:.3f}" for mark, _, _ in buckets]
    counts = [str(count) for _, count, _ in buckets]
    mark_width = max(len(mark) for mark in marks)
    count_width = max(len(count) for count in counts)
    most = max(count for _, count, _ in buckets)
    text = ""
    for mark, count, (_, number, _) in zip(marks, counts, buckets, strict=True):
        bar = "∎" * ((number * 40 + most // 2) // most if most else 0)
        text += f"  {mark.ljust(mark_width)} [{count}]{' ' * (count_width - len(count))} |{bar}\n"
    return text


def _tabulate(rows: list[tuple[str, str]]) -> str:
    """Go's tabwriter with padding 3, as ghz lays out its distributions."""
    first_width = max(len(first) for first, _ in rows) + 3
    second_width = max(len(second) for _, second in rows) + 3
    return "".join(
        f"  {first.ljust(first_width)}{second.ljust(second_width)}\n" for first, second in rows
    )
