"""The export file format (shoal.sdk.export_format, export_jsonl, export_parquet)
without a cluster: exact round trips in both containers, and damaged files refused
with the line or row named."""

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoal.errors import InvalidArgument
from shoal.keyword import KeywordSettings
from shoal.sdk.export_format import (
    FORMAT_VERSION,
    ExportedDocument,
    ExportedSettings,
    ExportFileError,
    ExportHeader,
    NoExportHeader,
    decode_vector,
    encode_vector,
    file_format,
)
from shoal.sdk.export_jsonl import JsonlExport, write_jsonl
from shoal.sdk.export_parquet import ParquetExport, write_parquet
from shoal.sdk.transfer import ExportFile

DIMENSION = 4
SETTINGS = ExportedSettings(
    name="things",
    dimension=DIMENSION,
    metric="l2",
    hnsw_m=12,
    hnsw_ef_construction=150,
    hnsw_ef=40,
    embedding_model="hash-384",
    partitions=16,
    keyword=KeywordSettings(language="german", stemming=False, k1=1.5, b=0.5).with_defaults(),
)
HEADER = ExportHeader(SETTINGS, shoal_version="0.1.0")
# Values decimal text would not carry exactly: the smallest subnormal, -0.0, the
# largest float32, a value with all mantissa bits set, a float32 near 1/3.
AWKWARD = np.array(
    [np.float32(1e-45), -0.0, np.finfo(np.float32).max, np.float32(1) / np.float32(3)],
    dtype=np.float32,
)


def documents() -> list[ExportedDocument]:
    rng = np.random.default_rng(7)
    vectors = rng.standard_normal((6, DIMENSION)).astype(np.float32)
    return [
        ExportedDocument("a", AWKWARD, "text and metadata", {"n": 1, "x": 0.1, "tags": ["p"]}),
        ExportedDocument("b", vectors[1], None, {"flag": True, "floats": [1.0, 2.5]}),
        ExportedDocument("c", vectors[2], "text only, ünïcode ✓", {}),
        ExportedDocument("d", vectors[3]),  # neither text nor metadata
        ExportedDocument("e", vectors[4], "", {"empty": "", "neg": -(2**62)}),
        ExportedDocument("f", vectors[5], "x", {"nan": float("nan")}),
    ]


def write(kind: str, path: Path, docs: list[ExportedDocument], page: int = 4) -> int:
    pages = [docs[i : i + page] for i in range(0, len(docs), page)]
    if kind == "jsonl":
        return write_jsonl(path, HEADER, pages)
    return write_parquet(path, HEADER, pages)


def read(kind: str, path: Path) -> ExportFile:
    return JsonlExport(path) if kind == "jsonl" else ParquetExport(path)


