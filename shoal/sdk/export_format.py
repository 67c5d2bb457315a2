"""What an export file holds, whatever its container (JSONL or Parquet).

An export carries a collection's settings and every document's id, vector,
text and metadata, so that `shoal import` recreates the collection exactly.
Vectors travel as their float32 bytes (little-endian), never as decimal text:
an import stores the very bits the export read. The header names the format
version and the vector encoding, so a later Shoal can read older files and an
older one refuses newer files by their version instead of misreading them.

Containers (see export_jsonl.py and export_parquet.py):
- JSONL: line 1 `{"shoal_export": HEADER}`, then one document per line
  (`vector` base64 of the float32 bytes), and last `{"shoal_export_end":
  {"documents": N}}`, so a file cut at a line boundary is told from a whole one.
- Parquet: columns id, vector (fixed-size list of float32), text, metadata
  (JSON), with HEADER as JSON under the schema metadata key `shoal.export`.
"""

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.runtime.proto_values import Metadata
from shoal.sdk.results import Collection

#: Raise it when the layout changes; readers refuse versions above theirs.
FORMAT_VERSION = 1
#: float32 little-endian bytes, base64 (RFC 4648, with padding).
VECTOR_ENCODING = "float32-le-base64"
HEADER_KEY = "shoal_export"
END_KEY = "shoal_export_end"
PARQUET_METADATA_KEY = b"shoal.export"

