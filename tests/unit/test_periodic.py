"""The thread that repeats the checkpointer's and the tombstone purger's steps."""

import threading

from shoal.runtime.periodic import PeriodicThread
from shoal.runtime.wait import wait_for


def test_the_step_repeats_until_stopped() -> None:
    runs: list[int] = []
    loop = PeriodicThread("test-loop", lambda: runs.append(1), interval_s=0.01)
    loop.start()
    wait_for(lambda: len(runs) >= 3, 10, "three steps")
    loop.stop()
    assert loop.stopping
    assert not any(thread.name == "test-loop" for thread in threading.enumerate())


def test_nothing_runs_before_the_first_interval_and_stop_does_not_wait_for_it() -> None:
    runs: list[int] = []
    loop = PeriodicThread("test-loop", lambda: runs.append(1), interval_s=3600)
    loop.start()
    loop.stop()
    assert runs == []


def test_stop_lets_the_step_in_progress_finish_and_see_it_is_stopping() -> None:
    started = threading.Event()
    seen: list[bool] = []

    def step() -> None:
        started.set()
        wait_for(lambda: loop.stopping, 10, "stop")
        seen.append(loop.stopping)

    loop = PeriodicThread("test-loop", step, interval_s=0.01)
    loop.start()
    assert started.wait(10)
    loop.stop()
    assert seen == [True]
