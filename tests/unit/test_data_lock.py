"""One process per data dir: the second to ask is refused, told who holds it."""

import os
from pathlib import Path

import pytest

from shoal.runtime.data_lock import DataDirInUse, DataDirLock


def test_a_held_directory_is_refused_naming_the_holder(tmp_path: Path) -> None:
    # flock conflicts between two open files even within one process, so one
    # process can play both sides.
    with DataDirLock(tmp_path, "shoal up"), pytest.raises(DataDirInUse) as refused:
        DataDirLock(tmp_path, "another").acquire()
    message = str(refused.value)
    assert str(tmp_path) in message
    assert f"in use by process {os.getpid()} (shoal up, since " in message


def test_released_the_directory_is_free_again_and_the_file_stays(tmp_path: Path) -> None:
    first = DataDirLock(tmp_path / "new", "first")
    first.acquire()
    assert first.held
    first.release()
    second = DataDirLock(tmp_path / "new", "second")
    second.acquire()  # no error
    assert '"owner": "second"' in second.path.read_text()
    second.release()
    assert second.path.exists()


def test_a_holder_that_has_not_written_yet_is_still_named(tmp_path: Path) -> None:
    holder = DataDirLock(tmp_path, "x")
    holder.acquire()
    holder.path.write_text("")  # as between its flock and its write
    try:
        with pytest.raises(DataDirInUse, match="another process"):
            DataDirLock(tmp_path, "y").acquire()
    finally:
        holder.release()
