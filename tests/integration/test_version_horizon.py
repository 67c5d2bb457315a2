"""Versions far in the future do not spread between real shards (issue 14).

One replica is started with a clock skew so large that it accepts a version of
2^64 - 1 (as a shard before this check did); its peer, with the default skew,
must copy neither that record nor such a tombstone by anti-entropy, while it
does copy an ordinary write made at the same time.
"""

import time

import numpy as np
import pytest

from shoal import Client
from shoal.cli.local_cluster import LocalCluster
from shoal.replication import VERSION_MS_SHIFT
from shoal.runtime.wait import wait_for
from shoal.v1 import shard_pb2
from tests.conftest import StartCluster
from tests.fault import replicas

DIM = 4
COLLECTION = "horizon"
MAX_VERSION = 2**64 - 1


def vector(value: float) -> bytes:
    return np.full(DIM, value, dtype="<f4").tobytes()


@pytest.fixture
def cluster(start_cluster: StartCluster) -> LocalCluster:
    cluster = start_cluster(
        groups=1, replicas=2, model="hash-8", shard_args=("--anti-entropy-interval-s", "0.3")
    )
    with Client(cluster.address) as client:
        client.create_collection(COLLECTION, dimension=DIM)
        client.upsert(COLLECTION, [{"id": "kept", "vector": [1.0] * DIM}], consistency="all")
    return cluster


def test_anti_entropy_copies_no_version_beyond_the_clock_skew(cluster: LocalCluster) -> None:
    lenient, strict = cluster.all_shards
    lenient.stop()
    lenient.args = [*lenient.args, "--max-clock-skew-s", "1e15"]
    lenient.start()
    lenient.wait_ready()
    now_version = (time.time_ns() // 1_000_000) << VERSION_MS_SHIFT
    writes = [
        shard_pb2.ShardWrite(id="pinned", version=MAX_VERSION, vector_f32=vector(6)),
        shard_pb2.ShardWrite(id="kept", version=MAX_VERSION, deleted=True),
        shard_pb2.ShardWrite(id="canary", version=now_version, vector_f32=vector(2)),
    ]
    with replicas.shard_stub(lenient.address) as stub:
        request = shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=writes)
        assert stub.Write(request, timeout=30).applied == 3

    # The canary was written alongside: once the strict replica has it, a pass ran.
    wait_for(
        lambda: "canary" in replicas.documents(strict.address, COLLECTION, ["canary"]),
        30,
        "anti-entropy to copy the ordinary write",
    )
    on_strict = replicas.documents(strict.address, COLLECTION, ["pinned", "kept", "canary"])
    assert set(on_strict) == {"kept", "canary"}  # no pinned document, no pinned tombstone
    assert "versions beyond this replica's clock" in strict.log_path.read_text()


def test_repairs_leave_out_versions_beyond_the_clock_skew(
    start_cluster: StartCluster,
) -> None:
    """Read repair and VerifyReplicas' repair skip a record no replica would take
    (with a warning and a metric) instead of failing a write to it every time."""
    # Anti-entropy out of the way: only the coordinator's repairs are looked at.
    cluster = start_cluster(
        groups=1, replicas=2, model="hash-8", shard_args=("--anti-entropy-interval-s", "3600")
    )
    with Client(cluster.address) as client:
        client.create_collection(COLLECTION, dimension=DIM)
    lenient, strict = cluster.all_shards
    lenient.stop()
    lenient.args = [*lenient.args, "--max-clock-skew-s", "1e15"]
    lenient.start()
    lenient.wait_ready()
    now_version = (time.time_ns() // 1_000_000) << VERSION_MS_SHIFT
    writes = [
        shard_pb2.ShardWrite(id="pinned", version=MAX_VERSION, vector_f32=vector(6)),
        shard_pb2.ShardWrite(id="behind", version=now_version, vector_f32=vector(2)),
    ]
    with replicas.shard_stub(lenient.address) as stub:
        request = shard_pb2.ShardWriteRequest(collection=COLLECTION, writes=writes)
        assert stub.Write(request, timeout=30).applied == 2

    coordinator_log = cluster.coordinator.log_path
    with Client(cluster.address) as client:
        # Read repair: the ordinary record is copied to the strict replica, the pinned not.
        client.get(COLLECTION, ["pinned", "behind"], consistency="all")
        wait_for(
            lambda: "behind" in replicas.documents(strict.address, COLLECTION, ["behind"]),
            30,
            "read repair to copy the ordinary record",
        )
        wait_for(
            lambda: "read repair of 'horizon'" in coordinator_log.read_text(),
            30,
            "the read repair's warning about the record it skipped",
        )
        report = client.verify_replicas(COLLECTION, repair=True)
    log = coordinator_log.read_text()
    assert "not copying 1 record(s) whose version is beyond the clock horizon" in log
    assert f"repair of '{COLLECTION}' from {lenient.address}" in log
    assert "failed after the request was answered" not in log  # no read repair write failed
    assert "repair write to" not in log  # nor a verify repair write
    assert report.repaired == 0  # the pinned record is still the only difference
    assert set(replicas.documents(strict.address, COLLECTION, ["pinned", "behind"])) == {"behind"}
