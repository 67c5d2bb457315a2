"""A readers/writer gate for one hnswlib index that also owns the index-wide ef.

hnswlib allows concurrent `knn_query` calls, but `add_items`, `resize_index`,
`mark_deleted` and `set_ef` must not run alongside them, and ef is one value
for the whole index. So a reader enters with the ef it needs: readers with the
same ef share the gate; a reader with another ef waits until the gate is free
and then sets it. Readers that do not care about ef (`ef=None`) share with
anyone. Writers run alone.

Admission is first come, first served: a newcomer goes in at once only if
nobody is waiting and it is compatible with those inside; otherwise it queues
and the queue is admitted in order, so neither writers nor readers with an
unusual ef starve behind a stream of compatible readers.
"""

import threading
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class WouldBlock(Exception):
    """A caller that must not block (`wait=False`) would have to wait, or do slow work."""


@dataclass(eq=False)
class _Ticket:
    write: bool
    ef: int | None


class IndexGate:
    def __init__(self, set_ef: Callable[[int], None], ef: int) -> None:
        self._set_ef = set_ef
        self._ef = ef
        self._cond = threading.Condition()
        self._readers = 0
        self._writing = False
        self._queue: deque[_Ticket] = deque()

    @property
    def ef(self) -> int:
        """The ef the index is set to now."""
        return self._ef

    @property
    def waiting(self) -> int:
        """Callers queued for the gate (for tests and diagnostics)."""
        with self._cond:
            return len(self._queue)

    @property
    def readers(self) -> int:
        with self._cond:
            return self._readers

    def _fits(self, ticket: _Ticket) -> bool:
        if self._writing:
            return False
        if ticket.write or self._readers == 0:
            return self._readers == 0
        return ticket.ef is None or ticket.ef == self._ef

    def _admit(self, ticket: _Ticket) -> None:
        if ticket.write:
            self._writing = True
            return
        if self._readers == 0 and ticket.ef is not None and ticket.ef != self._ef:
            # Nobody is inside, so changing the index-wide ef races with nothing.
            self._set_ef(ticket.ef)
            self._ef = ticket.ef
        self._readers += 1

    def _enter(self, ticket: _Ticket, wait: bool = True) -> None:
        with self._cond:
            if not self._queue and self._fits(ticket):
                self._admit(ticket)
                return
            if not wait:
                raise WouldBlock
            self._queue.append(ticket)
            while not (self._queue[0] is ticket and self._fits(ticket)):
                self._cond.wait()
            self._queue.popleft()
            self._admit(ticket)
            # The next in line may be compatible too (readers with the same ef).
            self._cond.notify_all()

    def _leave(self, ticket: _Ticket) -> None:
        with self._cond:
            if ticket.write:
                self._writing = False
            else:
                self._readers -= 1
            self._cond.notify_all()

    @contextmanager
    def read(self, ef: int | None, wait: bool = True) -> Iterator[None]:
        """Share the index with other readers, with the index's ef set to `ef`.

        With `wait=False`, raises WouldBlock rather than wait to be admitted
        (for callers on an event loop, which must not block).
        """
        ticket = _Ticket(write=False, ef=ef)
        self._enter(ticket, wait)
        try:
            yield
        finally:
            self._leave(ticket)

    @contextmanager
    def write(self) -> Iterator[None]:
        """Have the index to oneself."""
        ticket = _Ticket(write=True, ef=None)
        self._enter(ticket)
        try:
            yield
        finally:
            self._leave(ticket)
