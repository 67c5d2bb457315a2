"""`shoal export` -> `shoal import` on a real cluster, in JSONL and Parquet.

A vector-only collection and a text collection (the real keyword index, an
embedding model, vectors that are not the model's) come back under a new name
with the same settings, the same documents bit for bit and the same search
results, vector and keyword; an import into a collection with other settings
and an import of a damaged file are refused with nothing written.
"""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoal import Client
from shoal.cli.app import main as cli
from shoal.cli.local_cluster import LocalCluster
from shoal.sdk.export_format import ExportedSettings, ExportFileError
from shoal.sdk.transfer import export_collection, import_collection
from tests import datasets
from tests.conftest import StartCluster

VECTORS = "vecs"  # vector-only: l2, its own HNSW settings and partitions, no keyword index
TEXTS = "texts"  # texts, metadata, an embedding model, a keyword index with its own k1 and b
DIMENSION = 24
TEXT_DOCUMENTS = 300
QUERIES = 20
K = 10
EF = 400  # searches exact enough on a few hundred documents that both indexes agree


@pytest.fixture(scope="module")
def cluster(start_module_cluster: StartCluster) -> LocalCluster:
    return start_module_cluster(groups=2, replicas=1, model="hash-384")


@pytest.fixture(scope="module")
def client(cluster: LocalCluster) -> Iterator[Client]:
    with Client(cluster.address) as client:
        yield client


def vector_documents() -> list[dict[str, Any]]:
    """Some with metadata, some without; one vector of awkward float32 values."""
    rng = np.random.default_rng(15)
    vectors = rng.standard_normal((240, DIMENSION)).astype(np.float32) * 7
    vectors[0, :3] = np.array([1e-45, -0.0, 1 / 3], dtype=np.float32)
    return [
        {
            "id": f"v{i:04d}",
            "vector": vectors[i],
            "metadata": {"i": i, "x": float(vectors[i, 0]), "odd": bool(i % 2)} if i % 3 else {},
        }
        for i in range(len(vectors))
    ]


@pytest.fixture(scope="module")
def vector_collection(client: Client) -> str:
    client.create_collection(
        VECTORS,
        dimension=DIMENSION,
        metric="l2",
        hnsw_m=8,
        hnsw_ef_construction=100,
        hnsw_ef=50,
        partitions=8,
        keyword=False,
    )
    client.upsert(VECTORS, vector_documents())
    return VECTORS


@pytest.fixture(scope="module")
def text_collection(client: Client) -> str:
    if not datasets.available():
        pytest.skip(f"no test data under {datasets.DATA_ROOT}")
    data = datasets.load()
    client.create_collection(
        TEXTS, embedding_model="hash-384", keyword={"k1": 1.4, "b": 0.7}, partitions=16
    )
    documents = []
    for i, document in enumerate(data.documents[:TEXT_DOCUMENTS]):
        # MiniLM vectors, not the collection model's: an import must not embed again.
        row: dict[str, Any] = {"id": document["id"], "vector": data.document_vectors[i]}
        if i % 10:
            row["text"] = document["text"] if i != 1 else ""  # an empty text is a text
        if i % 7:
            row["metadata"] = document["metadata"]
        documents.append(row)
    for start in range(0, len(documents), 100):
        client.upsert(TEXTS, documents[start : start + 100])
    return TEXTS


def everything(client: Client, collection: str) -> list[tuple[str, bytes, str | None, str]]:
    """Every document as (id, vector bytes, text, metadata as sorted JSON)."""
    return [
        (
            d.id,
            np.asarray(d.vector, dtype="<f4").tobytes(),
            d.text,
            json.dumps(d.metadata, sort_keys=True),
        )
        for d in client.scroll(collection, include=("vector", "text", "metadata"), page_size=97)
    ]


def vector_results(client: Client, collection: str, queries: np.ndarray) -> list[Any]:
    results = client.search_batch(collection, queries, k=K, ef=EF)
    return [[(hit.id, hit.score) for hit in result.hits] for result in results]


def assert_same_collection(client: Client, original: str, copy: str, queries: np.ndarray) -> None:
    before = ExportedSettings.of(client.get_collection(original))
    after = ExportedSettings.of(client.get_collection(copy))
    assert after.name == copy and before.differences(after) == []
    assert client.count(copy) == client.count(original)
    assert everything(client, copy) == everything(client, original)
    expected = vector_results(client, original, queries)
    assert all(len(hits) == K for hits in expected)
    assert vector_results(client, copy, queries) == expected


