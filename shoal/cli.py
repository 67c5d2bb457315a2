"""The `shoal` command: run a local cluster, manage collections, import, search."""

import argparse
import json
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shoal import loadtest
from shoal.client import Client, Collection, DocumentLike, SearchResult
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
from shoal.settings import positive_int

DOCUMENT_KEYS = ("id", "vector", "text", "metadata")
WHERE_HELP = 'a metadata filter as JSON, e.g. \'{"section": "sound", "size": {"$lt": 500}}\''

DEMO_COLLECTION = "demo"
DEMO_QUERY = "a tool to resize photos from the command line"


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, default=str))


def _collection_dict(collection: Collection) -> dict[str, Any]:
    return {key: value for key, value in collection.__dict__.items() if value is not None}


def _read_jsonl(path: Path) -> Iterator[DocumentLike]:
    """Documents from a JSONL file; keys other than id/vector/text/metadata are skipped."""
    with path.open() as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise SystemExit(f"{path}:{number}: not JSON: {error}") from None
            yield {
                key: record[key] for key in ("id", "vector", "text", "metadata") if key in record
            }


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
    total = sum(1 for line in path.open() if line.strip())
    done = 0
    with tqdm(total=total, unit="doc", desc=f"importing into {collection}") as progress:
        for batch in _batches(_read_jsonl(path), batch_size):
            done += client.upsert(collection, batch).count
            progress.update(len(batch))
    return done


