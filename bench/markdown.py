"""Markdown pieces: tables, number formats, and the generated sections of a document.

docs/benchmarks.md holds prose written by people and one generated section per
plan (quick, full, full-1m) between markers; a run replaces only its own
section, so a quick run leaves the full run's figures and the prose alone.
"""

from collections.abc import Sequence

BEGIN = "<!-- bench:begin {name} -->"
END = "<!-- bench:end {name} -->"


def table(headers: Sequence[str], rows: Sequence[Sequence[str]], align: str = "") -> str:
    """A markdown table; `align` holds one of l/r per column (default: first left, rest right)."""
    align = align or "l" + "r" * (len(headers) - 1)
    if len(align) != len(headers):
        raise ValueError(f"{len(align)} alignments for {len(headers)} columns")
    rule = ["---:" if a == "r" else ":---" for a in align]
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(rule) + " |"]
    for row in rows:
        if len(row) != len(headers):
            raise ValueError(f"a row of {len(row)} cells under {len(headers)} headers")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def number(value: float | None, digits: int = 0) -> str:
    """Thousands separated; a dash for a missing value."""
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


def significant(value: float | None) -> str:
    """Three significant figures at most, for values spanning many magnitudes."""
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def percent(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.0f}%"


def replace_section(document: str, name: str, body: str) -> str:
    """`document` with the generated section `name` replaced by `body` (appended if absent)."""
    begin, end = BEGIN.format(name=name), END.format(name=name)
    section = f"{begin}\n{body.strip()}\n{end}"
    start = document.find(begin)
    if start < 0:
        return document.rstrip() + "\n\n" + section + "\n"
    stop = document.find(end, start)
    if stop < 0:
        raise ValueError(f"{begin} has no {end}")
    return document[:start] + section + document[stop + len(end) :]
