"""`async_wait_for`: polls on the event loop, so the tasks that make it true run."""

import asyncio

import pytest

from shoal.runtime.wait import async_wait_for


async def test_it_returns_the_first_truthy_value_once_a_task_makes_it_true() -> None:
    seen: list[int] = []

    async def producer() -> None:
        for n in range(3):
            await asyncio.sleep(0.01)
            seen.append(n)

    task = asyncio.create_task(producer())
    assert await async_wait_for(lambda: seen[2:], 5, "a third value") == [2]
    await task


async def test_a_coroutine_condition_is_awaited() -> None:
    polls: list[int] = []

    async def condition() -> int:
        polls.append(1)
        return len(polls) if len(polls) >= 2 else 0

    assert await async_wait_for(condition, 5, "a second poll", interval=0.001) == 2


async def test_it_times_out_naming_what_it_waited_for() -> None:
    with pytest.raises(TimeoutError, match="waiting for nothing at all"):
        await async_wait_for(lambda: False, 0.05, "nothing at all", interval=0.01)
