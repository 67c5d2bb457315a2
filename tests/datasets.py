"""The shared test data (Debian package descriptions with MiniLM embeddings)."""

import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SHOAL_TEST_DATA", REPO.parent / "shared" / "data"))


@dataclass(frozen=True)
class Dataset:
    documents: list[dict[str, Any]]
    queries: list[dict[str, Any]]
    document_vectors: npt.NDArray[np.float32]
    query_vectors: npt.NDArray[np.float32]
    metrics: dict[str, float]

    @property
    def ids(self) -> list[str]:
        return [document["id"] for document in self.documents]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open() as lines:
        return [json.loads(line) for line in lines if line.strip()]


@cache
def load(name: str = "debian-dev") -> Dataset:
    root = DATA_ROOT / name
    return Dataset(
        documents=_jsonl(root / "corpus.jsonl"),
        queries=_jsonl(root / "queries.jsonl"),
        document_vectors=np.load(root / "corpus_emb.npy"),
        query_vectors=np.load(root / "queries_emb.npy"),
        metrics=json.loads((root / "metrics.json").read_text()),
    )


def available(name: str = "debian-dev") -> bool:
    return (DATA_ROOT / name / "corpus.jsonl").exists()


def exact_top_k(
    documents: npt.NDArray[np.float32], queries: npt.NDArray[np.float32], k: int
) -> npt.NDArray[np.int64]:
    """Row indexes of the k most cosine-similar documents per query (ties: lower row)."""
    docs = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    qs = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    scores = qs @ docs.T
    return np.argsort(-scores, axis=1, kind="stable")[:, :k]


def with_vectors(data: Dataset, start: int = 0, stop: int | None = None) -> list[dict[str, Any]]:
    """Documents as SDK dicts with their MiniLM vectors, text and metadata."""
    rows = range(len(data.documents))[start:stop]
    return [
        {
            "id": data.documents[row]["id"],
            "vector": data.document_vectors[row],
            "text": data.documents[row]["text"],
            "metadata": data.documents[row]["metadata"],
        }
        for row in rows
    ]
