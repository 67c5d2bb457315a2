"""How far in the future a write's version may be: defence in depth on the shard.

Replicas keep the highest version per id (last writer wins), so a version far
ahead of every clock (2^64 - 1, say) would win against every later write and
pin a document, or a tombstone, forever. Versions are hybrid-logical-clock
values (`ms << VERSION_MS_SHIFT | ...`) made by coordinators whose clocks
agree within the skew the cluster tolerates; a version whose millisecond part
is beyond now + that skew did not come from a healthy coordinator. The shard
refuses such a write (INVALID_ARGUMENT) and anti-entropy neither fetches nor
applies such a record from a peer, so it spreads nowhere.
"""

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from shoal.errors import InvalidArgument
from shoal.replication import VERSION_MS_SHIFT, VersionState

#: The default: NTP keeps clocks within milliseconds; minutes cover a VM resumed
#: with a stale clock without letting a version live long in the future.
DEFAULT_MAX_CLOCK_SKEW_S = 300.0


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def version_ms(version: int) -> int:
    return version >> VERSION_MS_SHIFT


@dataclass(frozen=True)
class VersionHorizon:
    """The newest version a replica accepts: now + `max_skew_s`."""

    max_skew_s: float = DEFAULT_MAX_CLOCK_SKEW_S
    now_ms: Callable[[], int] = field(default=wall_clock_ms, compare=False)

    def limit_ms(self) -> int:
        return self.now_ms() + int(self.max_skew_s * 1000)

    def check(self, ids_and_versions: Iterable[tuple[str, int]]) -> None:
        """Refuse a batch holding any version beyond the horizon (nothing is written)."""
        limit = self.limit_ms()
        for doc_id, version in ids_and_versions:
            ms = version_ms(version)
            if ms > limit:
                ahead_s = (ms - limit) / 1000 + self.max_skew_s
                raise InvalidArgument(
                    f"document {doc_id[:64]!r}: version {version} is {ahead_s:.0f} s ahead of"
                    f" this replica's clock; versions may be at most {self.max_skew_s:g} s"
                    " ahead (--max-clock-skew-s)"
                )

    def within(self, version: int, limit_ms: int | None = None) -> bool:
        return version_ms(version) <= (self.limit_ms() if limit_ms is None else limit_ms)

    def drop_future(self, versions: Mapping[str, VersionState]) -> dict[str, VersionState]:
        """A peer's version list without the ids whose version is beyond the horizon."""
        limit = self.limit_ms()
        return {
            doc_id: state for doc_id, state in versions.items() if self.within(state.version, limit)
        }
