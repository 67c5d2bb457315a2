"""Export files as JSON Lines: a header line, a line per document, an end line.

Written to FILE.partial and renamed when complete, so a failed export leaves no
file that looks whole; read one line at a time, so memory stays bounded
whatever the file's size. Every problem found reading names its line.
"""

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from shoal.sdk.export_format import (
    END_KEY,
    HEADER_KEY,
    ExportedDocument,
    ExportFileError,
    ExportHeader,
    NoExportHeader,
    check_document,
    decode_vector,
    encode_vector,
)


def document_line(document: ExportedDocument) -> dict[str, Any]:
    """A document's line: text and metadata left out where there are none."""
    line: dict[str, Any] = {"id": document.id, "vector": encode_vector(document.vector)}
    if document.text is not None:
        line["text"] = document.text
    if document.metadata:
        line["metadata"] = document.metadata
    return line


def _dumps(value: object) -> bytes:
    # Python's float repr round-trips every float64 exactly (metadata floats too).
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def write_jsonl(path: Path, header: ExportHeader, pages: Iterable[list[ExportedDocument]]) -> int:
    """Write the export; how many documents it holds."""
    partial = path.with_name(path.name + ".partial")
    count = 0
    try:
        with partial.open("wb") as out:
            out.write(_dumps({HEADER_KEY: header.to_dict()}))
            for page in pages:
                out.write(b"".join(_dumps(document_line(document)) for document in page))
                count += len(page)
            out.write(_dumps({END_KEY: {"documents": count}}))
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return count


def _parse(path: Path, number: int, raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError as error:
        raise ExportFileError(path, f"not UTF-8 text: {error}", number) from None
    except json.JSONDecodeError as error:
        raise ExportFileError(path, f"not JSON ({error}); is the file cut short?", number) from None


class JsonlExport:
    """An export file opened for reading; the header is checked on opening."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with path.open("rb") as lines:
                first = lines.readline()
        except OSError as error:
            raise ExportFileError(path, error.strerror or str(error)) from None
        if not first.strip():
            raise NoExportHeader(path, "empty first line: no export header", 1)
        record = _parse(path, 1, first)
        if not isinstance(record, dict) or HEADER_KEY not in record:
            raise NoExportHeader(path, f'no export header (a line {{"{HEADER_KEY}": ...}})', 1)
        try:
            self.header = ExportHeader.from_dict(record[HEADER_KEY])
        except ValueError as error:
            raise ExportFileError(path, str(error), 1) from None

    def count(self) -> int:
        """The documents in the file, every line checked (a pass over the whole file,
        a document at a time): an import calls it before writing anything, so a
        damaged or cut-short file is refused with nothing imported."""
        return sum(1 for _ in self.documents())

    def documents(self) -> Iterator[ExportedDocument]:
        """Every document, checked; ExportFileError naming the line of the first
        problem, also when the end line is missing (a file cut at a line's end)."""
        dimension = self.header.settings.dimension
        count = 0
        ended = False
        last = 1
        with self.path.open("rb") as lines:
            next(lines)  # the header
            for number, raw in enumerate(lines, 2):
                if not raw.strip():
                    continue
                last = number
                if ended:
                    raise ExportFileError(self.path, "a line after the end line", number)
                record = _parse(self.path, number, raw)
                if not isinstance(record, dict):
                    raise ExportFileError(self.path, "not a JSON object", number)
                if END_KEY in record:
                    self._check_end(record[END_KEY], count, number)
                    ended = True
                    continue
                yield self._document(record, dimension, number)
                count += 1
        if not ended:
            raise ExportFileError(
                self.path,
                f"the file ends after {count} documents without its end line; it was cut short",
                last,
            )

    def _document(self, record: dict[str, Any], dimension: int, number: int) -> ExportedDocument:
        unknown = set(record) - {"id", "vector", "text", "metadata"}
        if unknown:
            raise ExportFileError(self.path, f"unknown document fields {sorted(unknown)}", number)
        try:
            vector = decode_vector(record.get("vector"), dimension)
            return check_document(
                record.get("id"), vector, record.get("text"), record.get("metadata")
            )
        except ValueError as error:
            raise ExportFileError(self.path, str(error), number) from None

    def _check_end(self, end: object, count: int, number: int) -> None:
        documents = end.get("documents") if isinstance(end, dict) else None
        if documents != count:
            raise ExportFileError(
                self.path,
                f"the end line says {documents!r} documents, the file holds {count}",
                number,
            )
