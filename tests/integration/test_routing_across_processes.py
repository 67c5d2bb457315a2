"""Routing is stable across processes: a fresh interpreter, another hash seed."""

import json
import os
import subprocess
import sys
from pathlib import Path

from shoal.partitioning import partition_of, stable_hash
from tests.unit.test_coordinator_routing import IDS, KNOWN_HASHES


def test_routing_is_the_same_in_another_process() -> None:
    """A fresh interpreter with a different hash seed routes every id the same way."""
    sample = IDS[:2_000] + list(KNOWN_HASHES)
    script = (
        "import json, sys\n"
        "from shoal.partitioning import partition_of, stable_hash\n"
        "ids = json.load(sys.stdin)\n"
        "print(json.dumps([[stable_hash(i), partition_of(i, 64)] for i in ids]))\n"
    )
    root = Path(__file__).resolve().parents[2]
    for seed in ("1", "2"):
        reply = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(sample),
            capture_output=True,
            text=True,
            check=True,
            cwd=root,
            env={**os.environ, "PYTHONHASHSEED": seed},
        )
        theirs = json.loads(reply.stdout)
        ours = [[stable_hash(i), partition_of(i, 64)] for i in sample]
        assert theirs == ours
