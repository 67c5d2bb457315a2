"""The shard's index gate: readers share per ef, writers and ef changes run alone, FIFO."""

import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest

from shard.core.gate import IndexGate, WouldBlock
from shoal.runtime.wait import wait_for

TIMEOUT = 10.0


class Holder:
    """A thread that enters the gate, records that it is inside, and leaves when told."""

    def __init__(
        self, enter: Callable[[], AbstractContextManager[None]], log: list[str], name: str
    ):
        self.inside = threading.Event()
        self.release = threading.Event()
        self._enter = enter
        self._log = log
        self._name = name
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self._enter():
            self._log.append(self._name)
            self.inside.set()
            self.release.wait(TIMEOUT)

    def start(self) -> "Holder":
        self._thread.start()
        return self

    def finish(self) -> None:
        self.release.set()
        self._thread.join(TIMEOUT)
        assert not self._thread.is_alive()


@pytest.fixture
def ef_calls() -> list[int]:
    return []


@pytest.fixture
def gate(ef_calls: list[int]) -> Iterator[IndexGate]:
    yield IndexGate(ef_calls.append, ef=64)


def test_readers_with_the_same_ef_share_the_gate(gate: IndexGate, ef_calls: list[int]) -> None:
    order: list[str] = []
    first = Holder(lambda: gate.read(64), order, "a").start()
    second = Holder(lambda: gate.read(64), order, "b").start()
    assert first.inside.wait(TIMEOUT) and second.inside.wait(TIMEOUT)
    assert gate.readers == 2
    first.finish()
    second.finish()
    assert ef_calls == []  # the index already had ef 64


def test_another_ef_waits_for_the_readers_then_sets_ef(
    gate: IndexGate, ef_calls: list[int]
) -> None:
    order: list[str] = []
    reader = Holder(lambda: gate.read(64), order, "ef64").start()
    assert reader.inside.wait(TIMEOUT)
    other = Holder(lambda: gate.read(200), order, "ef200").start()
    wait_for(lambda: gate.waiting == 1, TIMEOUT, "the ef 200 reader to queue")
    assert not other.inside.is_set() and ef_calls == []
    reader.finish()
    assert other.inside.wait(TIMEOUT)
    assert ef_calls == [200] and gate.ef == 200
    other.finish()


def test_admission_is_first_come_first_served(gate: IndexGate, ef_calls: list[int]) -> None:
    """A compatible reader does not overtake one queued with another ef (no starvation)."""
    order: list[str] = []
    first = Holder(lambda: gate.read(64), order, "ef64-first").start()
    assert first.inside.wait(TIMEOUT)
    other = Holder(lambda: gate.read(10), order, "ef10").start()
    wait_for(lambda: gate.waiting == 1, TIMEOUT, "the ef 10 reader to queue")
    late = Holder(lambda: gate.read(64), order, "ef64-late").start()
    wait_for(lambda: gate.waiting == 2, TIMEOUT, "the late ef 64 reader to queue")
    first.finish()
    assert other.inside.wait(TIMEOUT)
    assert not late.inside.is_set()
    other.finish()
    assert late.inside.wait(TIMEOUT)
    late.finish()
    assert order == ["ef64-first", "ef10", "ef64-late"]
    assert ef_calls == [10, 64]


def test_a_writer_runs_alone(gate: IndexGate) -> None:
    order: list[str] = []
    reader = Holder(lambda: gate.read(64), order, "reader").start()
    assert reader.inside.wait(TIMEOUT)
    writer = Holder(gate.write, order, "writer").start()
    wait_for(lambda: gate.waiting == 1, TIMEOUT, "the writer to queue")
    next_reader = Holder(lambda: gate.read(64), order, "next-reader").start()
    wait_for(lambda: gate.waiting == 2, TIMEOUT, "the next reader to queue behind the writer")
    reader.finish()
    assert writer.inside.wait(TIMEOUT)
    assert gate.readers == 0 and not next_reader.inside.is_set()
    writer.finish()
    assert next_reader.inside.wait(TIMEOUT)
    next_reader.finish()
    assert order == ["reader", "writer", "next-reader"]


def test_a_reader_without_ef_shares_with_any_ef(gate: IndexGate, ef_calls: list[int]) -> None:
    order: list[str] = []
    reader = Holder(lambda: gate.read(300), order, "ef300").start()
    assert reader.inside.wait(TIMEOUT)
    indifferent = Holder(lambda: gate.read(None), order, "any").start()
    assert indifferent.inside.wait(TIMEOUT)
    assert gate.readers == 2
    reader.finish()
    indifferent.finish()
    assert ef_calls == [300]


def test_the_gate_is_released_when_the_body_raises(gate: IndexGate) -> None:
    with pytest.raises(RuntimeError), gate.write():
        raise RuntimeError("boom")
    with gate.read(64):
        assert gate.readers == 1


def test_a_reader_that_must_not_wait_is_refused_instead(gate: IndexGate) -> None:
    with gate.read(64, wait=False):  # a free gate admits it
        assert gate.readers == 1
    writer = Holder(gate.write, [], "writer").start()
    assert writer.inside.wait(TIMEOUT)
    with pytest.raises(WouldBlock), gate.read(64, wait=False):
        pass
    assert gate.waiting == 0  # it did not queue
    writer.finish()
    with gate.read(64, wait=False):
        assert gate.readers == 1
