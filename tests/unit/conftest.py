"""The unit tests start no process, so `make test-unit` runs in seconds anywhere.

A unit test that starts one (a server, a fresh interpreter, a command-line tool)
fails at once, naming what it ran: it belongs in tests/integration. Threads and
in-process gRPC servers on 127.0.0.1:0 are fine.
"""

import multiprocessing.process
import os
import subprocess
from collections.abc import Iterator

import pytest


def _refuse(what: str) -> object:
    def refuse(*args: object, **kwargs: object) -> None:
        command = args[1] if what == "Popen" and len(args) > 1 else args  # args[0]: the Popen
        raise AssertionError(
            f"a unit test started a process ({what} {command!r}); tests that start processes"
            " belong in tests/integration"
        )

    return refuse


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    # Popen covers subprocess.run and asyncio's subprocesses; the rest what bypasses it.
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("Popen"))
    monkeypatch.setattr(multiprocessing.process.BaseProcess, "start", _refuse("Process.start"))
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
    yield
