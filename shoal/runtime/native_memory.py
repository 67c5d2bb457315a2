"""The C allocator's side of a server's memory: freed memory handed back, arenas bounded.

glibc's malloc keeps what a process freed for reuse, per arena, and gives a
thread-heavy process up to eight arenas per core. A shard that loads a
collection allocates and frees a great deal in its worker threads (records
read from RocksDB, lists of vectors, payload decoding) and would otherwise keep
that memory resident for good. Elsewhere (not glibc) both calls do nothing.
"""

import ctypes
import logging

log = logging.getLogger(__name__)

#: mallopt's parameter number for the most arenas (glibc's malloc.h).
_M_ARENA_MAX = -8


def _libc() -> ctypes.CDLL | None:
    """The C library the process runs on (its own symbols: no search for the file)."""
    try:
        libc = ctypes.CDLL(None)
    except OSError:
        return None
    if not hasattr(libc, "malloc_trim") or not hasattr(libc, "mallopt"):
        return None
    return libc


def release_free_memory() -> bool:
    """Hand the pages malloc holds free back to the system (every arena); whether
    anything was released."""
    libc = _libc()
    return bool(libc.malloc_trim(0)) if libc is not None else False


def limit_arenas(arenas: int) -> None:
    """At most `arenas` malloc arenas (0: glibc's default); call before threads start."""
    libc = _libc()
    if arenas <= 0 or libc is None:
        return
    if not libc.mallopt(_M_ARENA_MAX, arenas):
        log.warning("could not limit malloc to %d arenas", arenas)