def same_metadata(a: object, b: object) -> bool:
    """Equal JSON values, NaN equal to NaN, and float never equal to int."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_round_trip_keeps_every_bit_and_the_settings(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"things.{kind}"
    docs = documents()
    assert write(kind, path, docs) == len(docs)
    assert not list(tmp_path.glob("*.partial"))
    export = read(kind, path)
    assert export.header == HEADER and export.header.format_version == FORMAT_VERSION
    assert export.count() == len(docs)
    back = list(export.documents())
    assert [d.id for d in back] == [d.id for d in docs]
    for got, sent in zip(back, docs, strict=True):
        assert got.vector.dtype == np.float32
        assert got.vector.tobytes() == sent.vector.tobytes()
        assert got.text == sent.text
        assert same_metadata(got.metadata, sent.metadata)
        assert [type(v) for v in got.metadata.values()] == [type(v) for v in sent.metadata.values()]


@pytest.mark.parametrize("kind", ["jsonl", "parquet"])
def test_an_empty_collection_round_trips(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"empty.{kind}"
    assert write(kind, path, []) == 0
    export = read(kind, path)
    assert export.header == HEADER and export.count() == 0 and list(export.documents()) == []


def test_jsonl_vectors_are_base64_of_float32_and_the_header_names_the_encoding(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.jsonl"
    write("jsonl", path, documents()[:1])
    header, first, end = (json.loads(line) for line in path.read_text().splitlines())
    assert header["shoal_export"]["vector_encoding"] == "float32-le-base64"
    assert header["shoal_export"]["format_version"] == FORMAT_VERSION
    assert header["shoal_export"]["collection"]["keyword"]["language"] == "german"
    assert decode_vector(first["vector"], DIMENSION).tobytes() == AWKWARD.tobytes()
    assert end == {"shoal_export_end": {"documents": 1}}


def lines_of(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_a_jsonl_file_cut_mid_line_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    write("jsonl", path, documents())
    text = path.read_bytes()
    path.write_bytes(text[: len(text) // 2])
    cut_line = path.read_text().count("\n") + 1
    with pytest.raises(ExportFileError, match=rf"cut\.jsonl:{cut_line}: not JSON"):
        JsonlExport(path).count()


def test_a_jsonl_file_cut_at_a_line_end_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.jsonl"
    write("jsonl", path, documents())
    path.write_text("".join(lines_of(path)[:4]))  # header and 3 documents, no end line
    with pytest.raises(ExportFileError, match=r"cut\.jsonl:4: .*after 3 documents without"):
        JsonlExport(path).count()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"id": "x", "vector": "@@@@"}', "not valid base64"),
        ('{"id": "x", "vector": "AAAAAA=="}', "holds 4 bytes; dimension 4 needs 16"),
        ('{"id": "", "vector": "AAAAAAAAAAAAAAAAAAAAAA=="}', "id is '', not a non-empty"),
        ('{"id": "x", "vector": "AAAAAAAAAAAAAAAAAAAAAA==", "txt": 1}', "unknown document"),
        ('{"id": "x", "vector": "AAAAAAAAAAAAAAAAAAAAAA==", "text": 5}', "text is int"),
        ('{"id": "x", "vector": "AAAAAAAAAAAAAAAAAAAAAA==", "metadata": [1]}', "metadata is"),
        ('{"id": "x", "vector": "AADAfwAAAAAAAAAAAAAAAA=="}', "NaN or infinity"),
        ("[1, 2]", "not a JSON object"),
        ('{"shoal_export_end": {"documents": 7}}', "end line says 7 documents, the file holds 1"),
    ],
)
def test_a_bad_jsonl_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "bad.jsonl"
    write("jsonl", path, documents()[:2])
    lines = lines_of(path)
    path.write_text("".join([*lines[:2], line + "\n", *lines[2:]]))
    with pytest.raises(ExportFileError, match=rf"bad\.jsonl:3: .*{message}"):
        JsonlExport(path).count()


def test_jsonl_without_a_header_or_with_a_newer_version(tmp_path: Path) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"id": "n1", "text": "buy coffee"}\n')
    with pytest.raises(NoExportHeader, match=r"plain\.jsonl:1: no export header"):
        JsonlExport(plain)
    newer = tmp_path / "newer.jsonl"
    header = {**HEADER.to_dict(), "format_version": FORMAT_VERSION + 1}
    newer.write_text(json.dumps({"shoal_export": header}) + "\n")
    with pytest.raises(ExportFileError, match=r"newer\.jsonl:1: export format version 2 is newer"):
        JsonlExport(newer)
    other = tmp_path / "other.jsonl"
    header = {**HEADER.to_dict(), "vector_encoding": "float16"}
    other.write_text(json.dumps({"shoal_export": header}) + "\n")
    with pytest.raises(ExportFileError, match="vector_encoding 'float16'"):
        JsonlExport(other)


def test_a_cut_or_foreign_parquet_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "cut.parquet"
    write("parquet", path, documents())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 100])
    with pytest.raises(ExportFileError, match=r"cut\.parquet: not a readable Parquet file"):
        ParquetExport(path)
    import pyarrow as pa
    import pyarrow.parquet as pq

    foreign = tmp_path / "foreign.parquet"
    pq.write_table(pa.table({"id": ["a"]}), foreign)
    with pytest.raises(ExportFileError, match=r"no 'shoal\.export' schema metadata"):
        ParquetExport(foreign)


def test_a_bad_parquet_row_is_named(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from shoal.sdk.export_parquet import schema

    path = tmp_path / "rows.parquet"
    file_schema = schema(HEADER)
    vectors = pa.FixedSizeListArray.from_arrays(
        pa.array(np.zeros(3 * DIMENSION, dtype=np.float32)), DIMENSION
    )
    table = pa.Table.from_arrays(
        [
            pa.array(["a", "b", "c"]),
            vectors,
            pa.array([None, None, None], pa.string()),
            pa.array(['{"k": 1}', "{not json", None]),
        ],
        schema=file_schema,
    )
    pq.write_table(table, path)
    export = ParquetExport(path)
    with pytest.raises(ExportFileError, match=r"rows\.parquet: row 2: .*Expecting property"):
        list(export.documents())


def test_file_format_from_the_extension_or_given() -> None:
    assert file_format(Path("x.jsonl")) == "jsonl"
    assert file_format(Path("x.PARQUET")) == "parquet"
    assert file_format(Path("x.bin"), "parquet") == "parquet"
    with pytest.raises(InvalidArgument, match="cannot tell the format"):
        file_format(Path("x.csv"))
    with pytest.raises(InvalidArgument, match="format 'csv'"):
        file_format(Path("x.jsonl"), "csv")


def test_settings_from_a_file_are_checked() -> None:
    good = SETTINGS.to_dict()
    assert ExportedSettings.from_dict(good) == SETTINGS
    changes: list[tuple[dict[str, Any], str]] = [
        ({"dimension": 0}, "dimension is 0"),
        ({"metric": "dot"}, "metric is 'dot'"),
        ({"partitions": "8"}, "partitions is '8'"),
        ({"colour": 1}, "unknown collection settings"),
        ({"keyword": {"k1": "x"}}, "keyword.k1"),
    ]
    for change, message in changes:
        with pytest.raises(ValueError, match=message):
            ExportedSettings.from_dict({**good, **change})
    other = ExportedSettings.from_dict({**good, "name": "else", "dimension": 8, "metric": "ip"})
    assert SETTINGS.differences(other) == ["dimension 4 vs 8", "metric 'l2' vs 'ip'"]


def test_vectors_encode_as_little_endian_float32() -> None:
    encoded = encode_vector(np.array([1.0], dtype=">f4"))  # big-endian in, little-endian out
    assert encoded == "AACAPw=="
    assert decode_vector(encoded, 1).tolist() == [1.0]
