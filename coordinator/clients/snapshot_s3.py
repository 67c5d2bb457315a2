"""Snapshots in S3-compatible object storage (boto3): s3://BUCKET/PREFIX/NAME/...

The endpoint and credentials come from boto3's usual sources (AWS_ENDPOINT_URL,
AWS_ACCESS_KEY_ID, ... or a profile), so MinIO, Ceph or AWS all work. Data
files are uploaded with boto3's managed (multipart) transfer; the manifest is
one PUT, written last, and a snapshot without it is incomplete.
"""

from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from coordinator.core.snapshot_files import MANIFEST
from shoal.errors import InvalidArgument, NotFound

_DELETE_BATCH = 1000


def parse_s3_location(location: str) -> tuple[str, str]:
    """(bucket, prefix without slashes at its ends) of s3://bucket/prefix."""
    rest = location.removeprefix("s3://")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise InvalidArgument(f"snapshot location {location!r}: expected s3://bucket[/prefix]")
    return bucket, prefix.strip("/")


class S3SnapshotStore:
    def __init__(self, location: str, client: Any = None) -> None:
        self._location = location
        self._bucket, self._prefix = parse_s3_location(location)
        self._client = client if client is not None else boto3.client("s3")

    @property
    def location(self) -> str:
        return self._location

    def _key(self, snapshot: str, name: str = "") -> str:
        parts = [p for p in (self._prefix, snapshot, name) if p]
        return "/".join(parts)

    def put_file(self, snapshot: str, name: str, source: Path) -> None:
        self._client.upload_file(str(source), self._bucket, self._key(snapshot, name))

    def get_file(self, snapshot: str, name: str, staging: Path) -> Path:
        target = staging / snapshot / name
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._client.download_file(self._bucket, self._key(snapshot, name), str(target))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                raise NotFound(f"snapshot {snapshot!r}: file {name} is missing") from None
            raise
        return target

    def put_manifest(self, snapshot: str, data: bytes) -> None:
        self._client.put_object(Bucket=self._bucket, Key=self._key(snapshot, MANIFEST), Body=data)

    def get_manifest(self, snapshot: str) -> bytes | None:
        try:
            reply = self._client.get_object(Bucket=self._bucket, Key=self._key(snapshot, MANIFEST))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return bytes(reply["Body"].read())

    def _keys(self, prefix: str) -> list[str]:
        keys = []
        for page in self._client.get_paginator("list_objects_v2").paginate(
            Bucket=self._bucket, Prefix=prefix
        ):
            keys += [item["Key"] for item in page.get("Contents", [])]
        return keys

    def list_snapshots(self) -> list[str]:
        root = f"{self._prefix}/" if self._prefix else ""
        names = set()
        for key in self._keys(root):
            snapshot, _, rest = key[len(root) :].partition("/")
            if rest == MANIFEST:
                names.add(snapshot)
        return sorted(names)

    def delete(self, snapshot: str) -> bool:
        manifest = self._key(snapshot, MANIFEST)
        keys = self._keys(self._key(snapshot) + "/")
        if not keys:
            return False
        # The manifest first: a half-deleted snapshot is an incomplete one.
        ordered = [k for k in keys if k == manifest] + [k for k in keys if k != manifest]
        for start in range(0, len(ordered), _DELETE_BATCH):
            chunk = ordered[start : start + _DELETE_BATCH]
            self._client.delete_objects(
                Bucket=self._bucket, Delete={"Objects": [{"Key": k} for k in chunk]}
            )
        return True
