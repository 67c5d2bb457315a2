"""Writes go on, and are hinted, however many a replica misses while it is down.

With one of three replicas SIGKILLed and left down, the coordinator's back-off
for it once overflowed at its 1,024th failure: every upsert from then on failed
INTERNAL (at ONE and at QUORUM alike) and was not kept as a hint.
"""

import numpy as np

from shoal import Client
from shoal.runtime.wait import wait_for
from tests.conftest import StartCluster
from tests.fault import replicas

COLLECTION = "docs"
DIM = 4
AT_ONE = 1_100
AT_QUORUM = 50


def test_writes_succeed_and_are_hinted_past_a_thousand_failures_of_a_replica(
    start_cluster: StartCluster,
) -> None:
    cluster = start_cluster(groups=1, replicas=3, model="hash-8")
    down = cluster.shards[0][2]
    vector = np.ones(DIM, dtype=np.float32)
    with Client(cluster.address, timeout=30) as client:
        client.create_collection(COLLECTION, dimension=DIM, partitions=4)
        down.kill()
        for i in range(AT_ONE):
            result = client.upsert(COLLECTION, [{"id": f"doc-{i}", "vector": vector}], "one")
            assert result.replicas_acknowledged >= 1, f"upsert {i} at ONE"
        for i in range(AT_ONE, AT_ONE + AT_QUORUM):
            result = client.upsert(COLLECTION, [{"id": f"doc-{i}", "vector": vector}], "quorum")
            assert result.replicas_acknowledged == 2, f"upsert {i} at QUORUM"

    # Back again, it gets every write it missed (from hints and its catch-up).
    down.start()
    down.wait_ready(60)
    total = AT_ONE + AT_QUORUM
    wait_for(
        lambda: replicas.count(down.address, COLLECTION) == total,
        60,
        f"the restarted replica to hold all {total} writes it missed",
        interval=0.5,
    )
