"""`python -m shoal.lifeline`: a service whose parent is already gone does not start."""

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shoal.lifeline", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def test_a_parent_that_is_already_gone_stops_the_service_before_it_starts() -> None:
    # PID 1 is never the parent of a process we start: as if ours had died first.
    done = run("1", "shard", "--help")
    assert done.returncode == 1
    assert "parent process 1 has already exited" in done.stderr
    assert "usage: python -m shard" not in done.stdout


def test_with_its_parent_alive_it_runs_the_module() -> None:
    import os

    done = run(str(os.getpid()), "shard", "--help")
    assert done.returncode == 0
    assert "usage: python -m shard" in done.stdout


def test_bad_arguments_say_how_to_call_it() -> None:
    assert "usage: python -m shoal.lifeline" in run("shard").stderr
