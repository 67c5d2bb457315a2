"""Export files as Parquet (pyarrow): columns id, vector, text, metadata.

The vector column is a fixed-size list of float32, the collection's dimension
wide, so vectors keep their exact bits; metadata is a JSON string per row (its
keys differ from document to document); the header (export_format.py) is JSON
under the schema metadata key `shoal.export`. Written a row group per page to
FILE.partial, renamed when complete; read a batch at a time.
"""

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from shoal.sdk.export_format import (
    PARQUET_METADATA_KEY,
    ExportedDocument,
    ExportFileError,
    ExportHeader,
    check_document,
)

_READ_BATCH = 1024


def schema(header: ExportHeader) -> pa.Schema:
    dimension = header.settings.dimension
    return pa.schema(
        [
            pa.field("id", pa.string(), nullable=False),
            pa.field("vector", pa.list_(pa.float32(), dimension), nullable=False),
            pa.field("text", pa.string()),
            pa.field("metadata", pa.string()),
        ],
        metadata={PARQUET_METADATA_KEY: json.dumps(header.to_dict()).encode()},
    )


def _table(page: list[ExportedDocument], file_schema: pa.Schema, dimension: int) -> pa.Table:
    flat = np.concatenate([d.vector for d in page]).astype("<f4", copy=False)
    vectors = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), dimension)
    return pa.Table.from_arrays(
        [
            pa.array([d.id for d in page], pa.string()),
            vectors,
            pa.array([d.text for d in page], pa.string()),
            pa.array([json.dumps(d.metadata) if d.metadata else None for d in page], pa.string()),
        ],
        schema=file_schema,
    )


def write_parquet(path: Path, header: ExportHeader, pages: Iterable[list[ExportedDocument]]) -> int:
    """Write the export, a row group per non-empty page; how many documents it holds."""
    file_schema = schema(header)
    dimension = header.settings.dimension
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with pq.ParquetWriter(partial, file_schema, compression="zstd") as writer:
            for page in pages:
                if page:
                    writer.write_table(_table(page, file_schema, dimension))
                    count += len(page)
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


class ParquetExport:
    """An export file opened for reading; the header and columns are checked on opening."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._file = pq.ParquetFile(path)
        except (OSError, pa.ArrowException) as error:
            raise ExportFileError(
                path, f"not a readable Parquet file ({error}); is it cut short?"
            ) from None
        file_schema = self._file.schema_arrow
        raw = (file_schema.metadata or {}).get(PARQUET_METADATA_KEY)
        if raw is None:
            raise ExportFileError(
                path, f"no {PARQUET_METADATA_KEY.decode()!r} schema metadata: not a Shoal export"
            )
        try:
            self.header = ExportHeader.from_dict(json.loads(raw))
        except (ValueError, UnicodeDecodeError) as error:
            raise ExportFileError(path, f"export header: {error}") from None
        expected = schema(self.header)
        for column in expected:
            found = file_schema.field(column.name) if column.name in file_schema.names else None
            if found is None or not found.type.equals(column.type):
                raise ExportFileError(
                    path,
                    f"column {column.name!r} is {found.type if found else 'missing'};"
                    f" an export has {column.type}",
                )

    def count(self) -> int:
        """The documents in the file, every row checked (a pass over the whole file,
        a batch at a time): an import calls it before writing anything, so a file
        with a bad row is refused with nothing imported."""
        count = sum(1 for _ in self.documents())
        rows = int(self._file.metadata.num_rows)
        if count != rows:
            raise ExportFileError(self.path, f"the footer says {rows} rows, the file holds {count}")
        return count

    def documents(self) -> Iterator[ExportedDocument]:
        """Every document, checked; ExportFileError naming the row (from 1) of the
        first problem."""
        dimension = self.header.settings.dimension
        row = 0
        batches = self._file.iter_batches(
            batch_size=_READ_BATCH, columns=["id", "vector", "text", "metadata"]
        )
        while True:
            try:
                batch = next(batches, None)
            except (OSError, pa.ArrowException) as error:
                raise ExportFileError(
                    self.path, f"after row {row}: unreadable ({error}); is the file damaged?"
                ) from None
            if batch is None:
                return
            yield from self._batch_documents(batch, dimension, row)
            row += batch.num_rows

    def _batch_documents(
        self, batch: pa.RecordBatch, dimension: int, first_row: int
    ) -> Iterator[ExportedDocument]:
        vectors_column = batch.column("vector")
        if vectors_column.null_count:
            nulls = vectors_column.is_null().to_pylist()
            raise ExportFileError(self.path, f"row {first_row + nulls.index(True) + 1}: no vector")
        vectors = vectors_column.flatten().to_numpy(zero_copy_only=False)
        vectors = vectors.astype("<f4", copy=False).reshape(-1, dimension)
        ids = batch.column("id").to_pylist()
        texts = batch.column("text").to_pylist()
        metadatas = batch.column("metadata").to_pylist()
        for i, doc_id in enumerate(ids):
            try:
                metadata: Any = json.loads(metadatas[i]) if metadatas[i] is not None else None
                yield check_document(doc_id, vectors[i], texts[i], metadata)
            except ValueError as error:
                raise ExportFileError(self.path, f"row {first_row + i + 1}: {error}") from None
