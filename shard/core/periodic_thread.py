"""A background thread that repeats one step until stopped.

The thread twin of shoal.periodic, for the shard's periodic work that blocks
for a while (index checkpoints, tombstone purges): it gets a thread of its own
rather than the event loop or a request executor thread. Used by the
checkpointer and the tombstone purger, so start, stop and the wait between
steps exist once.
"""

import threading
from collections.abc import Callable


class PeriodicThread:
    """Runs `step` every `interval_s` seconds on a daemon thread, the first time
    after one interval. A step that raises ends the thread, so steps handle
    their own errors."""

    def __init__(self, name: str, step: Callable[[], object], interval_s: float) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def stopping(self) -> bool:
        """Whether `stop` has been called; a long step checks it to end early."""
        return self._stopping.is_set()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop after the step in progress, if any."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self._interval_s):
            self._step()
