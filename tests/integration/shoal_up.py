"""Run `shoal up` as a real process in tests, and find and watch the processes it starts.

Linux only: processes are found through /proc.
"""

import os
import random
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from shoal.runtime.wait import wait_for

#: A fake model: the cluster starts in seconds and never loads torch.
FAKE_MODEL = "hash-32"
TIMEOUT = 60.0


def free_port_range(count: int, attempts: int = 50) -> int:
    """The first of `count` consecutive ports that are free right now."""
    for _ in range(attempts):
        base = random.randrange(20_000, 60_000)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("127.0.0.1", port))
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports in {attempts} attempts")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name, or None if there is no such process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


@dataclass(frozen=True)
class Pid:
    """A process by PID and start time, so a reused PID is not mistaken for it."""

    pid: int
    started: str

    @property
    def alive(self) -> bool:
        fields = _stat(self.pid)
        # fields[0] is the state (Z: exited, not yet reaped); fields[19] the start time.
        return fields is not None and fields[0] != "Z" and fields[19] == self.started


def children_of(parent: int) -> list[Pid]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat(int(entry.name))
        if fields is not None and int(fields[1]) == parent:
            found.append(Pid(int(entry.name), fields[19]))
    return found


@dataclass
class ShoalUp:
    """`shoal up --model FAKE_MODEL ARGS...` with its output in `workdir/up-N.out`."""

    data_dir: Path
    args: list[str]
    workdir: Path
    process: subprocess.Popen[bytes] | None = None
    children: list[Pid] = field(default_factory=list)
    #: Environment variables to set for `shoal up` on top of this process's.
    env: dict[str, str] = field(default_factory=dict)

    @property
    def output_path(self) -> Path:
        return self.workdir / f"up-{id(self)}.out"

    @property
    def output(self) -> str:
        return self.output_path.read_text(errors="replace")

    def start(self) -> None:
        command = [
            sys.executable, "-c", "from shoal.cli.app import main; main()",
            "up", "--data-dir", str(self.data_dir), "--model", FAKE_MODEL, *self.args,
        ]  # fmt: skip
        self.workdir.mkdir(parents=True, exist_ok=True)
        with self.output_path.open("wb") as out:
            self.process = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def _serving(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"shoal up exited {self.process.returncode}:\n{self.output}")
        return "Shoal is serving at" in self.output

    def wait_serving(self) -> None:
        """Wait for the banner, then remember every process `shoal up` started."""
        wait_for(self._serving, TIMEOUT, "shoal up to serve")
        self.children = children_of(self.pid)

    def address(self) -> str:
        line = next(line for line in self.output.splitlines() if "Shoal is serving at" in line)
        return line.rsplit(" ", 1)[1]

    def signal(self, sig: signal.Signals) -> None:
        os.kill(self.pid, sig)

    def wait(self, timeout: float = TIMEOUT) -> int:
        assert self.process is not None
        return self.process.wait(timeout)

    def clean_up(self) -> None:
        """SIGKILL whatever is left: `shoal up` and, when a test failed, its children."""
        if self.process is not None and self.process.poll() is None:
            self.children += children_of(self.pid)  # those started since wait_serving
            self.process.kill()
            self.process.wait()
        for child in self.children:
            if child.alive:
                os.kill(child.pid, signal.SIGKILL)
