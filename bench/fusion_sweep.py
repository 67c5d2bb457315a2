"""`python -m bench.fusion_sweep`: textbook RRF on a real set, per candidate depth and k.

What reciprocal rank fusion can reach on this data whatever a service does: the
exact vector ranking (cosine over every document's MiniLM vector) and the
reference BM25 ranking (`bm25s`, lucene, over Shoal's tokens: Snowball stemming
and stop words, the collection defaults) fused as the RRF paper defines it,
score = sum of 1 / (k + rank) over the lists a document is in, ties to the
lower id as in Shoal. Printed: MRR@10 on the set's known-item queries for each
candidate depth and k, next to the two rankings alone. Shoal's own RRF matches
this within 0.01 at its defaults (k 60, depth 2k + 60 = 80;
`tests/integration/test_hybrid_quality.py`).

These are the queries the hybrid bar is measured on: read the table, do not
pick defaults from it.

    python -m bench.fusion_sweep
    python -m bench.fusion_sweep --dataset debian-dev --depths 10,80 --ks 60
"""

import argparse
from collections.abc import Sequence

import bm25s
import numpy as np

from bench import datasets
from shoal.keyword import KeywordSettings, tokenizer_for

K = 10


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def mrr(found: Sequence[Sequence[str]], relevant: Sequence[set[str]]) -> float:
    """Mean reciprocal rank of each query's first relevant id within its first K."""
    total = 0.0
    for ids, wanted in zip(found, relevant, strict=True):
        for rank, doc_id in enumerate(ids[:K], 1):
            if doc_id in wanted:
                total += 1.0 / rank
                break
    return total / len(found)


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], depth: int, k: int) -> list[str]:
    """One query's K best ids by reciprocal rank fusion of the first `depth` of each
    ranking, ties to the lower id."""
    scores: dict[str, float] = {}
    for ranking in rankings:
        for rank, doc_id in enumerate(ranking[:depth], 1):
            scores[doc_id] = scores.get(doc_id, 0.0) + 1.0 / (k + rank)
    return sorted(scores, key=lambda doc_id: (-scores[doc_id], doc_id))[:K]


def exact_vector_rankings(
    ids: Sequence[str], documents: datasets.Matrix, queries: datasets.Matrix, depth: int
) -> list[list[str]]:
    """Each query's first `depth` ids by exact cosine similarity, ties to the lower row."""
    top = datasets.exact_top_k(documents, queries, depth)
    return [[ids[row] for row in rows] for rows in top.tolist()]


def reference_bm25_rankings(
    ids: Sequence[str], texts: Sequence[str], queries: Sequence[str], depth: int
) -> list[list[str]]:
    """Each query's first `depth` ids by reference BM25 (bm25s, lucene, k1 1.2, b 0.75,
    over Shoal's default tokens), documents that match only."""
    tokenizer = tokenizer_for(KeywordSettings())
    index = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
    index.index([tokenizer.terms(text) for text in texts], show_progress=False)
    rankings = []
    for query in queries:
        scores = index.get_scores(tokenizer.terms(query))
        top = np.argsort(-scores, kind="stable")[:depth]
        rankings.append([ids[row] for row in top.tolist() if scores[row] > 0])
    return rankings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", default="debian-20k", choices=datasets.REAL)
    parser.add_argument("--depths", type=_ints, default=[10, 20, 50, 80, 200, 1000])
    parser.add_argument("--ks", type=_ints, default=[60])
    args = parser.parse_args(argv)
    root = datasets.DATA_ROOT / args.dataset
    corpus = datasets.read_jsonl(root / "corpus.jsonl")
    queries = datasets.read_jsonl(root / "queries.jsonl")
    ids = [str(document["id"]) for document in corpus]
    relevant = [set(map(str, query["relevant"])) for query in queries]
    vectors = datasets.load_real(args.dataset)
    depth = max(args.depths)
    vector = exact_vector_rankings(ids, vectors.documents, vectors.queries, depth)
    keyword = reference_bm25_rankings(
        ids,
        [str(document["text"]) for document in corpus],
        [str(query["text"]) for query in queries],
        depth,
    )
    print(f"MRR@10 on {args.dataset} ({len(queries):,} known-item queries)\n")
    print(
        f"exact vector {mrr(vector, relevant):.4f}, reference BM25 {mrr(keyword, relevant):.4f}\n"
    )
    pairs = list(zip(vector, keyword, strict=True))
    print("| RRF k | " + " | ".join(f"depth {d}" for d in args.depths) + " |")
    print("|---:|" + "---:|" * len(args.depths))
    for k in args.ks:
        fused = [[reciprocal_rank_fusion(pair, d, k) for pair in pairs] for d in args.depths]
        print(f"| {k} | " + " | ".join(f"{mrr(found, relevant):.4f}" for found in fused) + " |")
    depths = ",".join(map(str, args.depths))
    ks = ",".join(map(str, args.ks))
    print(
        f"\nReproduce: `python -m bench.fusion_sweep --dataset {args.dataset}"
        f" --depths {depths} --ks {ks}`"
    )


if __name__ == "__main__":
    main()
