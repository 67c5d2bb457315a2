"""How a filtered search runs: exact over the candidates, or the HNSW walk with a filter.

hnswlib's filtered search walks the whole graph but keeps only allowed
labels, so it stops once it holds ef allowed neighbours: its cost grows about
as ef / selectivity node visits, each paying a Python call for the filter.
Exact search over the matching documents costs one store read and one dot
product per candidate. So, with m matching of n live documents, exact wins
while m * cost_exact < cost_graph * n / m, i.e. while m <= sqrt(ratio * n),
where `ratio` (graph cost of one unfiltered query over exact cost of one
candidate) was measured on this code with 384-d vectors and ef 64 (about
0.09 ms per graph query against 6 us per exact candidate). Below a floor of a
few times max(k, ef) candidates exact is always cheaper.

hnswlib's walk keeps recall well as selectivity drops, because it counts only
allowed labels towards ef: on the Debian 20k set at ef 64, recall@10 was 0.987
to 0.999 for filters keeping 50% to 1% (unfiltered: 0.98). ef still grows a
little with 1 / selectivity (to at most twice the request's, rounded up so
that requests share the index's ef), as margin for filters that single out a
region far from the query; more costs QPS for no measured gain (ef x1.8 at 10%
cost a third of the throughput).
"""

import math
from dataclasses import dataclass
from enum import StrEnum

from shoal.limits import MAX_EF

#: Graph cost of one query over exact cost of one candidate (see the module docstring).
DEFAULT_EXACT_RATIO = 16.0
#: Exact search always when at most this many times max(k, ef) documents match.
EXACT_FLOOR_FACTOR = 4
#: ef grows as selectivity ** -EF_POWER, by at most EF_MAX_FACTOR, in steps of EF_STEP.
EF_POWER = 0.1
EF_MAX_FACTOR = 2.0
EF_STEP = 8


class Strategy(StrEnum):
    """How filtered searches choose; anything but AUTO is for tests and benchmarks."""

    AUTO = "auto"
    EXACT = "exact"  # always exact over the candidates
    GRAPH = "graph"  # always the filtered walk (exact only as the fallback)


@dataclass(frozen=True)
class SearchPlan:
    exact: bool
    ef: int  # for the graph walk; unused by exact search
    matching: int
    live: int

    @property
    def selectivity(self) -> float:
        return self.matching / self.live if self.live else 0.0


def filtered_ef(ef: int, k: int, selectivity: float) -> int:
    """The ef for a walk that keeps only a `selectivity` share of the documents."""
    base = max(ef, k)
    if selectivity >= 1.0:
        return base
    factor: float = min(EF_MAX_FACTOR, max(selectivity, 1e-9) ** -EF_POWER)
    return min(MAX_EF, EF_STEP * math.ceil(base * factor / EF_STEP))


def plan(
    matching: int,
    live: int,
    k: int,
    ef: int,
    strategy: Strategy = Strategy.AUTO,
    exact_ratio: float = DEFAULT_EXACT_RATIO,
) -> SearchPlan:
    """Choose exact or graph for `matching` of `live` documents (ef: the request's, not 0)."""
    if strategy is Strategy.AUTO:
        floor = EXACT_FLOOR_FACTOR * max(k, ef)
        exact = matching <= max(floor, math.sqrt(exact_ratio * live))
    else:
        exact = strategy is Strategy.EXACT
    selectivity = matching / live if live else 0.0
    return SearchPlan(exact, filtered_ef(ef, k, selectivity), matching, live)
