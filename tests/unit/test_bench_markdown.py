"""Report pieces: tables, number formats, and rewriting one generated section only."""

import pytest

from bench.markdown import number, percent, replace_section, significant, table


def test_table_aligns_the_first_column_left_and_numbers_right() -> None:
    text = table(["name", "qps"], [["shard", "1,000"], ["coordinator", "500"]])
    assert text.splitlines() == [
        "| name | qps |",
        "| :--- | ---: |",
        "| shard | 1,000 |",
        "| coordinator | 500 |",
    ]
    assert table(["a", "b"], [], "rl").splitlines()[1] == "| ---: | :--- |"


def test_table_rejects_ragged_rows() -> None:
    with pytest.raises(ValueError, match="2 cells"):
        table(["a", "b", "c"], [["1", "2"]])
    with pytest.raises(ValueError, match="alignments"):
        table(["a", "b"], [], "l")


def test_number_formats() -> None:
    assert number(12345.6) == "12,346"
    assert number(0.5, 2) == "0.50"
    assert number(None) == "-"
    assert significant(1234.5) == "1,234"
    assert significant(12.345) == "12.3"
    assert significant(0.0456) == "0.05"
    assert percent(0.704) == "70%"
    assert percent(None) == "-"


def test_replace_section_rewrites_only_the_named_section() -> None:
    document = (
        "# Benchmarks\n\nProse.\n\n"
        "<!-- bench:begin quick -->\nold quick\n<!-- bench:end quick -->\n\n"
        "More prose.\n\n"
        "<!-- bench:begin full -->\nold full\n<!-- bench:end full -->\n"
    )
    updated = replace_section(document, "quick", "new quick\n")
    assert "new quick" in updated
    assert "old quick" not in updated
    assert "old full" in updated
    assert updated.startswith("# Benchmarks\n\nProse.\n\n")
    assert "\n\nMore prose.\n\n" in updated
    assert replace_section(updated, "quick", "new quick") == updated


def test_replace_section_appends_a_section_the_document_lacks() -> None:
    updated = replace_section("# Benchmarks\n", "full-1m", "figures")
    assert updated == (
        "# Benchmarks\n\n<!-- bench:begin full-1m -->\nfigures\n<!-- bench:end full-1m -->\n"
    )
    with pytest.raises(ValueError, match="has no"):
        replace_section("<!-- bench:begin quick -->\nno end", "quick", "x")
