"""The embedder's torch threads: its own flag and variable, defaulting to its CPUs."""

import pytest

from embedder.__main__ import parse_args
from shoal.runtime.cpus import available_cpus


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SHOAL_TORCH_THREADS", "SHOAL_THREADS"):
        monkeypatch.delenv(name, raising=False)


def test_by_default_every_cpu_it_may_use() -> None:
    assert parse_args([]).torch_threads == available_cpus()


def test_the_flag_and_its_older_name() -> None:
    assert parse_args(["--torch-threads", "3"]).torch_threads == 3
    assert parse_args(["--threads", "5"]).torch_threads == 5


def test_its_own_variable_wins_over_the_shared_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOAL_THREADS", "7")  # what manifests set before the flag had its name
    assert parse_args([]).torch_threads == 7
    monkeypatch.setenv("SHOAL_TORCH_THREADS", "2")
    assert parse_args([]).torch_threads == 2


def test_zero_threads_is_refused() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--torch-threads", "0"])
