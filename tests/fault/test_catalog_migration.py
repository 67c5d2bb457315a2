"""A data dir written without the catalog starts under it: its collections are registered.

The cluster first runs as the release before the catalog did (no etcd), then
again on the same data dirs with etcd: the shards register what they hold
(one of them wins per name, the others adopt its incarnation), and the
collection serves its documents through the coordinator as before.
"""

from dataclasses import replace
from pathlib import Path

from shoal import Client
from shoal.cli.local_cluster import ClusterSpec, LocalCluster
from tests.fault import replicas
from tests.fault.test_catalog_in_etcd import documents, listed


def test_collections_of_a_pre_catalog_data_dir_are_registered(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    spec = ClusterSpec(groups=2, replicas=2, model="hash-8")
    old = LocalCluster(root, replace(spec, etcd_members=0))
    with old, Client(old.address, timeout=30) as client:
        client.create_collection("legacy", dimension=4, partitions=8)
        client.upsert("legacy", documents("doc", 200), "all")
    with LocalCluster(root, spec) as new:
        incarnations = {listed(shard.address)["legacy"][1] for shard in new.all_shards}
        assert len(incarnations) == 1 and 0 not in incarnations
        with Client(new.address, timeout=30) as client:
            assert client.get_collection("legacy").dimension == 4
            assert client.count("legacy") == 200
            client.upsert("legacy", documents("more", 10), "all")
            assert client.count("legacy") == 210
        assert sum(replicas.count(s.address, "legacy") for s in new.all_shards) == 2 * 210
