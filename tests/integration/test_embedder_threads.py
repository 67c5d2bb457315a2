"""The local cluster's embedder thread setting reaches torch in the embedder process."""

import re
from pathlib import Path

import pytest

from shoal.cli.local_cluster import DEFAULT_MODEL, ClusterSpec, LocalCluster


@pytest.mark.model
def test_embedder_threads_reach_torch(tmp_path: Path) -> None:
    # 3: neither the local default (1) nor, on most machines, the CPU count.
    cluster = LocalCluster(tmp_path, ClusterSpec(model=DEFAULT_MODEL, embedder_threads=3))
    embedder = cluster.embedder  # started alone: no shard or coordinator is needed
    embedder.start()
    try:
        embedder.wait_ready(300)
    finally:
        embedder.stop()
    # The embedder logs torch.get_num_threads() once the model has loaded.
    loaded = re.findall(r"loaded \S+ from \S+ with (\d+) torch threads", embedder.log_tail(200))
    assert loaded == ["3"]
