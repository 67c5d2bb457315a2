"""Write the request data the ghz configs in loadtest/ghz/ send, from real documents.

    python -m loadtest.generate
    python -m loadtest.generate --data ../shared/data/debian-dev

With no --data it uses the demo sample every clone has: the demo collection's
1,000 Debian package descriptions with their MiniLM vectors and 466 queries
(loadtest/sample.py says how it was cut). --data reads a data set directory
instead (corpus.jsonl, queries.jsonl, corpus_emb.npy, queries_emb.npy: the
layout of the shared Debian sets). It writes, into --out (default
loadtest/data, which git ignores):

    create_collection.json  CreateCollection for the collection (--model decides
                            whether it can embed text queries)
    upsert.json             the corpus as UpsertRequests of --upsert-batch documents,
                            vectors as float32 bytes, with text and metadata
    search_vector.json      one SearchRequest per query vector
    search_text.json        one SearchRequest per query text (embedded server-side)
    search_batch.json       SearchBatchRequests of --batch query vectors each

Each data file is a JSON list; ghz (and `shoal loadtest`) send its items
round-robin. Fields use the proto names, which ghz and protobuf's JSON parser
both accept; `bytes` fields are base64, as proto JSON requires.
"""

import argparse
import base64
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from loadtest.sample import Dataset, DatasetError, load_directory, load_sample

DEFAULT_COLLECTION = "debian"
DEFAULT_MODEL = "all-MiniLM-L6-v2"


def vector_bytes(vector: npt.NDArray[np.float32]) -> str:
    """A vector as proto JSON `bytes`: base64 of little-endian float32."""
    return base64.b64encode(np.asarray(vector, dtype="<f4").tobytes()).decode("ascii")


def metadata_value(value: Any) -> dict[str, Any]:
    """A JSON value as a shoal.v1.Value in proto JSON."""
    if isinstance(value, bool):
        return {"bool_value": value}
    if isinstance(value, int):
        return {"int_value": str(value)}  # int64 travels as a string in proto JSON
    if isinstance(value, float):
        return {"float_value": value}
    if isinstance(value, str):
        return {"string_value": value}
    if isinstance(value, list):
        if all(isinstance(v, str) for v in value):
            return {"string_list": {"values": value}}
        if all(isinstance(v, bool) for v in value):
            return {"bool_list": {"values": value}}
        if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return {"int_list": {"values": [str(v) for v in value]}}
        if all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            return {"float_list": {"values": value}}
    raise ValueError(f"metadata value {value!r} has no shoal.v1.Value form")


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def create_collection(collection: str, dimension: int, model: str) -> dict[str, Any]:
    config: dict[str, Any] = {"name": collection, "dimension": dimension, "metric": "METRIC_COSINE"}
    if model:
        config["embedding_model"] = model
    return {"config": config}


def upserts(
    collection: str,
    documents: list[dict[str, Any]],
    vectors: npt.NDArray[np.float32],
    batch: int,
) -> list[dict[str, Any]]:
    rows = [
        {
            "id": document["id"],
            "vector_f32": vector_bytes(vector),
            "text": document["text"],
            "metadata": {k: metadata_value(v) for k, v in document.get("metadata", {}).items()},
        }
        for document, vector in zip(documents, vectors, strict=True)
    ]
    return [
        {
            "collection": collection,
            "documents": list(chunk),
            "consistency": "WRITE_CONSISTENCY_QUORUM",
        }
        for chunk in _chunks(rows, batch)
    ]


def vector_searches(
    collection: str, vectors: npt.NDArray[np.float32], k: int
) -> list[dict[str, Any]]:
    return [
        {"collection": collection, "query": {"vector_f32": vector_bytes(v)}, "k": k}
        for v in vectors
    ]


def text_searches(collection: str, queries: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    return [{"collection": collection, "query": {"text": q["text"]}, "k": k} for q in queries]


def batch_searches(
    collection: str, vectors: npt.NDArray[np.float32], k: int, batch: int
) -> list[dict[str, Any]]:
    return [
        {
            "collection": collection,
            "queries": [{"vector_f32": vector_bytes(v)} for v in chunk],
            "k": k,
        }
        for chunk in _chunks(list(vectors), batch)
    ]


def generate(args: argparse.Namespace) -> dict[str, int]:
    """Write every data file; returns how many requests each holds.

    Raises DatasetError when the data set cannot be read.
    """
    dataset: Dataset = load_directory(Path(args.data)) if args.data else load_sample()
    documents, queries = dataset.documents, dataset.queries
    document_vectors, query_vectors = dataset.document_vectors, dataset.query_vectors
    if args.documents:
        documents, document_vectors = (
            documents[: args.documents],
            document_vectors[: args.documents],
        )
    if args.queries:
        queries, query_vectors = queries[: args.queries], query_vectors[: args.queries]

    files: dict[str, Any] = {
        "create_collection.json": create_collection(
            args.collection, int(document_vectors.shape[1]), args.model
        ),
        "upsert.json": upserts(args.collection, documents, document_vectors, args.upsert_batch),
        "search_vector.json": vector_searches(args.collection, query_vectors, args.k),
        "search_text.json": text_searches(args.collection, queries, args.k),
        "search_batch.json": batch_searches(args.collection, query_vectors, args.k, args.batch),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, content in files.items():
        (out / name).write_text(json.dumps(content) + "\n")
        counts[name] = len(content) if isinstance(content, list) else 1
    return counts


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.generate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--data",
        help="a data set directory, e.g. ../shared/data/debian-dev "
        "(default: the demo sample kept in the repository)",
    )
    parser.add_argument(
        "--out", default="loadtest/data", help="where to write (default %(default)s)"
    )
    parser.add_argument(
        "--collection", default=DEFAULT_COLLECTION, help="collection name (default %(default)s)"
    )
    parser.add_argument(
        "--model",
        default=DEFAULT_MODEL,
        help="the collection's embedding model ('' for vectors only; hash-384 for tests; "
        "default %(default)s)",
    )
    parser.add_argument("-k", type=int, default=10, help="hits per query (default %(default)s)")
    parser.add_argument(
        "--batch", type=int, default=16, help="queries per SearchBatch (default %(default)s)"
    )
    parser.add_argument(
        "--upsert-batch", type=int, default=100, help="documents per Upsert (default %(default)s)"
    )
    parser.add_argument("--documents", type=int, default=0, help="use only the first N (0: all)")
    parser.add_argument("--queries", type=int, default=0, help="use only the first N (0: all)")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        counts = generate(args)
    except DatasetError as error:
        raise SystemExit(f"error: {error}") from None
    except OSError as error:  # writing --out
        raise SystemExit(f"error: {error.filename}: {error.strerror}") from None
    for name, count in counts.items():
        print(f"{Path(args.out) / name}: {count} request{'s' if count != 1 else ''}")


if __name__ == "__main__":
    main()
