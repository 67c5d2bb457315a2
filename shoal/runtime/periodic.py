"""Background work that repeats one step until stopped: on the event loop, or on a thread.

`PeriodicTask` is an asyncio task, for hint replay (coordinator), anti-entropy
and size metrics (shard): start, stop and "a failed step is logged, never
fatal" exist once. `PeriodicThread` is its thread twin, for the shard's periodic
work that blocks for a while (index checkpoints, tombstone purges): it gets a
thread of its own rather than the event loop or a request executor thread.

Plain asyncio and threading, no gRPC: the services' core layers use both.
"""

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable

from shoal.errors import ShoalError
from shoal.loop_task import LoopTask

log = logging.getLogger(__name__)


class PeriodicTask:
    """Runs `step` every `interval_s` seconds; `wait_first` sleeps before the first run."""

    def __init__(
        self,
        name: str,
        step: Callable[[], Awaitable[object]],
        interval_s: float,
        wait_first: bool = False,
    ) -> None:
        self.name = name
        self._step = step
        self._interval_s = interval_s
        self._wait_first = wait_first
        self._loop = LoopTask(self.name, self._run)

    async def _run(self) -> None:
        if self._wait_first:
            await asyncio.sleep(self._interval_s)
        while True:
            try:
                await self._step()
            except ShoalError as error:  # expected while peers or replicas are down
                log.warning("%s failed: %s", self.name, error)
            except Exception:
                log.exception("%s failed", self.name)
            await asyncio.sleep(self._interval_s)

    def start(self) -> None:
        self._loop.start()

    async def stop(self) -> None:
        await self._loop.stop()


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