def print_hits(result: SearchResult) -> None:
    for rank, hit in enumerate(result.hits, 1):
        snippet = (hit.text or "").replace("\n", " ")[:70]
        extra = f"  {snippet}" if snippet else ""
        print(f"{rank:>3}. {hit.score:7.4f}  {hit.id}{extra}")
    if not result.coverage.complete:
        print(
            f"partial result: {result.coverage.groups_answered} of "
            f"{result.coverage.groups_asked} shard groups answered"
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
    with Client(args.address) as client:
        collection = client.create_collection(
            args.name,
            dimension=args.dimension,
            metric=args.metric,
            embedding_model=args.model,
            hnsw_m=args.m,
            hnsw_ef_construction=args.ef_construction,
            hnsw_ef=args.ef,
            partitions=args.partitions,
        )
    _print_json(_collection_dict(collection))


def cmd_list(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        _print_json([_collection_dict(c) for c in client.list_collections()])


def cmd_info(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        _print_json(_collection_dict(client.get_collection(args.name)))


def cmd_drop(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        client.delete_collection(args.name)
    print(f"deleted collection {args.name!r}")


def cmd_import(args: argparse.Namespace) -> None:
    with Client(args.address, timeout=args.timeout) as client:
        count = import_jsonl(client, args.collection, Path(args.file), args.batch_size)
    print(f"upserted {count} documents into {args.collection!r}")


def _where(text: str | None) -> Where | None:
    """A `--where` JSON object (the SDK checks what it says)."""
    if text is None:
        return None
    try:
        where = json.loads(text)
    except json.JSONDecodeError as error:
        raise SystemExit(f"--where is not JSON: {error}") from None
    if not isinstance(where, dict):
        raise SystemExit("--where must be a JSON object")
    return where


def cmd_search(args: argparse.Namespace) -> None:
    vector = json.loads(args.vector) if args.vector else None
    with Client(args.address) as client:
        result = client.search(
            args.collection,
            vector,
            text=args.text,
            k=args.k,
            ef=args.ef,
            include=["text"],
            where=_where(args.where),
            score_threshold=args.score_threshold,
        )
    print_hits(result)


def cmd_scroll(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        for document in client.scroll(
            args.collection, _where(args.where), include=["metadata", "text"]
        ):
            print(json.dumps(document.__dict__, default=str))


def cmd_get(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        documents = client.get(args.collection, args.ids, include=["metadata", "text"])
    _print_json([document.__dict__ for document in documents])


def cmd_delete(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        result = client.delete(args.collection, args.ids, where=_where(args.where))
    print(f"deleted {result.count} documents")


def cmd_count(args: argparse.Namespace) -> None:
    with Client(args.address) as client:
        print(client.count(args.collection, _where(args.where)))


def cmd_verify(args: argparse.Namespace) -> None:
    """One report per collection; exits 2 when replicas still differ afterwards, or
    some could not be compared (unreachable)."""
    from google.protobuf.json_format import MessageToDict

    with Client(args.address, timeout=args.timeout) as client:
        names = (
            [args.collection]
            if args.collection
            else [collection.name for collection in client.list_collections()]
        )
        reports = {name: client.verify_replicas(name, args.repair) for name in names}
    _print_json(
        {
            name: MessageToDict(report, always_print_fields_with_no_presence=True)
            for name, report in reports.items()
        }
    )
    if any(
        report.differing > report.repaired or any(group.unreachable for group in report.groups)
        for report in reports.values()
    ):
        raise SystemExit(2)


def cmd_cluster(args: argparse.Namespace) -> None:
    from google.protobuf.json_format import MessageToDict

    with Client(args.address) as client:
        info = client.cluster_info()
    _print_json(MessageToDict(info, always_print_fields_with_no_presence=True))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shoal", description=__doc__)
    parser.add_argument(
        "--address",
        default=os.environ.get("SHOAL_ADDRESS", "127.0.0.1:50051"),
        help="coordinator address (env SHOAL_ADDRESS; default %(default)s)",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    up = commands.add_parser("up", help="run a local cluster until Ctrl-C")
    up.add_argument("--data-dir", default="shoal-data", help="where all data, logs live")
    up.add_argument("--groups", type=int, default=2, help="shard groups")
    up.add_argument("--replicas", type=int, default=2, help="replicas per shard group")
    up.add_argument("--host", default="127.0.0.1")
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

    create = commands.add_parser("create", help="create a collection")
    create.add_argument("name")
    create.add_argument("--dimension", type=int, default=0, help="0: the model's")
    create.add_argument("--metric", choices=["cosine", "l2", "ip"], default="cosine")
    create.add_argument("--model", default="", help=f"embedding model, e.g. {DEFAULT_MODEL}")
    create.add_argument("--m", type=int, default=0, help="HNSW M (0: default)")
    create.add_argument("--ef-construction", type=int, default=0)
    create.add_argument("--ef", type=int, default=0, help="default search ef")
    create.add_argument("--partitions", type=int, default=0)
    create.set_defaults(run=cmd_create)

    commands.add_parser("list", help="list collections").set_defaults(run=cmd_list)
    for name, handler, text in [
        ("info", cmd_info, "show a collection"),
        ("drop", cmd_drop, "delete a collection and its documents"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("name")
        sub.set_defaults(run=handler)

    imp = commands.add_parser("import", help="upsert documents from a JSONL file")
    imp.add_argument("collection")
    imp.add_argument("file", help='lines of {"id", "vector"?, "text"?, "metadata"?}')
    imp.add_argument("--batch-size", type=int, default=256)
    imp.add_argument("--timeout", type=float, default=120.0, help="seconds per batch")
    imp.set_defaults(run=cmd_import)

    search = commands.add_parser("search", help="search by text or vector")
    search.add_argument("collection")
    query = search.add_mutually_exclusive_group(required=True)
    query.add_argument("--text")
    query.add_argument("--vector", help="a JSON list of floats")
    search.add_argument("-k", type=int, default=10)
    search.add_argument("--ef", type=int, default=0)
    search.add_argument("--where", help=WHERE_HELP)
    search.add_argument("--score-threshold", type=float, help="drop hits scoring below this")
    search.set_defaults(run=cmd_search)

    get = commands.add_parser("get", help="get documents by id")
    get.add_argument("collection")
    get.add_argument("ids", nargs="+")
    get.set_defaults(run=cmd_get)

    delete = commands.add_parser("delete", help="delete documents by id or by --where")
    delete.add_argument("collection")
    delete.add_argument("ids", nargs="*")
    delete.add_argument("--where", help=WHERE_HELP)
    delete.set_defaults(run=cmd_delete)

    for name, handler, text in [
        ("count", cmd_count, "count documents (matching --where)"),
        ("scroll", cmd_scroll, "print every document (matching --where) as JSON lines"),
    ]:
        sub = commands.add_parser(name, help=text)
        sub.add_argument("collection")
        sub.add_argument("--where", help=WHERE_HELP)
        sub.set_defaults(run=handler)

    commands.add_parser("cluster", help="shard groups, replicas, health").set_defaults(
        run=cmd_cluster
    )

    verify = commands.add_parser(
        "verify",
        help="compare the replicas of every shard group (exit 2: they differ or one is down)",
    )
    verify.add_argument("--collection", help="only this collection (default: all)")
    verify.add_argument(
        "--repair", action="store_true", help="copy the newest version to replicas behind"
    )
    verify.add_argument("--timeout", type=float, default=300.0, help="seconds per collection")
    verify.set_defaults(run=cmd_verify)
    loadtest.add_parser(commands)
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
