"""The `shoal` command: run a local cluster, manage collections, import, search.

Every command that prints data prints a table or a sentence, or JSON with
--json (shoal.cli_output says how). --address and --json may come before or
after the command's name.
"""

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from importlib import metadata, resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shoal import cli_output as out
from shoal import loadtest
from shoal.client import DEFAULT_ADDRESS, Client, Collection, DocumentLike, SearchResult
from shoal.cluster import (
    DEFAULT_MODEL,
    LOCAL_EMBEDDER_THREADS,
    ClusterError,
    ClusterSpec,
    LocalCluster,
    run_until_stopped,
)
from shoal.demo import demo_is_loaded
from shoal.errors import ShoalError
from shoal.filters import Where
from shoal.help_format import HelpFormatter
from shoal.settings import positive_int
from shoal.topology import Topology, TopologyError

DOCUMENT_KEYS = ("id", "vector", "text", "metadata")
WHERE_HELP = (
    'a metadata filter as JSON, e.g. \'{"section": "sound", "size": {"$lt": 500}}\' (default: none)'
)
WHERE_DOCUMENT_HELP = (
    'a text filter as JSON: whole words or phrases, e.g. \'{"$contains": "command line"}\','
    ' \'{"$not_contains": "gui"}\', "$and"/"$or" of them; needs the keyword index;'
    " with --where both must hold (default: none)"
)

DEMO_COLLECTION = "demo"
DEMO_QUERY = "a tool to resize photos from the command line"

ADDRESS_ENV = "SHOAL_ADDRESS"
JSON_HELP = "print JSON (snake_case keys, numbers as numbers) instead of tables and text"
ENVIRONMENT = f"""\
environment:
  {ADDRESS_ENV}   the coordinator's HOST:PORT where --address is not given
                  (else {DEFAULT_ADDRESS}); `shoal loadtest` calls it instead of a
                  config's host
  SHOAL_<FLAG>    `shoal up` passes its environment to the services it starts, so
                  their SHOAL_ variables apply there (e.g. SHOAL_LOG_FORMAT=json;
                  `python -m shard --help` lists a service's), except for the
                  flags `shoal up` sets itself
  NO_COLOR        tables without colour, even on a terminal
"""


def version() -> str:
    try:
        return metadata.version("shoal")
    except metadata.PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown (not installed)"


