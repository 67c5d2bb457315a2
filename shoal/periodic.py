"""A background asyncio task that repeats one step until stopped.

Used for hint replay (coordinator), anti-entropy and size metrics (shard), so
start, stop and "a failed step is logged, never fatal" exist once.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from shoal.errors import ShoalError

log = logging.getLogger(__name__)


class Periodic:
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
        self._task: asyncio.Task[None] | None = None

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
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
