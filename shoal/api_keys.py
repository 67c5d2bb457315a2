"""API keys: how they are made, stored hashed, loaded from a file and rotated.

The keys file is JSON (a Kubernetes Secret mounted as a file, or written by hand):

    {"keys": [{"name": "ingest", "sha256": "<hex>", "role": "write",
               "collections": ["docs"]}]}

`collections` is optional (absent or empty: every collection). Only the SHA-256
of each key is stored. That is enough because every key is made by
`generate_key`: 256 random bits, which no one can find from its hash by
guessing, so a slow password KDF (which defends guessable passwords) would only
add milliseconds to every call. A key the file does not list is unknown.

`KeyFile` reads the file again when it changes (its mtime, size or inode;
looked at no more than once per `check_interval_s`), so keys are added and
revoked without a restart. A file that no longer parses leaves the keys it
had in force and says why in the log.
"""

import hashlib
import json
import logging
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoal.access import Principal, Role

log = logging.getLogger(__name__)

#: Prefix of every key, so a leaked one is recognisable (secret scanners).
KEY_PREFIX = "shoal_"
KEY_BYTES = 32


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(KEY_BYTES)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_entry(key: str, name: str, role: Role, collections: Sequence[str] = ()) -> dict[str, Any]:
    """The keys file's entry for `key` (without the key itself)."""
    entry: dict[str, Any] = {"name": name, "sha256": key_hash(key), "role": role.name.lower()}
    if collections:
        entry["collections"] = sorted(set(collections))
    return entry


class KeysFileError(ValueError):
    """The keys file is not what `parse_keys` accepts; says where."""


def parse_keys(text: str) -> dict[str, Principal]:
    """Key hash -> principal, from the keys file's text."""
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise KeysFileError(f"not JSON: {error}") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(entries, list):
        raise KeysFileError('expected {"keys": [{"name", "sha256", "role", "collections"}, ...]}')
    table: dict[str, Principal] = {}
    for position, entry in enumerate(entries):
        where = f"keys[{position}]"
        if not isinstance(entry, dict):
            raise KeysFileError(f"{where} is not an object")
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise KeysFileError(f"{where}: sha256 must be 64 hex digits")
        try:
            role = Role.parse(str(entry.get("role", "")))
        except ValueError as error:
            raise KeysFileError(f"{where}: {error}") from None
        collections = entry.get("collections") or []
        if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
            raise KeysFileError(f"{where}: collections must be a list of names")
        if digest in table:
            raise KeysFileError(f"{where}: the same key is listed twice")
        name = str(entry.get("name") or f"key {position}")
        table[digest] = Principal(name, role, frozenset(collections))
    return table


@dataclass(frozen=True)
class _Stamp:
    mtime_ns: int
    size: int
    inode: int


def _stamp(path: Path) -> _Stamp | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    return _Stamp(stat.st_mtime_ns, stat.st_size, stat.st_ino)


class KeyFile:
    """The keys of a file, read again when it changes."""

    def __init__(
        self,
        path: Path,
        check_interval_s: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._interval = check_interval_s
        self._clock = clock
        self._stamp = _stamp(path)
        # The first read must succeed: a server does not start with bad keys.
        self._keys = parse_keys(path.read_text())
        self._checked = clock()
        log.info("%d API keys from %s", len(self._keys), path)

    @property
    def keys(self) -> Mapping[str, Principal]:
        self._reload_if_changed()
        return self._keys

    def lookup(self, key: str) -> Principal | None:
        return self.keys.get(key_hash(key))

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked < self._interval:
            return
        self._checked = now
        stamp = _stamp(self.path)
        if stamp is None or stamp == self._stamp:
            if stamp is None:
                log.error("API keys file %s is gone; keeping the keys read before", self.path)
            return
        try:
            keys = parse_keys(self.path.read_text())
        except (OSError, KeysFileError) as error:
            # Often a writer caught half-way; the next change is read again.
            log.error("API keys file %s not reloaded (keeping the old keys): %s", self.path, error)
            self._stamp = stamp
            return
        self._stamp = stamp
        self._keys = keys
        log.info("API keys file %s reloaded: %d keys", self.path, len(keys))


def env_api_key() -> str | None:
    """SHOAL_API_KEY, for clients."""
    return os.environ.get("SHOAL_API_KEY") or None
