"""The one way Shoal's tools and tests wait for something to become true.

`wait_for` blocks the calling thread; `async_wait_for` is the same on an event
loop, for async tests whose condition is made true by tasks on that loop (a
blocking wait there would stop the very tasks it waits for).
"""

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar, overload

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll `condition` until it returns something truthy; return that value.

    Raises TimeoutError naming `what` when `timeout` seconds pass first. An
    exception from `condition` propagates at once: it is a failure, not "not yet".
    """
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


@overload
async def async_wait_for(
    condition: Callable[[], Awaitable[T]], within_s: float, what: str, interval: float = 0.05
) -> T: ...


@overload
async def async_wait_for(
    condition: Callable[[], T], within_s: float, what: str, interval: float = 0.05
) -> T: ...


async def async_wait_for(
    condition: Callable[[], object], within_s: float, what: str, interval: float = 0.05
) -> object:
    """`wait_for` on the event loop: the loop runs other tasks between polls.

    `condition` may be a plain function or a coroutine function (a poll that has
    to make a call, e.g. replay what is due and then look). Raises TimeoutError
    naming `what` when `within_s` seconds pass first.
    """
    deadline = time.monotonic() + within_s
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {within_s:.1f}s waiting for {what}")
        await asyncio.sleep(interval)