def address(args: argparse.Namespace) -> str:
    """--address, else SHOAL_ADDRESS, else the local default."""
    return str(args.address or os.environ.get(ADDRESS_ENV) or DEFAULT_ADDRESS)


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _collection_dict(collection: Collection) -> dict[str, Any]:
    values = {key: value for key, value in collection.__dict__.items() if value is not None}
    values["keyword"] = collection.keyword.to_dict()
    return values


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
        if explain:
            columns += out.EXPLAIN_COLUMNS
        out.print_table(
            (*columns, "text"),
            (
                (
                    rank,
                    f"{hit.score:.4f}",
                    hit.id,
                    *(out.explanation_cells(hit.explanation) if explain else ()),
                    out.snippet(hit.text),
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


def load_demo(client: Client, model: str = DEFAULT_MODEL) -> None:
    """Create and fill the demo collection, unless an earlier run already has."""
    client.create_collection(DEMO_COLLECTION, embedding_model=model)
    sample = resources.files("shoal") / "data" / "debian-sample.jsonl"
    with resources.as_file(sample) as path:
        if demo_is_loaded(client, DEMO_COLLECTION, path):
            print(f"collection {DEMO_COLLECTION!r} is loaded already: not importing it again")
        else:
            import_jsonl(client, DEMO_COLLECTION, path, batch_size=128)
    print(f"\ncollection {DEMO_COLLECTION!r}: {client.count(DEMO_COLLECTION)} Debian packages")
    print(f"search {DEMO_QUERY!r}:")
    print_hits(client.search(DEMO_COLLECTION, text=DEMO_QUERY, k=5, include=["text"]))


def cmd_up(args: argparse.Namespace) -> None:
    try:
        spec = ClusterSpec(
            groups=args.groups,
            replicas=args.replicas,
            model=args.model,
            host=args.host,
            coordinator_port=args.port if args.base_port is None else 0,
            base_port=args.base_port,
            embedder_threads=args.embedder_threads,
            metrics_port_base=args.metrics_port_base,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    cluster = LocalCluster(Path(args.data_dir).resolve(), spec)

    def when_serving() -> None:
        print(f"Shoal is serving at {cluster.address}", flush=True)
        if args.demo:
            with Client(cluster.address, timeout=120) as client:
                load_demo(client, args.model)
            print(f"\ntry: shoal --address {cluster.address} search demo --text 'audio editor'")

    print(
        f"starting {args.groups} shard groups x {args.replicas} replicas, "
        f"embedder ({args.model}) and coordinator; data in {cluster.root}",
        flush=True,
    )
    try:
        run_until_stopped(cluster, when_serving)
    except ClusterError as error:
        raise SystemExit(f"error: {error}") from None


def cmd_create(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        collection = client.create_collection(
            args.name,
            dimension=args.dimension,
            metric=args.metric,
            embedding_model=args.model,
            hnsw_m=args.m,
            hnsw_ef_construction=args.ef_construction,
            hnsw_ef=args.ef,
            partitions=args.partitions,
            keyword=_keyword_settings(args),
        )
    if args.json:
        _print_json(_collection_dict(collection))
    else:
        print(f"collection {collection.name!r}:")
        out.print_collection(collection)


def _keyword_settings(args: argparse.Namespace) -> bool | dict[str, Any]:
    """`create`'s keyword options as the SDK takes them: False for no index, else
    the settings given (the server fills in the rest)."""
    given = {
        "--keyword-language": ("language", args.keyword_language),
        "--no-stemming": ("stemming", False if args.no_stemming else None),
        "--no-stop-words": ("stop_words", False if args.no_stop_words else None),
        "--k1": ("k1", args.k1),
        "--b": ("b", args.b),
    }
    settings = {name: value for name, value in given.values() if value is not None}
    if args.no_keyword:
        if settings:
            flags = ", ".join(flag for flag, (_, value) in given.items() if value is not None)
            raise SystemExit(f"error: --no-keyword leaves no keyword index for {flags}")
        return False
    return settings


def cmd_list(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        collections = client.list_collections()
    if args.json:
        _print_json([_collection_dict(c) for c in collections])
    else:
        out.print_collections(collections)


def cmd_info(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        collection = client.get_collection(args.name)
    if args.json:
        _print_json(_collection_dict(collection))
    else:
        out.print_collection(collection)


def cmd_drop(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        client.delete_collection(args.name)
    if args.json:
        _print_json({"collection": args.name, "deleted": True})
    else:
        print(f"deleted collection {args.name!r}")


def cmd_import(args: argparse.Namespace) -> None:
    with Client(address(args), timeout=args.timeout) as client:
        count = import_jsonl(client, args.collection, Path(args.file), args.batch_size)
    if args.json:
        _print_json({"collection": args.collection, "upserted": count})
    else:
        print(f"upserted {out.count_of(count, 'document')} into {args.collection!r}")


def _where(text: str | None, option: str = "--where") -> Where | None:
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


def _where_document(args: argparse.Namespace) -> Where | None:
    return _where(args.where_document, "--where-document")


def _vector(text: str | None) -> list[float] | None:
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
    if args.text is None and args.vector is None:
        raise SystemExit("error: give --text or --vector (both only with --mode hybrid)")
    with Client(address(args)) as client:
        result = client.search(
            args.collection,
            _vector(args.vector),
            text=args.text,
            k=args.k,
            ef=args.ef,
            include=["text", "metadata"],
            where=_where(args.where),
            where_document=_where_document(args),
            score_threshold=args.score_threshold,
            mode=args.mode,
            fusion=args.fusion,
            alpha=args.alpha,
            rrf_k=args.rrf_k or 0,
            candidates=args.candidates or 0,
            explain=args.explain,
        )
    if args.json:
        _print_json(out.search_dict(result))
    else:
        print_hits(result, args.explain)


def cmd_scroll(args: argparse.Namespace) -> None:
    """Streams: one line per document as it arrives, JSON Lines with --json."""
    with Client(address(args)) as client:
        documents = client.scroll(
            args.collection,
            _where(args.where),
            include=["metadata", "text"],
            where_document=_where_document(args),
        )
        for document in documents:
            if args.json:
                out.print_json_line(out.document_dict(document))
            else:
                print(out.document_line(document))


def cmd_get(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        documents = client.get(args.collection, args.ids, include=["metadata", "text"])
    if args.json:
        _print_json([out.document_dict(document) for document in documents])
        return
    if documents:
        out.print_documents(documents)
    missing = [id_ for id_ in args.ids if id_ not in {d.id for d in documents}]
    if missing:
        print(f"not found: {', '.join(missing)}")


def cmd_delete(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        result = client.delete(
            args.collection,
            args.ids,
            where=_where(args.where),
            where_document=_where_document(args),
        )
    if args.json:
        _print_json({"collection": args.collection, "deleted": result.count})
    else:
        print(f"deleted {out.count_of(result.count, 'document')}")


def cmd_count(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        count = client.count(args.collection, _where(args.where), _where_document(args))
    if args.json:
        _print_json({"collection": args.collection, "count": count})
    else:
        print(count)


def cmd_verify(args: argparse.Namespace) -> None:
    """One report per collection; exits 2 when replicas still differ afterwards, or
    some could not be compared (unreachable)."""
    with Client(address(args), timeout=args.timeout) as client:
        names = (
            [args.collection]
            if args.collection
            else [collection.name for collection in client.list_collections()]
        )
        reports = {name: client.verify_replicas(name, args.repair) for name in names}
    if args.json:
        _print_json({name: out.message_dict(report) for name, report in reports.items()})
    elif not reports:
        print("no collections")
    else:
        for name, report in reports.items():
            out.print_verify(name, report)
    if any(out.verify_failed(report) for report in reports.values()):
        raise SystemExit(2)


def cmd_cluster(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        info = client.cluster_info()
    if args.json:
        _print_json(out.message_dict(info))
    else:
        out.print_cluster(info)


def _topology_dict(topology: Topology) -> dict[str, Any]:
    """The topology file's form (what `shoal topology set` reads back)."""
    return {"partition_groups": {}, **topology.to_dict()}


def cmd_topology_show(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        topology = client.get_topology()
    if args.json:
        _print_json(_topology_dict(topology))
    else:
        out.print_topology(topology)


def _topology_file(path: Path) -> tuple[Topology, int]:
    """A topology from a file (as `topology show --json` prints it, or topology.json)
    and the version it says it was edited from."""
    try:
        data = json.loads(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("topology"), dict):
            data = data["topology"]
        return Topology.from_dict(data), int(data.get("version", 0))
    except (OSError, ValueError, TopologyError) as error:
        raise SystemExit(f"error: cannot use topology {path}: {error}") from None


def cmd_topology_set(args: argparse.Namespace) -> None:
    topology, edited_from = _topology_file(Path(args.file))
    expected = args.expected_version if args.expected_version is not None else edited_from
    if not expected:
        raise SystemExit(
            f"error: {args.file} has no version: give --expected-version (shoal topology show)"
        )
    with Client(address(args)) as client:
        updated = client.update_topology(topology, expected)
    _print_topology_change(args, updated, f"topology version {updated.version} stored")


def cmd_topology_move(args: argparse.Namespace) -> None:
    with Client(address(args)) as client:
        updated = client.move_partition(args.partition, args.group)
    _print_topology_change(
        args,
        updated,
        f"partition {args.partition} belongs to shard group {args.group}"
        f" as of topology version {updated.version}",
    )


def _print_topology_change(args: argparse.Namespace, topology: Topology, summary: str) -> None:
    if args.json:
        _print_json(_topology_dict(topology))
        return
    print(f"{summary}; routing follows at once, stored documents do not move")
    out.print_topology(topology)


# --- the parser ------------------------------------------------------------


def global_options(subcommand: bool, json_help: str = JSON_HELP) -> argparse.ArgumentParser:
    """--address and --json, for the top level and again for each command.

    On a command their defaults are SUPPRESS, so a value given before the
    command's name is kept unless it is given again after it.
    """
    unset: Any = argparse.SUPPRESS if subcommand else None
    options = argparse.ArgumentParser(add_help=False)
    group = options.add_argument_group("global options (before or after the command)")
    group.add_argument(
        "--address",
        default=unset,
        metavar="HOST:PORT",
        help=f"the coordinator (default: ${ADDRESS_ENV}, else {DEFAULT_ADDRESS})",
    )
    group.add_argument(
        "--json",
        action="store_true",
        default=argparse.SUPPRESS if subcommand else False,
        help=json_help,
    )
    return options


def _command(
    commands: Any, name: str, help_text: str, *, client: bool = True
) -> argparse.ArgumentParser:
    """A command's parser; `client` commands call a coordinator, so take the global options."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name,
        help=help_text,
        description=help_text,
        parents=[global_options(subcommand=True)] if client else [],
        formatter_class=HelpFormatter,
        epilog=ENVIRONMENT,
    )
    return parser


def _add_collection_commands(commands: Any) -> None:
    create = _command(commands, "create", "create a collection")
    create.add_argument("name", help="1-63 letters, digits, _ or -")
    create.add_argument(
        "--dimension", type=int, default=0, help="vector dimension (0: the model's)"
    )
    create.add_argument(
        "--metric", choices=["cosine", "l2", "ip"], default="cosine", help="distance metric"
    )
    create.add_argument(
        "--model", default="",
        help=f"embedding model for text, e.g. {DEFAULT_MODEL} (default: none)",
    )  # fmt: skip
    create.add_argument("--m", type=int, default=0, help="HNSW M (0: the server's)")
    create.add_argument(
        "--ef-construction", type=int, default=0, help="HNSW ef_construction (0: the server's)"
    )
    create.add_argument("--ef", type=int, default=0, help="default search ef (0: the server's)")
    create.add_argument(
        "--partitions", type=int, default=0, help="partitions per shard group (0: the server's)"
    )
    keyword = create.add_argument_group(
        "keyword index (BM25 of the texts for keyword and hybrid search and --where-document)"
    )
    keyword.add_argument(
        "--no-keyword",
        action="store_true",
        help="no keyword index: vector search only (default: a keyword index)",
    )
    keyword.add_argument(
        "--keyword-language",
        metavar="LANGUAGE",
        help="Snowball stemmer and stop-word language: english, german, french, ..."
        " (default: english)",
    )
    keyword.add_argument(
        "--no-stemming",
        action="store_true",
        help="index words as they are (default: their Snowball stems)",
    )
    keyword.add_argument(
        "--no-stop-words",
        action="store_true",
        help="index stop words too (default: dropped where the language has a list)",
    )
    keyword.add_argument(
        "--k1", type=float, help="BM25 term frequency saturation, 0 to 10 (default: 1.2)"
    )
    keyword.add_argument(
        "--b", type=float, help="BM25 document length normalization, 0 to 1 (default: 0.75)"
    )
    create.set_defaults(run=cmd_create)

    _command(commands, "list", "list collections").set_defaults(run=cmd_list)
    for name, handler, text in [
        ("info", cmd_info, "show a collection"),
        ("drop", cmd_drop, "delete a collection and its documents"),
    ]:
        sub = _command(commands, name, text)
        sub.add_argument("name", help="the collection")
        sub.set_defaults(run=handler)


def _add_document_commands(commands: Any) -> None:
    imp = _command(commands, "import", "upsert documents from a JSONL file")
    imp.add_argument("collection", help="the collection")
    imp.add_argument("file", help='lines of {"id", "vector"?, "text"?, "metadata"?}')
    imp.add_argument("--batch-size", type=int, default=256, help="documents per Upsert call")
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    imp.set_defaults(run=cmd_import)

    search = _command(
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
    search.add_argument("-k", type=int, default=10, help="hits to return")
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

    get = _command(commands, "get", "get documents by id")
    get.add_argument("collection", help="the collection")
    get.add_argument("ids", nargs="+", help="document ids")
    get.set_defaults(run=cmd_get)

    delete = _command(commands, "delete", "delete documents by id or by --where / --where-document")
    delete.add_argument("collection", help="the collection")
    delete.add_argument(
        "ids", nargs="*", help="document ids (or give --where and/or --where-document)"
    )
    delete.add_argument("--where", help=WHERE_HELP)
    delete.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
    delete.set_defaults(run=cmd_delete)

    for name, handler, text in [
        ("count", cmd_count, "count documents (matching --where and --where-document)"),
        (
            "scroll",
            cmd_scroll,
            "print every document (matching --where and --where-document), one per line;"
            " with --json as JSON Lines, the format `shoal import` reads",
        ),
    ]:
        sub = _command(commands, name, text)
        sub.add_argument("collection", help="the collection")
        sub.add_argument("--where", help=WHERE_HELP)
        sub.add_argument("--where-document", help=WHERE_DOCUMENT_HELP)
        sub.set_defaults(run=handler)


def _add_cluster_commands(commands: Any) -> None:
    _command(commands, "cluster", "shard groups, replicas, health, document counts").set_defaults(
        run=cmd_cluster
    )
    verify = _command(
        commands,
        "verify",
        "compare the replicas of every shard group (exit 2: they differ or one is down)",
    )
    verify.add_argument("--collection", help="only this collection (default: all)")
    verify.add_argument(
        "--repair", action="store_true", help="copy the newest version to replicas behind"
    )
    verify.add_argument("--timeout", type=float, default=300.0, help="seconds per collection")
    verify.set_defaults(run=cmd_verify)
    _add_topology_commands(commands)
    loadtest.add_parser(
        commands,
        parents=[global_options(subcommand=True, json_help=loadtest.JSON_HELP)],
        epilog=ENVIRONMENT,
    )


def _add_topology_commands(commands: Any) -> None:
    topology = _command(
        commands,
        "topology",
        "show or change the partition -> shard group -> replica map (in etcd)",
    )
    actions = topology.add_subparsers(
        dest="topology_command", required=True, metavar="ACTION", help="show, set or move"
    )
    _command(actions, "show", "the topology the coordinator routes with").set_defaults(
        run=cmd_topology_show
    )
    put = _command(
        actions,
        "set",
        "store a new topology (groups, replicas, partition_groups) from a JSON file;"
        " fails if the topology changed since the version it was edited from",
    )
    put.add_argument("file", help="JSON as `shoal topology show --json` prints it")
    put.add_argument(
        "--expected-version",
        type=int,
        help="the version the change is made from (default: the file's version)",
    )
    put.set_defaults(run=cmd_topology_set)
    move = _command(
        actions, "move", "route a partition (of every collection) to another shard group"
    )
    move.add_argument("partition", type=int, help="the partition number")
    move.add_argument("group", type=int, help="the shard group that owns it from now on")
    move.set_defaults(run=cmd_topology_move)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shoal",
        description=__doc__,
        parents=[global_options(subcommand=False)],
        formatter_class=HelpFormatter,
        epilog=ENVIRONMENT,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    up = _command(commands, "up", "run a local cluster until Ctrl-C", client=False)
    up.add_argument("--data-dir", default="shoal-data", help="where all data, logs live")
    up.add_argument("--groups", type=int, default=2, help="shard groups")
    up.add_argument("--replicas", type=int, default=2, help="replicas per shard group")
    up.add_argument("--host", default="127.0.0.1", help="the address every service binds")
    ports = up.add_mutually_exclusive_group()
    ports.add_argument("--port", type=int, default=50051, help="coordinator port")
    ports.add_argument(
        "--base-port", type=int,
        help="fixed ports for every service: coordinator BASE, embedder BASE+1, shards"
        " BASE+2... group by group (default: the coordinator --port, the rest any free port)",
    )  # fmt: skip
    up.add_argument(
        "--embedder-threads", type=positive_int, default=LOCAL_EMBEDDER_THREADS,
        help="torch threads for the embedder (default %(default)s: it shares the cores with"
        " the shards)",
    )  # fmt: skip
    up.add_argument("--model", default=DEFAULT_MODEL, help="embedder model")
    up.add_argument("--demo", action="store_true", help="load the demo collection")
    up.add_argument(
        "--metrics-port-base", type=int, default=0,
        help="Prometheus /metrics on consecutive ports from here: coordinator, embedder,"
        " shards (0: off)",
    )  # fmt: skip
    up.set_defaults(run=cmd_up)

    _add_collection_commands(commands)
    _add_document_commands(commands)
    _add_cluster_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    try:
        args.run(args)
    except ShoalError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        raise SystemExit(1) from None
    except BrokenPipeError:  # `shoal scroll ... | head`: the reader has what it wanted
        sys.stderr.close()
