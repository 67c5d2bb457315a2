"""CPU time and resident memory of the service processes, read from /proc.

CPU seconds per process around a measurement say where a request's time goes
(client, coordinator, shard) without a profiler in the way.
"""

import time
from pathlib import Path

#: Linux's encoding of a process-wide CPU clock id: ~pid << 3 | CPUCLOCK_SCHED.
_CPUCLOCK_SCHED = 2


def cpu_seconds(pid: int) -> float:
    """CPU time of a process so far, every thread it ever had, at nanosecond resolution.

    Read from the process's CPU-time clock (what clock_getcpuclockid gives):
    /proc/<pid>/stat counts in 10 ms ticks, too coarse for a short measurement,
    and per-thread counters lose the threads that ended, such as the ones
    hnswlib starts for each batch query.
    """
    return time.clock_gettime(((~pid) << 3) | _CPUCLOCK_SCHED)


def rss_bytes(pid: int) -> int:
    """Resident set size now."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def own_cpu_seconds() -> float:
    return time.process_time()


def directory_bytes(path: Path) -> int:
    return sum(entry.stat().st_size for entry in path.rglob("*") if entry.is_file())
