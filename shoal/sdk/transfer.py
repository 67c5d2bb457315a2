"""Export a collection to a file and import it back: `shoal export` / `shoal import`.

Both stream: an export scrolls the collection a page at a time (vectors
included) and writes each page as it comes, an import reads the file a batch
at a time and upserts each batch, so memory stays bounded by one page or
batch. An import upserts the vectors as exported, so nothing is embedded again
and a text collection's documents keep their vectors bit for bit.

An export is not a snapshot: writes that land during the scroll may or may not
be in it (each document is exported once, as some replica held it when its
page was read).
"""

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Protocol

import numpy as np

from shoal.errors import AlreadyExists, Internal, NotFound
from shoal.sdk.client import Client
from shoal.sdk.export_format import (
    ExportedDocument,
    ExportedSettings,
    ExportHeader,
    FileFormat,
    file_format,
)
from shoal.sdk.export_jsonl import JsonlExport, write_jsonl

#: Documents per Scroll page of an export (the server allows up to 1,000).
EXPORT_PAGE_SIZE = 500
#: Documents per Upsert of an import.
IMPORT_BATCH_SIZE = 256
#: Documents between progress updates while an import checks its file.
CHECK_PROGRESS_STEP = 1024


class ProgressBar(Protocol):
    def update(self, n: int) -> object: ...


class _NoBar:
    def update(self, n: int) -> object:
        return None


#: Makes a progress bar from the expected total (None: unknown) and a description;
#: tqdm fits: `lambda total, description: tqdm(total=total, desc=description)`.
Progress = Callable[[int | None, str], AbstractContextManager[ProgressBar]]


def no_progress(total: int | None, description: str) -> AbstractContextManager[ProgressBar]:
    return nullcontext(_NoBar())


class ExportFile(Protocol):
    """An export opened for reading (JSONL or Parquet)."""

    path: Path
    header: ExportHeader

    def count(self) -> int: ...

    def documents(self) -> Iterator[ExportedDocument]: ...


@dataclass(frozen=True)
class ExportResult:
    collection: str
    path: Path
    format: FileFormat
    documents: int


@dataclass(frozen=True)
class ImportResult:
    collection: str
    path: Path
    format: FileFormat
    documents: int
    created: bool  # False: imported into an existing collection with the same settings


def _shoal_version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:
        return "unknown"


def export_collection(
    client: Client,
    collection: str,
    path: str | Path,
    *,
    format: str | None = None,
    page_size: int = EXPORT_PAGE_SIZE,
    progress: Progress = no_progress,
) -> ExportResult:
    """Write every document of `collection` (ids, vectors, texts, metadata) and its
    settings to `path`; the format is `format` ("jsonl" or "parquet"), else the
    one the file's extension names."""
    path = Path(path)
    kind = file_format(path, format)
    info = client.get_collection(collection)
    header = ExportHeader(ExportedSettings.of(info), shoal_version=_shoal_version())
    with progress(info.document_count, f"exporting {collection}") as bar:

        def pages() -> Iterator[list[ExportedDocument]]:
            # Columns per page: the vectors come as one float32 matrix, never as a
            # list of Python floats per document.
            for documents in client.scroll_pages(
                collection, page_size=page_size, include=("vector", "text", "metadata")
            ):
                try:
                    vectors = documents.vectors
                except ValueError:
                    vectors = None
                if vectors is None:
                    if len(documents):
                        raise Internal(f"a page from {documents.ids[0]!r} came without vectors")
                    vectors = np.empty((0, 0), dtype=np.float32)
                ids, texts, metadatas = documents.ids.tolist(), documents.texts, documents.metadatas
                page = [
                    ExportedDocument(ids[row], vectors[row], texts[row], metadatas[row])
                    for row in range(len(documents))
                ]
                yield page
                bar.update(len(page))

        if kind == "parquet":
            # Imported here: pyarrow takes a while to load, and JSONL does not need it.
            from shoal.sdk.export_parquet import write_parquet

            count = write_parquet(path, header, pages())
        else:
            count = write_jsonl(path, header, pages())
    return ExportResult(collection, path, kind, count)


def open_export(path: str | Path, format: str | None = None) -> ExportFile:
    """An export file, its header checked: ExportFileError when it is not one
    (NoExportHeader for JSONL lines without the header)."""
    path = Path(path)
    if file_format(path, format) == "parquet":
        from shoal.sdk.export_parquet import ParquetExport

        return ParquetExport(path)
    return JsonlExport(path)


def ensure_collection(client: Client, settings: ExportedSettings) -> bool:
    """Create the collection with `settings`; True if it was created, False if it
    existed with the same settings. AlreadyExists naming each setting that differs."""
    try:
        existing = ExportedSettings.of(client.get_collection(settings.name))
    except NotFound:
        client.create_collection(
            settings.name,
            dimension=settings.dimension,
            metric=settings.metric,  # type: ignore[arg-type]  # checked on reading
            embedding_model=settings.embedding_model,
            hnsw_m=settings.hnsw_m,
            hnsw_ef_construction=settings.hnsw_ef_construction,
            hnsw_ef=settings.hnsw_ef,
            partitions=settings.partitions,
            keyword=settings.keyword.to_dict(),
        )
        return True
    differences = existing.differences(settings)
    if differences:
        raise AlreadyExists(
            f"collection {settings.name!r} exists with other settings than the file's"
            f" (collection vs file: {'; '.join(differences)}); import under"
            " another name, or drop the collection first"
        )
    return False


def _batches(documents: Iterator[ExportedDocument], size: int) -> Iterator[list[ExportedDocument]]:
    batch: list[ExportedDocument] = []
    for document in documents:
        batch.append(document)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_export(export: ExportFile, progress: Progress = no_progress) -> int:
    """Read every document of the file and check it, before an import writes
    anything; how many it holds. ExportFileError at the first problem."""
    count = 0
    with progress(None, f"checking {export.path.name}") as bar:
        for checked in _batches(export.documents(), CHECK_PROGRESS_STEP):
            count += len(checked)
            bar.update(len(checked))
    return count


def import_collection(
    client: Client,
    path: str | Path,
    *,
    name: str | None = None,
    format: str | None = None,
    batch_size: int = IMPORT_BATCH_SIZE,
    progress: Progress = no_progress,
) -> ImportResult:
    """Upsert every document of an export into the collection it came from, or
    into `name`: created with the file's settings unless it exists with the same
    ones (AlreadyExists when its settings differ). ExportFileError naming the line
    or row where a damaged or cut-short file goes wrong, before any write: the
    file is checked whole first."""
    path = Path(path)
    kind = file_format(path, format)
    export = open_export(path, kind)
    settings = export.header.settings
    if name is not None:
        settings = replace(settings, name=name)
    total = check_export(export, progress)
    created = ensure_collection(client, settings)
    count = 0
    with progress(total, f"importing into {settings.name}") as bar:
        for batch in _batches(export.documents(), batch_size):
            client.upsert(settings.name, [document.to_upsert() for document in batch])
            count += len(batch)
            bar.update(len(batch))
    return ImportResult(settings.name, path, kind, count, created)
