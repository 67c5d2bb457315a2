"""`python -m shoal.runtime.lifeline`: a service whose parent is already gone does not start."""

import subprocess
import sys


def run(*args: str) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "shoal.runtime.lifeline", *args]
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
    assert "usage: python -m shoal.runtime.lifeline" in run("shard").stderr


def test_a_program_runs_in_place_of_the_lifeline() -> None:
    import os

    done = run(str(os.getpid()), "--exec", "sh", "-c", 'echo "$$ $PPID"')
    assert done.returncode == 0, done.stderr
    _, parent = done.stdout.split()
    # execv: the program is the lifeline process itself, a child of this one.
    assert int(parent) == os.getpid()


def test_a_program_whose_parent_is_gone_does_not_start() -> None:
    done = run("1", "--exec", "echo", "started")
    assert done.returncode == 1
    assert "parent process 1 has already exited" in done.stderr
    assert "started" not in done.stdout


def test_a_program_that_does_not_exist_is_one_line() -> None:
    import os

    done = run(str(os.getpid()), "--exec", "/nonexistent/etcd")
    assert done.returncode == 1
    assert done.stderr.startswith("cannot run /nonexistent/etcd:")
    assert "Traceback" not in done.stderr
