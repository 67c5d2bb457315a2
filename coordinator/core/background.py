"""Calls left running after their request has been answered.

A write returns once enough replicas acknowledged; the calls to the others keep
going so those replicas get the write too. This holds on to those tasks (the
event loop keeps only weak references), logs how they end, and lets shutdown
wait for them.
"""

import asyncio
import logging
from typing import Any

from shoal.errors import ShoalError

log = logging.getLogger(__name__)


class Background:
    def __init__(self) -> None:
        self._tasks: dict[asyncio.Task[Any], str] = {}

    def __len__(self) -> int:
        return len(self._tasks)

    def adopt(self, task: asyncio.Task[Any], what: str) -> None:
        self._tasks[task] = what
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        what = self._tasks.pop(task, "background call")
        if task.cancelled():
            log.warning("%s was cancelled", what)
            return
        error = task.exception()
        if isinstance(error, ShoalError):
            log.warning("%s failed after the request was answered: %s", what, error)
        elif error is not None:
            log.error("%s failed after the request was answered", what, exc_info=error)

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for the calls still running."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=seconds)
