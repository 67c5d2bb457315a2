"""The load-test data every clone has: the demo collection's documents with their vectors.

`python -m loadtest.generate` with no --data reads the 1,000 Debian package
descriptions of the demo collection (shoal/data/debian-sample.jsonl, the file
`shoal up --demo` loads) and, from loadtest/sample/, their all-MiniLM-L6-v2
vectors and the queries whose relevant package is among them, with theirs. So a
load test needs neither the shared data sets nor the model.

The vectors are stored as float16 (unit-length MiniLM vectors lose about 1e-3
of a score that way), which halves what the repository carries; the generator
sends them as float32. The files were cut from a full data set with

    python -m loadtest.sample --source ../shared/data/debian-dev

which keeps the rows of the demo's documents (in the demo file's order) and the
queries that point at them.
"""

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

SAMPLE_DIR = Path(__file__).resolve().parent / "sample"
DOCUMENT_VECTORS = "corpus_emb.npy"
QUERIES = "queries.jsonl"
QUERY_VECTORS = "queries_emb.npy"
STORED_DTYPE = np.float16


class DatasetError(Exception):
    """A data set that cannot be read; the message says which file and what it needs."""


@dataclass(frozen=True)
class Dataset:
    documents: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    document_vectors: npt.NDArray[np.float32]
    query_vectors: npt.NDArray[np.float32]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    try:
        with path.open() as lines:
            rows = []
            for number, line in enumerate(lines, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as error:
                        raise DatasetError(f"{path}:{number}: not JSON ({error.msg})") from None
            return rows
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror}") from None


def read_vectors(path: Path) -> npt.NDArray[np.float32]:
    try:
        vectors = np.load(path, allow_pickle=False)
    except OSError as error:
        raise DatasetError(f"{path}: {error.strerror or error}") from None
    except ValueError as error:
        raise DatasetError(f"{path}: not a .npy array ({error})") from None
    if vectors.ndim != 2:
        raise DatasetError(f"{path}: wants a 2-d array (rows x dimension), not {vectors.shape}")
    return np.asarray(vectors, dtype=np.float32)


def _matched(
    documents: list[dict[str, Any]],
    document_vectors: npt.NDArray[np.float32],
    queries: list[dict[str, Any]],
    query_vectors: npt.NDArray[np.float32],
    origin: str,
) -> Dataset:
    if len(documents) != len(document_vectors) or len(queries) != len(query_vectors):
        raise DatasetError(
            f"{origin}: the .npy rows ({len(document_vectors)}, {len(query_vectors)}) do not "
            f"match the documents and queries ({len(documents)}, {len(queries)})"
        )
    return Dataset(documents, queries, document_vectors, query_vectors)


def load_directory(directory: Path) -> Dataset:
    """A data set in the shared sets' layout: corpus.jsonl, queries.jsonl and their .npy."""
    if not directory.is_dir():
        raise DatasetError(
            f"{directory}: no such directory; a data set is a directory holding corpus.jsonl, "
            "queries.jsonl, corpus_emb.npy and queries_emb.npy"
        )
    return _matched(
        read_jsonl(directory / "corpus.jsonl"),
        read_vectors(directory / DOCUMENT_VECTORS),
        read_jsonl(directory / QUERIES),
        read_vectors(directory / QUERY_VECTORS),
        str(directory),
    )


def demo_documents() -> list[dict[str, Any]]:
    """The demo collection's documents, from the `shoal` package (as `shoal up --demo`)."""
    with resources.as_file(resources.files("shoal") / "data" / "debian-sample.jsonl") as path:
        return read_jsonl(path)


def load_sample(directory: Path = SAMPLE_DIR) -> Dataset:
    """The demo documents with the vectors and queries kept in loadtest/sample/."""
    return _matched(
        demo_documents(),
        read_vectors(directory / DOCUMENT_VECTORS),
        read_jsonl(directory / QUERIES),
        read_vectors(directory / QUERY_VECTORS),
        f"the demo sample ({directory})",
    )


def cut_sample(source: Dataset, demo: list[dict[str, Any]]) -> Dataset:
    """`source` narrowed to the demo's documents (in the demo's order) and their queries."""
    rows = {document["id"]: row for row, document in enumerate(source.documents)}
    missing = [document["id"] for document in demo if document["id"] not in rows]
    if missing:
        raise DatasetError(f"the source lacks {len(missing)} demo documents, e.g. {missing[0]!r}")
    order = [rows[document["id"]] for document in demo]
    demo_ids = {document["id"] for document in demo}
    kept = [
        row for row, query in enumerate(source.queries) if set(query.get("relevant", ())) & demo_ids
    ]
    return Dataset(
        documents=[source.documents[row] for row in order],
        queries=[source.queries[row] for row in kept],
        document_vectors=source.document_vectors[order],
        query_vectors=source.query_vectors[kept],
    )


def write_sample(sample: Dataset, directory: Path = SAMPLE_DIR) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.save(directory / DOCUMENT_VECTORS, sample.document_vectors.astype(STORED_DTYPE))
    np.save(directory / QUERY_VECTORS, sample.query_vectors.astype(STORED_DTYPE))
    with (directory / QUERIES).open("w") as out:
        for query in sample.queries:
            out.write(json.dumps(query) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m loadtest.sample",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--source", required=True, type=Path, help="a full data set, e.g. ../shared/data/debian-dev"
    )
    parser.add_argument(
        "--out", type=Path, default=SAMPLE_DIR, help="where to write (default: %(default)s)"
    )
    args = parser.parse_args(argv)
    try:
        sample = cut_sample(load_directory(args.source), demo_documents())
    except DatasetError as error:
        raise SystemExit(f"error: {error}") from None
    write_sample(sample, args.out)
    print(
        f"{args.out}: vectors of {len(sample.documents)} documents, "
        f"{len(sample.queries)} queries with theirs"
    )


if __name__ == "__main__":
    main()
