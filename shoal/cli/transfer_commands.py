"""`shoal export | import`: a collection to a file and back (shoal.sdk.transfer).

`shoal import` reads two kinds of file: an export (a header with the
collection's settings; JSONL or Parquet), which creates the collection, and
plain JSONL document lines without a header (what `scroll --json` prints),
which it upserts into an existing collection named on the command line.
"""

import argparse
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shoal.cli import output as out
from shoal.cli.document_commands import import_jsonl
from shoal.cli.options import address, command, print_json
from shoal.errors import InvalidArgument
from shoal.sdk.client import Client
from shoal.sdk.export_format import FORMATS, NoExportHeader, file_format
from shoal.sdk.transfer import (
    EXPORT_PAGE_SIZE,
    IMPORT_BATCH_SIZE,
    ProgressBar,
    export_collection,
    import_collection,
    open_export,
)


def progress_bar(total: int | None, description: str) -> AbstractContextManager[ProgressBar]:
    bar: AbstractContextManager[ProgressBar] = tqdm(total=total, unit="doc", desc=description)
    return bar


@contextmanager
def _file_errors(file: str) -> Iterator[None]:
    """A file that cannot be opened or written as one line, not a traceback."""
    try:
        yield
    except OSError as error:
        raise SystemExit(f"error: {error.filename or file}: {error.strerror or error}") from None


def cmd_export(args: argparse.Namespace) -> None:
    with Client(address(args), timeout=args.timeout) as client, _file_errors(args.file):
        result = export_collection(
            client,
            args.collection,
            Path(args.file),
            format=args.format,
            page_size=args.page_size,
            progress=progress_bar,
        )
    if args.json:
        print_json(
            {
                "collection": result.collection,
                "file": str(result.path),
                "format": result.format,
                "documents": result.documents,
            }
        )
    else:
        print(
            f"exported {out.count_of(result.documents, 'document')} of {result.collection!r}"
            f" to {result.path} ({result.format})"
        )


def _is_plain_jsonl(path: Path, given_format: str | None) -> bool:
    """Whether FILE is document lines without an export header (the older import)."""
    try:
        kind = file_format(path, given_format)
    except InvalidArgument:
        return True  # any other name: JSONL lines, as `shoal import` always read
    if kind != "jsonl":
        return False
    try:
        open_export(path, "jsonl")
    except NoExportHeader:
        return True
    return False


def cmd_import(args: argparse.Namespace) -> None:
    collection: str | None = args.collection
    path = Path(args.file)
    if collection is not None and args.name is not None:
        raise SystemExit("error: give the collection as COLLECTION or as --name, not both")
    name = args.name or collection
    created: bool | None  # None: plain lines into an existing collection
    with Client(address(args), timeout=args.timeout) as client, _file_errors(args.file):
        if name is not None and _is_plain_jsonl(path, args.format):
            count = import_jsonl(client, name, path, args.batch_size)
            created = None
        else:
            try:
                result = import_collection(
                    client,
                    path,
                    name=name,
                    format=args.format,
                    batch_size=args.batch_size,
                    progress=progress_bar,
                )
            except NoExportHeader as error:
                raise SystemExit(
                    f"error: {error}; to upsert plain document lines into an existing"
                    " collection, name it: shoal import COLLECTION FILE"
                ) from None
            name, count, created = result.collection, result.documents, result.created
    if args.json:
        reply: dict[str, object] = {"collection": name, "upserted": count}
        print_json(reply if created is None else {**reply, "created": created})
    else:
        into = f"new collection {name!r}" if created else repr(name)
        print(f"upserted {out.count_of(count, 'document')} into {into}")


def add_transfer_commands(commands: Any) -> None:
    export = command(
        commands,
        "export",
        "write a collection (settings, ids, exact vectors, texts, metadata) to a JSONL or"
        " Parquet file that `shoal import` reads back",
    )
    export.add_argument("collection", help="the collection")
    export.add_argument("file", help="the file to write: NAME.jsonl or NAME.parquet")
    export.add_argument(
        "--format", choices=FORMATS, help="jsonl or parquet (default: from FILE's extension)"
    )
    export.add_argument(
        "--page-size",
        type=int,
        default=EXPORT_PAGE_SIZE,
        help="documents per Scroll call, at most 1000",
    )
    export.add_argument("--timeout", type=float, default=120.0, help="seconds per call")
    export.set_defaults(run=cmd_export)

    imp = command(
        commands,
        "import",
        "import a `shoal export` file (creating its collection with the file's settings),"
        " or upsert JSONL document lines into an existing collection",
    )
    imp.add_argument(
        "collection",
        nargs="?",
        help="the collection to import into (default: the export's own); needed for plain"
        " document lines",
    )
    imp.add_argument(
        "file",
        help='an export (.jsonl or .parquet), or lines of {"id", "vector"?, "text"?, "metadata"?}',
    )
    imp.add_argument("--name", help="import the export under this name (same as COLLECTION)")
    imp.add_argument(
        "--format", choices=FORMATS, help="jsonl or parquet (default: from FILE's extension)"
    )
    imp.add_argument(
        "--batch-size", type=int, default=IMPORT_BATCH_SIZE, help="documents per Upsert call"
    )
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    imp.set_defaults(run=cmd_import)
