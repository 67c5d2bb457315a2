"""The data directory: one directory per collection, created and removed crash-safely.

`<data-dir>/collections/<name>/` holds `db/` (RocksDB) and `index/` (checkpoints).
A collection is built under `.tmp-...` and renamed into place, and removed by
renaming it to `.trash-...` first, so a crash at any point leaves either the
whole collection or none of it (plus leftovers that `clean_leftovers` removes).
Collection names cannot start with '.', so leftovers never clash with them.
"""

import logging
import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)

TMP_PREFIX = ".tmp-"
TRASH_PREFIX = ".trash-"
DB_DIR = "db"
INDEX_DIR = "index"


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DataDir:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.collections = root / "collections"

    def prepare(self) -> None:
        self.collections.mkdir(parents=True, exist_ok=True)

    def path(self, name: str) -> Path:
        return self.collections / name

    def names(self) -> list[str]:
        """Collection directories, leftovers excluded."""
        return sorted(
            entry.name
            for entry in self.collections.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")
        )

    def clean_leftovers(self) -> list[str]:
        """Remove half-created and half-deleted collections from an earlier crash."""
        removed = []
        for entry in self.collections.iterdir():
            if entry.name.startswith((TMP_PREFIX, TRASH_PREFIX)):
                shutil.rmtree(entry, ignore_errors=True)
                removed.append(entry.name)
        if removed:
            log.info("removed leftovers of interrupted create/delete: %s", removed)
        return removed

    def create(self, name: str, build: Callable[[Path], None]) -> Path:
        """Let `build` fill a fresh directory, then make it the collection `name` atomically."""
        final = self.path(name)
        if final.exists():
            raise FileExistsError(final)
        tmp = self.collections / f"{TMP_PREFIX}{name}-{uuid.uuid4().hex}"
        tmp.mkdir()
        try:
            build(tmp)
            _fsync_dir(tmp)
            tmp.rename(final)
            _fsync_dir(self.collections)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return final

    def remove(self, name: str) -> None:
        """Remove the collection `name`: gone for good once the rename is on disk."""
        trash = self.collections / f"{TRASH_PREFIX}{name}-{uuid.uuid4().hex}"
        self.path(name).rename(trash)
        _fsync_dir(self.collections)
        shutil.rmtree(trash, ignore_errors=True)
