"""The vectors every suite runs on: the real Debian MiniLM sets and generated ones.

The real sets come with their exact top-10 (`gt_top10.npy`). The generated sets
imitate sentence embeddings rather than uniform noise: points scattered around
a thousand cluster centres with an anisotropic (decaying) spectrum, a shared
mean direction and unit length. At 20k points their recall/ef curve under
M=16, ef_construction=200 matches the real debian-20k set within about 0.01, so
the 100k and 1M sets show how costs grow on data that is as hard as real data.
Their ground truth is computed here by exact (numpy) search.
"""

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

REPO = Path(__file__).resolve().parents[1]
DATA_ROOT = Path(os.environ.get("SHOAL_TEST_DATA", REPO.parent / "shared" / "data"))
DIMENSION = 384
K = 10

Matrix = npt.NDArray[np.float32]
Rows = npt.NDArray[np.int64]

#: Generated sets: the name to ask for and its document count.
GENERATED = {"gen-100k": 100_000, "gen-1m": 1_000_000}
REAL = ("debian-dev", "debian-20k")


@dataclass(frozen=True)
class VectorSet:
    name: str
    documents: Matrix  # (n, dimension), unit length
    queries: Matrix  # (q, dimension), unit length
    truth: Rows  # (q, K): the exact top-K document rows per query
    source: str  # one line for the report

    @property
    def size(self) -> int:
        return len(self.documents)

    def head(self, queries: int) -> "VectorSet":
        """The same documents with only the first `queries` queries."""
        return VectorSet(
            self.name, self.documents, self.queries[:queries], self.truth[:queries], self.source
        )


def exact_top_k(documents: Matrix, queries: Matrix, k: int = K, chunk: int = 0) -> Rows:
    """Rows of the k most cosine-similar documents per query, best first.

    Works in query chunks of about 2**26 scores (256 MB), so a 1M-document set
    does not need a (queries x documents) matrix at once.
    """
    chunk = chunk or max(1, min(256, 2**26 // max(1, len(documents))))
    docs = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    result = np.empty((len(queries), k), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        block = queries[start : start + chunk]
        block = block / np.linalg.norm(block, axis=1, keepdims=True)
        scores = block @ docs.T
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top_scores = np.take_along_axis(scores, top, axis=1)
        order = np.lexsort((top, -top_scores), axis=-1)  # by score, ties by row
        result[start : start + len(block)] = np.take_along_axis(top, order, axis=1)
    return result


def generate(n: int, n_queries: int, seed: int = 0, clusters: int = 1024) -> tuple[Matrix, Matrix]:
    """Clustered, anisotropic, unit-length vectors: documents and queries of one distribution."""
    rng = np.random.default_rng(seed)
    scales = (1.0 / np.arange(1, DIMENSION + 1) ** 0.45).astype(np.float32)
    basis = np.linalg.qr(rng.standard_normal((DIMENSION, DIMENSION)))[0].astype(np.float32)
    centres = rng.standard_normal((clusters, DIMENSION)).astype(np.float32) * scales
    mean = rng.standard_normal(DIMENSION).astype(np.float32)
    mean *= 0.35 / np.linalg.norm(mean)

    def draw(count: int, stream: np.random.Generator) -> Matrix:
        out = np.empty((count, DIMENSION), dtype=np.float32)
        for start in range(0, count, 65_536):
            m = min(65_536, count - start)
            labels = stream.integers(0, clusters, m)
            noise = stream.standard_normal((m, DIMENSION), dtype=np.float32) * scales
            points = (centres[labels] + noise) @ basis.T
            points /= np.linalg.norm(points, axis=1, keepdims=True)
            points += mean
            points /= np.linalg.norm(points, axis=1, keepdims=True)
            out[start : start + m] = points
        return out

    return draw(n, np.random.default_rng(seed + 1)), draw(
        n_queries, np.random.default_rng(seed + 2)
    )


def load_real(name: str) -> VectorSet:
    root = DATA_ROOT / name
    documents = np.load(root / "corpus_emb.npy").astype(np.float32, copy=False)
    return VectorSet(
        name,
        documents,
        np.load(root / "queries_emb.npy").astype(np.float32, copy=False),
        np.load(root / "gt_top10.npy").astype(np.int64),
        f"{len(documents):,} Debian package descriptions, all-MiniLM-L6-v2 (../shared/data/{name})",
    )


def load(name: str, n_queries: int) -> VectorSet:
    """A set by name (debian-dev, debian-20k, gen-100k, gen-1m) with `n_queries` queries."""
    if name in REAL:
        return load_real(name).head(n_queries)
    if name in GENERATED:
        documents, queries = generate(GENERATED[name], n_queries)
        return VectorSet(
            name,
            documents,
            queries,
            exact_top_k(documents, queries),
            f"{len(documents):,} generated clustered vectors (1,024 anisotropic gaussian"
            " clusters, unit length, 384-d)",
        )
    raise ValueError(f"unknown data set {name!r}; use one of {[*REAL, *GENERATED]}")


def read_jsonl(path: Path, limit: int = 0) -> list[dict[str, Any]]:
    """The first `limit` rows of a JSON-lines file (every row when 0), blank lines skipped."""
    rows = []
    with path.open() as lines:
        for line in lines:
            if line.strip():
                rows.append(json.loads(line))
            if len(rows) == limit:
                break
    return rows


def query_texts(name: str, count: int) -> list[str]:
    """The first `count` query texts of a real set (short descriptions), for the embedder."""
    return [str(row["text"]) for row in read_jsonl(DATA_ROOT / name / "queries.jsonl", count)]