FileFormat = Literal["jsonl", "parquet"]
FORMATS: tuple[FileFormat, ...] = ("jsonl", "parquet")
_EXTENSIONS: dict[str, FileFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
_METRICS = ("cosine", "l2", "ip")


class ExportFileError(InvalidArgument):
    """A file that is not a readable export: the message names the file, and the
    line (JSONL) or row (Parquet) where reading stopped."""

    def __init__(self, path: Path, message: str, line: int | None = None) -> None:
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line


class NoExportHeader(ExportFileError):
    """A JSONL file without the export header: plain document lines, which
    `shoal import COLLECTION FILE` still reads into an existing collection."""


def file_format(path: Path, given: str | None = None) -> FileFormat:
    """The format `given` (--format), else the one the file's extension names."""
    if given is not None:
        if given not in FORMATS:
            raise InvalidArgument(f"format {given!r}: use one of {', '.join(FORMATS)}")
        return given
    found = _EXTENSIONS.get(path.suffix.lower())
    if found is None:
        raise InvalidArgument(
            f"{path}: cannot tell the format from the extension {path.suffix or '(none)'!r};"
            f" name it {', '.join(_EXTENSIONS)} or give the format (jsonl or parquet)"
        )
    return found


@dataclass(frozen=True)
class ExportedSettings:
    """Everything fixed when a collection is created, as an export records it."""

    name: str
    dimension: int
    metric: str
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef: int
    embedding_model: str
    partitions: int
    keyword: KeywordSettings = field(default_factory=KeywordSettings)

    @classmethod
    def of(cls, collection: Collection) -> "ExportedSettings":
        return cls(
            name=collection.name,
            dimension=collection.dimension,
            metric=collection.metric,
            hnsw_m=collection.hnsw_m,
            hnsw_ef_construction=collection.hnsw_ef_construction,
            hnsw_ef=collection.hnsw_ef,
            embedding_model=collection.embedding_model,
            partitions=collection.partitions,
            keyword=collection.keyword.with_defaults(),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dimension": self.dimension,
            "metric": self.metric,
            "hnsw_m": self.hnsw_m,
            "hnsw_ef_construction": self.hnsw_ef_construction,
            "hnsw_ef": self.hnsw_ef,
            "embedding_model": self.embedding_model,
            "partitions": self.partitions,
            "keyword": self.keyword.to_dict(),
        }

    @classmethod
    def from_dict(cls, value: object) -> "ExportedSettings":
        """ValueError saying which setting is missing or wrong."""
        if not isinstance(value, dict):
            raise ValueError("collection settings are not an object")
        unknown = set(value) - set(cls.__dataclass_fields__)
        if unknown:
            raise ValueError(f"unknown collection settings {sorted(unknown)}")

        def integer(name: str, least: int) -> int:
            item = value.get(name)
            if isinstance(item, bool) or not isinstance(item, int) or item < least:
                raise ValueError(
                    f"collection setting {name} is {item!r}, not an integer >= {least}"
                )
            return item

        def text(name: str) -> str:
            item = value.get(name)
            if not isinstance(item, str):
                raise ValueError(f"collection setting {name} is {item!r}, not a string")
            return item

        metric = text("metric")
        if metric not in _METRICS:
            raise ValueError(f"collection setting metric is {metric!r}; use one of {_METRICS}")
        try:
            keyword = KeywordSettings.from_dict(value.get("keyword"))
        except (TypeError, ValueError) as error:
            raise ValueError(f"collection setting keyword: {error}") from None
        return cls(
            name=text("name"),
            dimension=integer("dimension", 1),
            metric=metric,
            hnsw_m=integer("hnsw_m", 0),
            hnsw_ef_construction=integer("hnsw_ef_construction", 0),
            hnsw_ef=integer("hnsw_ef", 0),
            embedding_model=text("embedding_model"),
            partitions=integer("partitions", 1),
            keyword=keyword,
        )

    def differences(self, other: "ExportedSettings") -> list[str]:
        """'setting: this vs other' for every setting but the name that differs."""
        mine, theirs = self.to_dict(), other.to_dict()
        return [
            f"{key} {mine[key]!r} vs {theirs[key]!r}"
            for key in mine
            if key != "name" and mine[key] != theirs[key]
        ]


@dataclass(frozen=True)
class ExportHeader:
    settings: ExportedSettings
    shoal_version: str = ""
    format_version: int = FORMAT_VERSION
    vector_encoding: str = VECTOR_ENCODING

    def to_dict(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "vector_encoding": self.vector_encoding,
            "shoal_version": self.shoal_version,
            "collection": self.settings.to_dict(),
        }

    @classmethod
    def from_dict(cls, value: object) -> "ExportHeader":
        """ValueError saying what is wrong; a newer format version is refused."""
        if not isinstance(value, dict):
            raise ValueError("the export header is not an object")
        version = value.get("format_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ValueError(f"export format_version is {version!r}, not a positive integer")
        if version > FORMAT_VERSION:
            raise ValueError(
                f"export format version {version} is newer than this Shoal reads"
                f" ({FORMAT_VERSION}); import it with a newer shoal"
            )
        encoding = value.get("vector_encoding")
        if encoding != VECTOR_ENCODING:
            raise ValueError(f"vector_encoding {encoding!r}: this Shoal reads {VECTOR_ENCODING!r}")
        shoal_version = value.get("shoal_version", "")
        return cls(
            settings=ExportedSettings.from_dict(value.get("collection")),
            shoal_version=str(shoal_version),
            format_version=version,
            vector_encoding=encoding,
        )


@dataclass(frozen=True)
class ExportedDocument:
    id: str
    vector: npt.NDArray[np.float32]
    text: str | None = None
    metadata: Metadata = field(default_factory=dict)

    def to_upsert(self) -> dict[str, Any]:
        """The document as `Client.upsert` takes it: the vector as given, so the
        server stores these bits and embeds nothing."""
        return {"id": self.id, "vector": self.vector, "text": self.text, "metadata": self.metadata}


def encode_vector(vector: npt.NDArray[np.float32]) -> str:
    return base64.b64encode(np.ascontiguousarray(vector, dtype="<f4").tobytes()).decode("ascii")


def decode_vector(encoded: object, dimension: int) -> npt.NDArray[np.float32]:
    """ValueError unless `encoded` is base64 of exactly `dimension` float32s."""
    if not isinstance(encoded, str):
        raise ValueError(f"vector is {type(encoded).__name__}, not a base64 string")
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as error:
        raise ValueError(f"vector is not valid base64: {error}") from None
    if len(raw) != 4 * dimension:
        raise ValueError(
            f"vector holds {len(raw)} bytes; dimension {dimension} needs {4 * dimension}"
        )
    return np.frombuffer(raw, dtype="<f4")


def check_document(
    doc_id: object, vector: npt.NDArray[np.float32], text: object, metadata: object
) -> ExportedDocument:
    """A document read from a file, or ValueError saying which field is wrong."""
    if not isinstance(doc_id, str) or not doc_id:
        raise ValueError(f"id is {doc_id!r}, not a non-empty string")
    if not np.isfinite(vector).all():
        raise ValueError(f"document {doc_id!r}: vector contains NaN or infinity")
    if text is not None and not isinstance(text, str):
        raise ValueError(f"document {doc_id!r}: text is {type(text).__name__}, not a string")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        kind = type(metadata).__name__
        raise ValueError(f"document {doc_id!r}: metadata is {kind}, not an object")
    return ExportedDocument(doc_id, vector, text, metadata)
