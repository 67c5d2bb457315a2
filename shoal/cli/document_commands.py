"""`shoal search | get | delete | update | count | scroll`: documents (and the JSONL
reading that `shoal import` and the demo use for plain document lines)."""

import argparse
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shoal.cli import output as out
from shoal.cli.options import command, connect, print_json
from shoal.runtime.settings import positive_int
from shoal.sdk.client import Client
from shoal.sdk.columnar import SearchResult
from shoal.sdk.requests import Field
from shoal.sdk.results import DocumentLike
from shoal.sdk.where import Where

DOCUMENT_KEYS = ("id", "vector", "text", "metadata")
WHERE_HELP = (
    'a metadata filter as JSON, e.g. \'{"section": "sound", "size": {"$lt": 500}}\' (default: none)'
)
WHERE_DOCUMENT_HELP = (
    'a text filter as JSON: whole words or phrases, e.g. \'{"$contains": "command line"}\','
    ' \'{"$not_contains": "gui"}\', "$and"/"$or" of them; needs the keyword index;'
    " with --where both must hold (default: none)"
)
VECTORS_HELP = (
    "also read each document's vector: with --json as a list of numbers that convert back"
    " to the same float32 values; in text, its first values and its dimension"
)


def _read_jsonl(path: Path) -> Iterator[DocumentLike]:
    """Documents from a JSONL file; keys other than id/vector/text/metadata are skipped."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit(f"error: {path}:{number}: not JSON: {error}") from None
            yield {key: record[key] for key in DOCUMENT_KEYS if key in record}


def _batches(items: Iterable[DocumentLike], size: int) -> Iterator[list[DocumentLike]]:
    batch: list[DocumentLike] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def import_jsonl(client: Client, collection: str, path: Path, batch_size: int) -> int:
    try:
        with path.open() as lines:
            total = sum(1 for line in lines if line.strip())
    except OSError as error:
        raise SystemExit(f"error: {path}: {error.strerror}") from None
    done = 0
    with tqdm(total=total, unit="doc", desc=f"importing into {collection}") as progress:
        for batch in _batches(_read_jsonl(path), batch_size):
            done += client.upsert(collection, batch).count
            progress.update(len(batch))
    return done


def print_hits(result: SearchResult, explain: bool = False) -> None:
    """One row per hit; with `explain`, also each hit's rank and score in the vector
    and the keyword candidate lists ("-" where a list did not hold it)."""
    if not result.hits:
        print("no hits")
    else:
        columns: tuple[str, ...] = ("#", "score", "id")
        grouped = any(hit.group is not None for hit in result.hits)
        if grouped:
            columns += ("group",)
        if explain:
            columns += out.EXPLAIN_COLUMNS
        out.print_table(
            (*columns, "text"),
            (
                (
                    rank,
                    f"{hit.score:.4f}",
                    hit.id,
                    *((str(hit.group),) if grouped else ()),
                    *(out.explanation_cells(hit.explanation) if explain else ()),
                    out.snippet(hit.chunk_text or hit.text),
                )
                for rank, hit in enumerate(result.hits, 1)
            ),
            wide=("text",),
            right=("#", "score", *out.EXPLAIN_COLUMNS),
        )
    if not result.coverage.complete:
        print(
            f"partial result: {result.coverage.groups_answered} of "
            f"{out.count_of(result.coverage.groups_asked, 'shard group')} answered"
        )


def where_arg(text: str | None, option: str = "--where") -> Where | None:
    """A `--where` or `--where-document` JSON object (the SDK checks what it says)."""
    if text is None:
        return None
    try:
        where = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: {option} is not JSON: {error}") from None
    if not isinstance(where, dict):
        raise SystemExit(f"error: {option} must be a JSON object")
    return where


def where_document_arg(args: argparse.Namespace) -> Where | None:
    return where_arg(args.where_document, "--where-document")


def vector_arg(text: str | None) -> list[float] | None:
    if text is None:
        return None
    try:
        vector = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"error: --vector is not JSON: {error}") from None
    if not isinstance(vector, list) or not all(
        isinstance(x, int | float) and not isinstance(x, bool) for x in vector
    ):
        raise SystemExit("error: --vector must be a JSON list of numbers, e.g. [0.1, 0.2]")
    return [float(x) for x in vector]


def cmd_search(args: argparse.Namespace) -> None:
    if args.text is None and args.vector is None and args.like is None:
        raise SystemExit("error: give --text, --vector (both only with --mode hybrid) or --like ID")
    with connect(args) as client:
        result = client.search(
            args.collection,
            vector_arg(args.vector),
            text=args.text,
            k=args.k,
            ef=args.ef,
            include=["text", "metadata"],
            where=where_arg(args.where),
            where_document=where_document_arg(args),
            score_threshold=args.score_threshold,
            mode=args.mode,
            fusion=args.fusion,
            alpha=args.alpha,
            rrf_k=args.rrf_k or 0,
            candidates=args.candidates or 0,
            explain=args.explain,
            like=args.like,
            group_by=args.group_by or "",
            group_size=args.group_size,
        )
    if args.json:
        print_json(out.search_dict(result))
    else:
        print_hits(result, args.explain)


def include_fields(args: argparse.Namespace) -> list[Field]:
    """What `get` and `scroll` read: metadata and text, and the vector with --vectors."""
    fields: list[Field] = ["metadata", "text"]
    if args.vectors:
        fields.append("vector")
    return fields


def cmd_scroll(args: argparse.Namespace) -> None:
    """Streams: one line per document as it arrives, JSON Lines with --json."""
    with connect(args) as client:
        documents = client.scroll(
            args.collection,
            where_arg(args.where),
            include=include_fields(args),
            where_document=where_document_arg(args),
        )
        for document in documents:
            if args.json:
                out.print_json_line(out.document_dict(document))
            else:
                print(out.document_line(document, vectors=args.vectors))


def cmd_get(args: argparse.Namespace) -> None:
    with connect(args) as client:
        documents = client.get(args.collection, args.ids, include=include_fields(args))
    if args.json:
        print_json([out.document_dict(document) for document in documents])
        return
    if documents:
        out.print_documents(documents, vectors=args.vectors)
    missing = [id_ for id_ in args.ids if id_ not in {d.id for d in documents}]
    if missing:
        print(f"not found: {', '.join(missing)}")


def cmd_delete(args: argparse.Namespace) -> None:
    with connect(args) as client:
        result = client.delete(
            args.collection,
            args.ids,
            where=where_arg(args.where),
            where_document=where_document_arg(args),
            delete_all=args.all,
        )
    if args.json:
        print_json({"collection": args.collection, "deleted": result.count})
    else:
        print(f"deleted {out.count_of(result.count, 'document')}")


def _set_pairs(pairs: Iterable[str]) -> dict[str, Any]:
    """KEY=VALUE pairs, VALUE read as JSON when it parses (numbers, true, lists),
    else as a string."""
    values: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"error: --set {pair!r}: expected KEY=VALUE")
        try:
            values[key] = json.loads(raw)
        except json.JSONDecodeError:
            values[key] = raw
    return values


def cmd_update(args: argparse.Namespace) -> None:
    with connect(args) as client:
        result = client.update(
            args.collection,
            args.ids,
            where=where_arg(args.where),
            where_document=where_document_arg(args),
            set_metadata=_set_pairs(args.set),
            remove_metadata=args.unset,
            text=args.text,
            update_all=args.all,
        )
    if args.json:
        print_json({"collection": args.collection, "updated": result.count})
    else:
        print(f"updated {out.count_of(result.count, 'document')}")


def cmd_count(args: argparse.Namespace) -> None:
    with connect(args) as client:
        count = client.count(args.collection, where_arg(args.where), where_document_arg(args))
    if args.json:
        print_json({"collection": args.collection, "count": count})
    else:
        print(count)


def add_document_commands(commands: Any) -> None:
    search = command(
        commands, "search", "search by vector similarity, by keywords (BM25), or both (hybrid)"
    )
    search.add_argument("collection", help="the collection")
    search.add_argument(
        "--text",
        help="query text: embedded by the collection's model for vector search, the"
        " keywords for keyword search, both for hybrid",
    )
    search.add_argument(
        "--vector",
        help="query vector as a JSON list of numbers; with --mode hybrid and --text, the"
        " vector side's query (for a collection without a model)",
    )
    search.add_argument(
        "--like",
        metavar="ID",
        help="more-like-this: search with the stored vector of document ID, leaving it out",
    )
    search.add_argument("-k", type=int, default=10, help="hits (with --group-by: groups) to return")
    search.add_argument(
        "--group-by",
        metavar="KEY",
        help="group the hits by this metadata key: k groups, best first (default: none)",
    )
    search.add_argument(
        "--group-size", type=positive_int, default=1, help="with --group-by: hits per group"
    )
    search.add_argument("--ef", type=int, default=0, help="HNSW ef (0: the collection's)")
    search.add_argument("--where", help=WHERE_HELP)
    search.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
    search.add_argument(
        "--score-threshold",
        type=float,
        help="drop hits scoring below this: similarity, BM25 in keyword mode, the fused"
        " score in hybrid mode (default: none)",
    )
    hybrid = search.add_argument_group("keyword and hybrid search")
    hybrid.add_argument(
        "--mode",
        choices=["vector", "keyword", "hybrid"],
        default="vector",
        help="rank by vector similarity, by BM25 over the document texts (cluster-wide"
        " statistics), or fuse both rankings",
    )
    hybrid.add_argument(
        "--fusion",
        choices=["rrf", "relative"],
        default="rrf",
        help="hybrid: reciprocal rank fusion, or min-max normalized scores added",
    )
    hybrid.add_argument(
        "--alpha",
        type=float,
        help="hybrid: weight of the vector side, 0 (keyword only) to 1 (vector only)"
        " (default: 0.5)",
    )
    hybrid.add_argument(
        "--rrf-k",
        type=positive_int,
        help="hybrid RRF: the constant in 1 / (rrf_k + rank) (default: 60)",
    )
    hybrid.add_argument(
        "--candidates",
        type=positive_int,
        help="hybrid: depth of each candidate list, at least k (default: 2k + rrf_k)",
    )
    hybrid.add_argument(
        "--explain",
        action="store_true",
        help="show each hit's rank and score in the vector and the keyword lists",
    )
    search.set_defaults(run=cmd_search)

    get = command(commands, "get", "get documents by id")
    get.add_argument("collection", help="the collection")
    get.add_argument("ids", nargs="+", help="document ids")
    get.add_argument("--vectors", action="store_true", help=VECTORS_HELP)
    get.set_defaults(run=cmd_get)

    delete = command(commands, "delete", "delete documents by id or by --where / --where-document")
    delete.add_argument("collection", help="the collection")
    delete.add_argument(
        "ids", nargs="*", help="document ids (or give --where and/or --where-document)"
    )
    delete.add_argument("--where", help=WHERE_HELP)
    delete.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
    delete.add_argument(
        "--all", action="store_true",
        help="delete every document (or every one matching an empty filter); refused without",
    )  # fmt: skip
    delete.set_defaults(run=cmd_delete)

    update = command(
        commands,
        "update",
        "set or remove metadata keys (or replace the text) of existing documents, by id or"
        " by --where / --where-document, keeping their vectors",
    )
    update.add_argument("collection", help="the collection")
    update.add_argument(
        "ids", nargs="*", help="document ids (or give --where and/or --where-document)"
    )
    update.add_argument("--where", help=WHERE_HELP)
    update.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
    update.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a metadata key; VALUE is JSON if it parses (42, true, [1,2]), else a string"
        " (repeatable)",
    )
    update.add_argument(
        "--unset", action="append", default=[], metavar="KEY", help="remove a metadata key"
    )
    update.add_argument(
        "--text", help="new text (with ids only); embedded again by the collection's model"
    )
    update.add_argument(
        "--all", action="store_true",
        help="update every document (or every one matching an empty filter); refused without",
    )  # fmt: skip
    update.set_defaults(run=cmd_update)

    for name, handler, text in [
        ("count", cmd_count, "count documents (matching --where and --where-document)"),
        (
            "scroll",
            cmd_scroll,
            "print every document (matching --where and --where-document), one per line;"
            " with --json as JSON Lines, which `shoal import COLLECTION FILE` reads back",
        ),
    ]:
        sub = command(commands, name, text)
        sub.add_argument("collection", help="the collection")
        sub.add_argument("--where", help=WHERE_HELP)
        sub.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
        if name == "scroll":
            sub.add_argument("--vectors", action="store_true", help=VECTORS_HELP)
        sub.set_defaults(run=handler)
