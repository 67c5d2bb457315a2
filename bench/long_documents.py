"""The long-document set: Debian package descriptions joined into documents of 8.

Built deterministically from a Debian set (tests/datasets, bench/datasets): the
packages grouped by `metadata.section`, each section in id order, cut into
documents of 8 consecutive packages (a section's last document may hold fewer);
a document's text is its packages' long descriptions joined by blank lines, its
id the section and the group's number. A query (a package's short description)
is answered by the document holding its package. Most documents run well past
the 256 tokens all-MiniLM-L6-v2 reads, so without chunking their later packages
can never be found.
"""

from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

PACKAGES_PER_DOCUMENT = 8


@dataclass(frozen=True)
class LongDocuments:
    documents: list[dict[str, Any]]  # id, text, metadata (section, packages)
    document_of: dict[str, str]  # package id -> the long document holding it


def build(
    packages: Sequence[Mapping[str, Any]], size: int = PACKAGES_PER_DOCUMENT
) -> LongDocuments:
    by_section: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
    for package in packages:
        by_section[str(package["metadata"]["section"])].append(package)
    documents: list[dict[str, Any]] = []
    document_of: dict[str, str] = {}
    for section in sorted(by_section):
        members = sorted(by_section[section], key=lambda package: str(package["id"]))
        for number, start in enumerate(range(0, len(members), size)):
            group = members[start : start + size]
            doc_id = f"{section}-{number:04d}"
            documents.append(
                {
                    "id": doc_id,
                    "text": "\n\n".join(str(package["text"]) for package in group),
                    "metadata": {"section": section, "packages": len(group)},
                }
            )
            for package in group:
                document_of[str(package["id"])] = doc_id
    return LongDocuments(documents, document_of)


def relevant_documents(queries: Sequence[Mapping[str, Any]], long: LongDocuments) -> list[set[str]]:
    """Per query, the long documents holding its relevant packages."""
    return [
        {long.document_of[package] for package in query["relevant"] if package in long.document_of}
        for query in queries
    ]


def recall_and_mrr(
    ranked: Sequence[Sequence[str]], relevant: Sequence[set[str]], k: int
) -> tuple[float, float]:
    """recall@k (a relevant document in the top k) and MRR@k over the queries."""
    hits = 0
    reciprocal = 0.0
    for ids, wanted in zip(ranked, relevant, strict=True):
        for rank, doc_id in enumerate(ids[:k], 1):
            if doc_id in wanted:
                hits += 1
                reciprocal += 1 / rank
                break
    return hits / len(relevant), reciprocal / len(relevant)
