"""Copy etcd's v3 API protos into proto/shoal/etcdpb/, stripped for plain protoc.

Shoal talks to etcd through stubs generated from etcd's own protos (see
docs/etcd.md for why). Upstream they import gogoproto and google.api options
that only matter to Go and the HTTP gateway; this drops those lines and points
the imports at their new place, leaving every message, field and service as it
is, so the wire format is etcd's. Run it against an etcd checkout at the tag the
cluster runs, then `make proto`:

    git -C etcd checkout v3.4.23
    python proto/import_etcd_protos.py etcd
"""

import argparse
import re
from pathlib import Path

#: upstream path in the etcd 3.4 tree -> file name here
SOURCES = {
    "etcdserver/etcdserverpb/rpc.proto": "rpc.proto",
    "mvcc/mvccpb/kv.proto": "kv.proto",
    "auth/authpb/auth.proto": "auth.proto",
}
IMPORTS = {
    "etcd/mvcc/mvccpb/kv.proto": "shoal/etcdpb/kv.proto",
    "etcd/auth/authpb/auth.proto": "shoal/etcdpb/auth.proto",
}
HEADER = (
    "// Copied from etcd v3.4.23 ({source}, Apache License 2.0) by\n"
    "// proto/import_etcd_protos.py: gogoproto and google.api options removed.\n"
)

_DROPPED_LINE = re.compile(
    r'^\s*(import "(gogoproto/gogo|google/api/annotations)\.proto";'
    r"|option \(gogoproto\.[a-z_]+\) = \w+;|// for grpc-gateway)\s*$"
)
_HTTP_OPTION = re.compile(r"^\s*option \(google\.api\.http\) = \{\s*$")


def _without_http_options(lines: list[str]) -> list[str]:
    """Drop each `option (google.api.http) = { ... };` block (braces may nest)."""
    kept: list[str] = []
    depth = 0
    for line in lines:
        if depth == 0 and _HTTP_OPTION.match(line):
            depth = 1
            continue
        if depth:
            depth += line.count("{") - line.count("}")
            continue
        kept.append(line)
    return kept


def strip(text: str) -> str:
    lines = _without_http_options(text.splitlines())
    lines = [line for line in lines if not _DROPPED_LINE.match(line)]
    text = "\n".join(lines) + "\n"
    for upstream, here in IMPORTS.items():
        text = text.replace(f'import "{upstream}";', f'import "{here}";')
    if "gogoproto" in text or "google.api" in text:
        raise SystemExit("an option this script does not know is left; extend it")
    return re.sub(r"\n{3,}", "\n\n", text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("etcd", type=Path, help="an etcd source checkout at v3.4.23")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "shoal" / "etcdpb")
    args = parser.parse_args()
    for source, name in SOURCES.items():
        text = (args.etcd / source).read_text()
        (args.out / name).write_text(HEADER.format(source=source) + strip(text))


if __name__ == "__main__":
    main()
