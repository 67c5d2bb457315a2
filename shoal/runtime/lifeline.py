"""`python -m shoal.runtime.lifeline PARENT_PID MODULE ARGS...`: run `python -m MODULE ARGS...`
so that it ends when the process that started it ends, however that one ends.
`python -m shoal.runtime.lifeline PARENT_PID --exec PROGRAM ARGS...` does the same for a
program that is not Python (etcd).

`shoal up` starts every service through this. Without it, a `shoal up` that was
SIGKILLed (or lost its terminal before it could clean up) left the embedder,
shards and coordinator running, re-parented to PID 1 and holding their ports
and data directories.

On Linux the service asks the kernel for SIGTERM when its parent dies
(`prctl(PR_SET_PDEATHSIG)`): the kernel sends it whatever state either process
is in, so nothing has to poll, and SIGTERM is the signal every Shoal server
already answers with a graceful shutdown. It is set here, in the new process,
rather than in a `preexec_fn` between fork and exec, because code run there is
not safe in a parent that has threads (gRPC's). The parent may have died before
the new process got this far; the PID check right after catches that. Where
there is no prctl (macOS), a daemon thread compares the parent PID every second
instead.

A program run with --exec replaces this process (`execv`): the kernel keeps the
PDEATHSIG setting across it (it is cleared only for set-user-ID programs), and
etcd, like the services, shuts down cleanly on SIGTERM. Where the kernel cannot
be asked, this process stays as the program's parent instead: it polls as above
and passes SIGTERM on.

One caveat of PDEATHSIG: "parent" means the thread that started the process, so
services must be started from a thread that lives as long as they should (the
main thread, as `shoal up` and the tests do).
"""

import ctypes
import os
import runpy
import signal
import subprocess
import sys
import threading

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
POLL_SECONDS = 1.0


def _kernel_watch() -> bool:
    """Ask Linux for SIGTERM when the parent dies; False where that is not available."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def _poll_watch(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:
            threading.Event().wait(POLL_SECONDS)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _check_parent(parent: int) -> None:
    if os.getppid() != parent:  # it died before we asked: nobody will tell us
        raise SystemExit(f"parent process {parent} has already exited")


def die_with_parent(parent: int) -> None:
    """End this process (SIGTERM) once `parent` is no longer its parent."""
    if not _kernel_watch():
        _poll_watch(parent)
    _check_parent(parent)


def exec_with_parent(parent: int, program: list[str]) -> None:
    """Run `program` so that it gets SIGTERM once `parent` is no longer our parent."""
    if _kernel_watch():
        _check_parent(parent)
        try:
            os.execvp(program[0], program)
        except OSError as error:
            raise SystemExit(f"cannot run {program[0]}: {error}") from None
    _check_parent(parent)
    try:
        child = subprocess.Popen(program)
    except OSError as error:
        raise SystemExit(f"cannot run {program[0]}: {error}") from None
    signal.signal(signal.SIGTERM, lambda signum, frame: child.terminate())
    while os.getppid() == parent and child.poll() is None:
        threading.Event().wait(POLL_SECONDS)
    if child.poll() is None:
        child.terminate()
    raise SystemExit(child.wait())


USAGE = "usage: python -m shoal.runtime.lifeline PARENT_PID (MODULE | --exec PROGRAM) [ARGS...]"


def main(argv: list[str]) -> None:
    if len(argv) < 2 or not argv[0].isdigit() or argv[1:] == ["--exec"]:
        raise SystemExit(USAGE)
    if argv[1] == "--exec":
        exec_with_parent(int(argv[0]), argv[2:])
        return
    die_with_parent(int(argv[0]))
    module = argv[1]
    sys.argv = [module, *argv[2:]]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
