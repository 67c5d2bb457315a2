"""`shoal create | list | info | drop`: collections."""

import argparse
from typing import Any

from shoal.cli import output as out
from shoal.cli.local_cluster import DEFAULT_MODEL
from shoal.cli.options import command, connect, print_json
from shoal.sdk.results import Collection


def collection_dict(collection: Collection) -> dict[str, Any]:
    values = {key: value for key, value in collection.__dict__.items() if value is not None}
    values["keyword"] = collection.keyword.to_dict()
    values["chunking"] = collection.chunking.to_dict()
    return values


def cmd_create(args: argparse.Namespace) -> None:
    with connect(args) as client:
        collection = client.create_collection(
            args.name,
            dimension=args.dimension,
            metric=args.metric,
            embedding_model=args.model,
            hnsw_m=args.m,
            hnsw_ef_construction=args.ef_construction,
            hnsw_ef=args.ef,
            partitions=args.partitions,
            keyword=keyword_settings(args),
            chunking=chunking_settings(args),
        )
    if args.json:
        print_json(collection_dict(collection))
    else:
        print(f"collection {collection.name!r}:")
        out.print_collection(collection)


def keyword_settings(args: argparse.Namespace) -> bool | dict[str, Any]:
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


def chunking_settings(args: argparse.Namespace) -> bool | dict[str, int]:
    sizes = {
        name: value
        for name, value in (
            ("chunk_tokens", args.chunk_tokens),
            ("overlap_tokens", args.overlap_tokens),
        )
        if value is not None
    }
    if sizes and not args.chunking:
        raise SystemExit("error: --chunk-tokens and --overlap-tokens need --chunking")
    return sizes or bool(args.chunking)


def cmd_list(args: argparse.Namespace) -> None:
    with connect(args) as client:
        collections = client.list_collections()
    if args.json:
        print_json([collection_dict(c) for c in collections])
    else:
        out.print_collections(collections)


def cmd_info(args: argparse.Namespace) -> None:
    with connect(args) as client:
        collection = client.get_collection(args.name)
    if args.json:
        print_json(collection_dict(collection))
    else:
        out.print_collection(collection)


def cmd_drop(args: argparse.Namespace) -> None:
    with connect(args) as client:
        client.delete_collection(args.name)
    if args.json:
        print_json({"collection": args.name, "deleted": True})
    else:
        print(f"deleted collection {args.name!r}")


def add_collection_commands(commands: Any) -> None:
    create = command(commands, "create", "create a collection")
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
    chunking = create.add_argument_group(
        "chunking (long documents: split on ingest, search returns documents by their best chunk)"
    )
    chunking.add_argument(
        "--chunking",
        action="store_true",
        help="split each text into chunks of the model's tokens and embed every chunk"
        " (needs --model)",
    )
    chunking.add_argument(
        "--chunk-tokens",
        type=int,
        help="tokens per chunk at most (default: the length the model was trained on,"
        " 128 less its two special tokens: 126 for all-MiniLM-L6-v2)",
    )
    chunking.add_argument(
        "--overlap-tokens",
        type=int,
        help="tokens neighbouring chunks may share (default: an eighth of a chunk)",
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

    command(commands, "list", "list collections").set_defaults(run=cmd_list)
    for name, handler, text in [
        ("info", cmd_info, "show a collection"),
        ("drop", cmd_drop, "delete a collection and its documents"),
    ]:
        sub = command(commands, name, text)
        sub.add_argument("name", help="the collection")
        sub.set_defaults(run=handler)