def run(capsys: pytest.CaptureFixture[str], cluster: LocalCluster, *argv: str) -> str:
    capsys.readouterr()
    cli([*argv, "--address", cluster.address])
    return capsys.readouterr().out


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_vector_only_collection_round_trips(
    cluster: LocalCluster,
    client: Client,
    vector_collection: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kind: str,
) -> None:
    path = tmp_path / f"export.{kind}"
    exported = json.loads(run(capsys, cluster, "export", vector_collection, str(path), "--json"))
    assert exported == {
        "collection": VECTORS,
        "file": str(path),
        "format": kind,
        "documents": 240,
    }
    copy = f"{VECTORS}-{kind}"
    imported = json.loads(run(capsys, cluster, "import", str(path), "--name", copy, "--json"))
    assert imported == {"collection": copy, "upserted": 240, "created": True}
    queries = np.random.default_rng(5).standard_normal((QUERIES, DIMENSION)).astype(np.float32)
    assert_same_collection(client, vector_collection, copy, queries)
    # Again into the copy, which now exists with the same settings: accepted, same documents.
    again = run(capsys, cluster, "import", copy, str(path))
    assert again.endswith(f"upserted 240 documents into {copy!r}\n")
    assert client.count(copy) == 240
    client.delete_collection(copy)


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_a_text_collection_round_trips_without_embedding_again(
    cluster: LocalCluster,
    client: Client,
    text_collection: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    kind: str,
) -> None:
    path = tmp_path / f"export.{kind}"
    result = export_collection(client, text_collection, path, page_size=64)
    assert result.documents == TEXT_DOCUMENTS and result.format == kind
    copy = f"{TEXTS}-{kind}"
    run(capsys, cluster, "import", str(path), "--name", copy)
    data = datasets.load()
    assert_same_collection(client, text_collection, copy, data.query_vectors[:QUERIES])
    documents = everything(client, copy)
    assert {"", None} <= {text for _, _, text, _ in documents}
    assert "{}" in {metadata for _, _, _, metadata in documents}
    stored = client.get(copy, [data.documents[3]["id"]], include=("vector",))[0]
    vector = np.asarray(stored.vector, dtype=np.float32)
    assert vector.tobytes() == data.document_vectors[3].tobytes()
    for query in data.queries[:QUERIES]:
        expected = client.search(text_collection, text=query["text"], mode="keyword", k=K)
        got = client.search(copy, text=query["text"], mode="keyword", k=K)
        assert [(h.id, h.score) for h in got.hits] == [(h.id, h.score) for h in expected.hits]
    assert any(
        client.search(copy, text=q["text"], mode="keyword", k=K).hits
        for q in data.queries[:QUERIES]
    )
    client.delete_collection(copy)


def test_the_sdk_imports_under_the_exported_name(
    client: Client, vector_collection: str, tmp_path: Path
) -> None:
    path = tmp_path / "named.parquet"
    export_collection(client, vector_collection, path)
    client.delete_collection(vector_collection)
    try:
        result = import_collection(client, path)
        assert (result.collection, result.documents, result.created) == (VECTORS, 240, True)
    finally:
        if VECTORS not in {c.name for c in client.list_collections()}:
            import_collection(client, path)  # the module's other tests use it
    assert client.count(VECTORS) == 240


def test_an_import_into_a_collection_with_other_settings_is_refused(
    cluster: LocalCluster,
    client: Client,
    vector_collection: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "export.jsonl"
    export_collection(client, vector_collection, path)
    client.create_collection("clash", dimension=DIMENSION, metric="cosine", partitions=8)
    try:
        with pytest.raises(SystemExit):
            run(capsys, cluster, "import", str(path), "--name", "clash")
        error = capsys.readouterr().err
        assert "AlreadyExists: collection 'clash' exists with other settings" in error
        assert "metric 'cosine' vs 'l2'" in error
        assert client.count("clash") == 0
    finally:
        client.delete_collection("clash")


def test_a_cut_short_file_is_refused_naming_the_line_and_writes_nothing(
    cluster: LocalCluster,
    client: Client,
    vector_collection: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    path = tmp_path / "cut.jsonl"
    export_collection(client, vector_collection, path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    line = path.read_bytes().count(b"\n") + 1
    with pytest.raises(SystemExit):
        run(capsys, cluster, "import", str(path), "--name", "cut")
    assert f"cut.jsonl:{line}: not JSON" in capsys.readouterr().err
    assert "cut" not in {c.name for c in client.list_collections()}


def test_a_parquet_file_with_a_bad_row_is_refused_and_writes_nothing(
    client: Client, vector_collection: str, tmp_path: Path
) -> None:
    import pyarrow.parquet as pq

    path = tmp_path / "bad.parquet"
    export_collection(client, vector_collection, path)
    table = pq.read_table(path)
    ids = table.column("id").to_pylist()
    ids[200] = ""  # the last row group: the rows before it are good
    table = table.set_column(0, table.schema.field("id"), [ids])
    pq.write_table(table, path, row_group_size=64)
    with pytest.raises(ExportFileError, match=r"bad\.parquet: row 201: id is ''"):
        import_collection(client, path, name="bad")
    assert "bad" not in {c.name for c in client.list_collections()}


def test_get_and_scroll_print_exact_vectors(
    cluster: LocalCluster,
    client: Client,
    vector_collection: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """Before --vectors, `scroll --json` printed no vector and importing its output
    into a vector-only collection failed."""
    sent = {d["id"]: d for d in vector_documents()}
    got = json.loads(run(capsys, cluster, "get", vector_collection, "v0000", "--vectors", "--json"))
    vector = np.asarray(got[0]["vector"], dtype=np.float32)
    assert vector.tobytes() == sent["v0000"]["vector"].tobytes()
    table = run(capsys, cluster, "get", vector_collection, "v0001", "--vectors")
    assert f"({DIMENSION})" in table
    lines = run(capsys, cluster, "scroll", vector_collection, "--vectors", "--json")
    scrolled = [json.loads(line) for line in lines.splitlines()]
    assert [d["id"] for d in scrolled] == sorted(sent)
    for document in scrolled:
        vector = np.asarray(document["vector"], dtype=np.float32)
        assert vector.tobytes() == sent[document["id"]]["vector"].tobytes()
    plain = tmp_path / "scrolled.jsonl"
    plain.write_text(lines)
    client.create_collection("rescrolled", dimension=DIMENSION, metric="l2", keyword=False)
    try:
        run(capsys, cluster, "import", "rescrolled", str(plain))
        assert everything(client, "rescrolled") == everything(client, vector_collection)
    finally:
        client.delete_collection("rescrolled")
