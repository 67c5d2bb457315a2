"""The snapshot store a --snapshot-location names."""

from pathlib import Path

from coordinator.clients.snapshot_directory import DirectorySnapshotStore
from coordinator.core.snapshot_ports import SnapshotStore


def snapshot_store(location: str) -> SnapshotStore | None:
    """s3://... in object storage, anything else a directory; None for ""."""
    if not location:
        return None
    if location.startswith("s3://"):
        # boto3 loads slowly: only a coordinator that uses S3 pays for it.
        from coordinator.clients.snapshot_s3 import S3SnapshotStore

        return S3SnapshotStore(location)
    return DirectorySnapshotStore(Path(location))
