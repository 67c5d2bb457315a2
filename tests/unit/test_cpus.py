"""Thread defaults follow the CPUs a process may use, a container's CPU limit included."""

import os
from pathlib import Path

from shoal.runtime.cpus import available_cpus

AFFINITY = len(os.sched_getaffinity(0))


def cgroup(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_without_a_cgroup_quota_it_is_the_affinity(tmp_path: Path) -> None:
    assert available_cpus(tmp_path) == AFFINITY
    assert available_cpus(cgroup(tmp_path, {"cpu.max": "max 100000\n"})) == AFFINITY


def test_a_cgroup_v2_quota_caps_it_rounded_up(tmp_path: Path) -> None:
    assert available_cpus(cgroup(tmp_path, {"cpu.max": "50000 100000\n"})) == 1
    assert available_cpus(cgroup(tmp_path, {"cpu.max": "150000 100000\n"})) == min(AFFINITY, 2)


def test_a_cgroup_v1_quota_caps_it(tmp_path: Path) -> None:
    files = {"cpu/cpu.cfs_quota_us": "100000\n", "cpu/cpu.cfs_period_us": "100000\n"}
    assert available_cpus(cgroup(tmp_path, files)) == 1
    files["cpu/cpu.cfs_quota_us"] = "-1\n"  # no limit
    assert available_cpus(cgroup(tmp_path, files)) == AFFINITY
