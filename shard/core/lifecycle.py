"""Lets a collection be closed (deleted, or the server stopping) while calls are in flight.

Every call on a collection runs inside `use()`; `close()` refuses new calls and
waits for the running ones, so the store and index are never closed under them.
"""

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from shoal.errors import NotFound


class Lifecycle:
    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition()
        self._users = 0
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    @contextmanager
    def use(self) -> Iterator[None]:
        with self._cond:
            if self._closed:
                raise NotFound(f"collection {self._name!r} not found")
            self._users += 1
        try:
            yield
        finally:
            with self._cond:
                self._users -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Refuse new calls, then wait for the running ones to finish."""
        with self._cond:
            self._closed = True
            while self._users:
                self._cond.wait()
