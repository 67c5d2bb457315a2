"""Routing: stable across processes and releases, balanced, and the topology file."""

import collections
import json
from pathlib import Path

import pytest

from shoal.partitioning import partition_of, stable_hash
from shoal.topology import Topology, TopologyError

IDS = [f"doc-{i}" for i in range(10_000)]

# Computed once with blake2b(digest_size=8), little-endian. If these change,
# every stored document would be looked for on the wrong shard group.
KNOWN_HASHES = {
    "a": 3405396810240292928,
    "doc-1": 4752762565065110614,
    "": 13020603013274838756,
    "ünïcode": 10228366565776465443,
}


def test_hash_matches_known_values() -> None:
    assert {doc_id: stable_hash(doc_id) for doc_id in KNOWN_HASHES} == KNOWN_HASHES


@pytest.mark.parametrize("partitions", [4, 8, 16])
def test_partitions_are_balanced_within_ten_percent(partitions: int) -> None:
    counts = collections.Counter(partition_of(doc_id, partitions) for doc_id in IDS)
    even = len(IDS) / partitions
    assert set(counts) == set(range(partitions))
    assert all(abs(count - even) <= 0.1 * even for count in counts.values()), counts


@pytest.mark.parametrize("groups", [2, 3, 5])
def test_shard_groups_are_balanced_within_ten_percent(groups: int) -> None:
    topology = Topology.of([[f"127.0.0.1:{7000 + g}"] for g in range(groups)])
    by_group = topology.split_by_group(IDS, 64)
    even = len(IDS) / groups
    assert sorted(by_group) == list(range(groups))
    assert all(abs(len(p) - even) <= 0.1 * even for p in by_group.values())


def test_default_partition_count_looks_uniform() -> None:
    """With 64 partitions, 10k ids give about 156 per partition, and any random-
    looking hash spreads those by about 8% (binomial), so a 10% bound per
    partition is not a fair test there. A chi-square test is: 63 degrees of
    freedom, and uniform data stays under 110 in 99.98% of draws."""
    counts = collections.Counter(partition_of(doc_id, 64) for doc_id in IDS)
    even = len(IDS) / 64
    chi_square = sum((counts[p] - even) ** 2 / even for p in range(64))
    assert chi_square < 110


def test_split_by_group_keeps_request_order_and_agrees_with_group_of() -> None:
    topology = Topology.of([["h:1"], ["h:2"], ["h:3"]])
    ids = IDS[:300]
    by_group = topology.split_by_group(ids, 16)
    assert sorted(p for positions in by_group.values() for p in positions) == list(range(300))
    for group, positions in by_group.items():
        assert positions == sorted(positions)
        assert all(topology.group_of(ids[p], 16) == group for p in positions)
        assert all(
            topology.group_of_partition(partition_of(ids[p], 16)) == group for p in positions
        )


def test_topology_loads_from_json(tmp_path: Path) -> None:
    path = tmp_path / "topology.json"
    path.write_text(
        json.dumps(
            {
                "version": 3,
                "groups": [
                    {"replicas": ["127.0.0.1:7001", "127.0.0.1:7002"]},
                    {"replicas": ["127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005"]},
                ],
            }
        )
    )
    topology = Topology.load(path)
    assert topology.version == 3
    assert [group.group for group in topology.groups] == [0, 1]
    assert topology.groups[1].replicas == ("127.0.0.1:7003", "127.0.0.1:7004", "127.0.0.1:7005")
    assert topology.replication_factor == 3
    assert len(topology.addresses) == 5


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ([], "JSON object"),
        ({"version": 1, "groups": []}, "non-empty list 'groups'"),
        ({"version": 1, "groups": [{"replicas": []}]}, "group 0"),
        ({"version": 1, "groups": [{"replicas": ["nohost"]}]}, "HOST:PORT"),
        ({"version": 1, "groups": [{"replicas": ["h:99999"]}]}, "port"),
        ({"version": -1, "groups": [{"replicas": ["h:1"]}]}, "version"),
        ({"version": 1, "groups": [{"replicas": ["h:1"]}, {"replicas": ["h:1"]}]}, "twice"),
    ],
)
def test_malformed_topology_is_rejected(data: object, words: str) -> None:
    with pytest.raises(TopologyError, match=words):
        Topology.from_dict(data)


def test_unreadable_topology_file(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(TopologyError, match="cannot read"):
        Topology.load(tmp_path / "bad.json")
