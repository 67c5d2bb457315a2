"""Snapshots in a directory (local disk, a Kubernetes volume): LOCATION/NAME/...

Files are moved in from the staging directory when it is on the same file
system, else copied; the manifest is written to a temporary name and renamed,
so a snapshot either has a whole manifest or none.
"""

import os
import shutil
from pathlib import Path

from coordinator.core.snapshot_files import MANIFEST
from shoal.errors import NotFound


class DirectorySnapshotStore:
    def __init__(self, root: Path) -> None:
        self._root = root

    @property
    def location(self) -> str:
        return str(self._root)

    def _path(self, snapshot: str, name: str) -> Path:
        return self._root / snapshot / name

    def put_file(self, snapshot: str, name: str, source: Path) -> None:
        target = self._path(snapshot, name)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
        except OSError:
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(source, partial)
            os.replace(partial, target)

    def get_file(self, snapshot: str, name: str, staging: Path) -> Path:
        path = self._path(snapshot, name)
        if not path.is_file():
            raise NotFound(f"snapshot {snapshot!r}: file {name} is missing")
        return path

    def put_manifest(self, snapshot: str, data: bytes) -> None:
        target = self._path(snapshot, MANIFEST)
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name(MANIFEST + ".partial")
        with partial.open("wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(partial, target)

    def get_manifest(self, snapshot: str) -> bytes | None:
        try:
            return self._path(snapshot, MANIFEST).read_bytes()
        except FileNotFoundError:
            return None

    def list_snapshots(self) -> list[str]:
        if not self._root.is_dir():
            return []
        return sorted(p.parent.name for p in self._root.glob(f"*/{MANIFEST}"))

    def delete(self, snapshot: str) -> bool:
        path = self._root / snapshot
        if not path.is_dir():
            return False
        # The manifest first: a half-deleted snapshot is an incomplete one.
        self._path(snapshot, MANIFEST).unlink(missing_ok=True)
        shutil.rmtree(path)
        return True
