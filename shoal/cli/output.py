"""What the `shoal` command prints: tables and sentences for people, JSON for programs.

Every command that prints data has both forms. The JSON (`--json`) uses
snake_case keys and numbers as numbers; replies that are protobuf messages
(cluster, verify) keep their proto field names, with enums as lower-case
names ("serving") rather than the prefixed constants.
"""

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from rich import box
from rich.console import Console
from rich.table import Table

from shoal.keyword import KeywordSettings
from shoal.sdk.columnar import SearchResult
from shoal.sdk.results import Collection, Document, Explanation
from shoal.topology import Topology
from shoal.v1 import shoal_pb2

SNIPPET_CHARS = 70
#: The width tables get when they are not shown on a terminal: enough for any row.
UNBOUNDED_WIDTH = 10_000


# --- words -----------------------------------------------------------------


def count_of(number: int, noun: str, plural: str = "") -> str:
    """'1 document', '2 documents', '1,000 documents'."""
    return f"{number:,} {noun if number == 1 else plural or noun + 's'}"


def snippet(text: str | None, chars: int = SNIPPET_CHARS) -> str:
    flat = " ".join((text or "").split())
    return flat if len(flat) <= chars else flat[: chars - 1] + "…"


def compact_json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "), default=str)


# --- printing --------------------------------------------------------------


def print_json_line(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, default=str))


def _console() -> Console:
    """A console on whatever sys.stdout is now (a terminal, a pipe, pytest's capture).

    On a terminal, tables fit its width; elsewhere (a pipe, a file) no cell is cut.
    """
    console = Console(file=sys.stdout, highlight=False)
    if not console.is_terminal:
        console = Console(file=sys.stdout, highlight=False, width=UNBOUNDED_WIDTH)
    return console


def print_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    wide: Sequence[str] = (),
    right: Sequence[str] = (),
    header: bool = True,
) -> None:
    """A plain table; `wide` columns are the ones cut (with an ellipsis) on a narrow
    terminal, `right` ones are right-aligned."""
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        header_style="bold",
        show_header=header,
    )
    for column in columns:
        if column in wide:
            table.add_column(column, overflow="ellipsis", no_wrap=True)
        else:
            table.add_column(column, justify="right" if column in right else "left", no_wrap=True)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    console = _console()
    with console.capture() as captured:
        console.print(table)
    # Without the padding rich puts after the last column: lines end where their text does.
    lines = captured.get().splitlines()
    print("\n".join(line.rstrip() for line in lines))


def print_fields(fields: Mapping[str, object]) -> None:
    """One `name  value` line per field."""
    print_table(("field", "value"), fields.items(), header=False)


# --- replies as plain values -----------------------------------------------


def document_dict(document: Document) -> dict[str, Any]:
    values: dict[str, Any] = {
        "id": document.id,
        "text": document.text,
        "metadata": document.metadata,
    }
    if document.vector is not None:
        values["vector"] = document.vector
    if document.chunks:
        values["chunks"] = [list(span) for span in document.chunks]
    return {key: value for key, value in values.items() if value is not None}


def explanation_dict(explanation: Explanation) -> dict[str, Any]:
    """Ranks and scores in the two candidate lists; null where a list did not hold the hit."""
    return {
        "vector_rank": explanation.vector_rank,
        "vector_score": explanation.vector_score,
        "keyword_rank": explanation.keyword_rank,
        "keyword_score": explanation.keyword_score,
    }


def search_dict(result: SearchResult) -> dict[str, Any]:
    """The hits; each with its `explanation` when the search asked to explain."""
    return {
        "hits": [
            {
                "id": hit.id,
                "score": hit.score,
                "distance": hit.distance,
                "text": hit.text,
                "metadata": hit.metadata,
                **(
                    {"explanation": explanation_dict(hit.explanation)}
                    if hit.explanation is not None
                    else {}
                ),
                **(
                    {
                        "chunk": hit.chunk,
                        "chunk_span": list(hit.chunk_span or ()),
                        "chunk_text": hit.chunk_text,
                    }
                    if hit.chunk is not None
                    else {}
                ),
                **({"group": hit.group} if hit.group is not None else {}),
            }
            for hit in result.hits
        ],
        "coverage": {
            "groups_asked": result.coverage.groups_asked,
            "groups_answered": result.coverage.groups_answered,
            "complete": result.coverage.complete,
        },
    }


# Fields are typed Any: protobuf's C extension hands out its own descriptor class,
# which the stubs do not unify with google.protobuf.descriptor.FieldDescriptor.


def _enum_name(field: Any, number: int) -> str:
    """REPLICA_HEALTH_SERVING -> 'serving' (the enum's name is the prefix)."""
    enum = field.enum_type
    value = enum.values_by_number.get(number) if enum is not None else None
    if value is None:
        return str(number)
    prefix = "".join(f"_{c}" if c.isupper() else c for c in enum.name).lstrip("_").upper() + "_"
    return str(value.name).removeprefix(prefix).lower()


def _field_value(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return message_dict(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_name(field, value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return value.hex()
    return value


def message_dict(message: Message) -> dict[str, Any]:
    """A message as plain values: proto field names, every field (also zeros), 64-bit
    integers as numbers (protobuf's own JSON writes them as strings); an `optional`
    scalar that is not set is null, as its zero would say something it does not."""
    values: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is None and field.has_presence and not message.HasField(field.name):
            values[field.name] = None
        elif field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            values[field.name] = {k: _field_value(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            values[field.name] = [_field_value(field, item) for item in value]
        else:
            values[field.name] = _field_value(field, value)
    return values


# --- the tables and sentences ----------------------------------------------

#: The columns `search --explain` adds: each hit's rank and score in each candidate list.
EXPLAIN_COLUMNS = ("vector #", "vector score", "keyword #", "keyword score")


def explanation_cells(explanation: Explanation | None) -> tuple[str, str, str, str]:
    """The EXPLAIN_COLUMNS of one hit, "-" where a list did not hold it."""
    if explanation is None:
        return ("-", "-", "-", "-")
    e = explanation
    return (
        "-" if e.vector_rank is None else str(e.vector_rank),
        "-" if e.vector_score is None else f"{e.vector_score:.4f}",
        "-" if e.keyword_rank is None else str(e.keyword_rank),
        "-" if e.keyword_score is None else f"{e.keyword_score:.4f}",
    )


def keyword_summary(settings: KeywordSettings) -> str:
    """'english, stemming, stop words, k1 1.2, b 0.75', or 'off' without an index."""
    if settings.enabled is False:
        return "off"
    words = [settings.language or "english"]
    words += ["stemming"] if settings.stemming is not False else ["no stemming"]
    words += ["stop words"] if settings.stop_words is not False else ["no stop words"]
    words += [f"k1 {settings.k1_value:g}", f"b {settings.b_value:g}"]
    return ", ".join(words)


def print_collections(collections: Sequence[Collection]) -> None:
    if not collections:
        print("no collections")
        return
    print_table(
        (
            "name",
            "dimension",
            "metric",
            "embedding model",
            "partitions",
            "hnsw m / ef_c / ef",
            "keyword",
        ),
        (
            (
                c.name,
                c.dimension,
                c.metric,
                c.embedding_model or "-",
                c.partitions,
                f"{c.hnsw_m} / {c.hnsw_ef_construction} / {c.hnsw_ef}",
                "off" if c.keyword.enabled is False else c.keyword.language or "english",
            )
            for c in collections
        ),
        right=("dimension", "partitions"),
    )


def print_collection(collection: Collection) -> None:
    fields = {k: v for k, v in collection.__dict__.items() if v is not None}
    fields["embedding_model"] = collection.embedding_model or "-"
    fields["keyword"] = keyword_summary(collection.keyword)
    chunking = collection.chunking
    fields["chunking"] = (
        f"{chunking.chunk_tokens} tokens, overlap {chunking.overlap_tokens or 0}"
        if chunking.enabled
        else "off"
    )
    print_fields(fields)


def vector_preview(vector: Sequence[float] | None, shown: int = 3) -> str:
    """'[0.1036, 2.465, -0.9913, ...] (384)': the first values and the dimension."""
    if vector is None:
        return "-"
    values = ", ".join(f"{value:.4g}" for value in vector[:shown])
    more = ", ..." if len(vector) > shown else ""
    return f"[{values}{more}] ({len(vector)})"


def print_documents(documents: Sequence[Document], vectors: bool = False) -> None:
    print_table(
        ("id", "metadata", *(("vector",) if vectors else ()), "text"),
        (
            (
                d.id,
                compact_json(d.metadata),
                *((vector_preview(d.vector),) if vectors else ()),
                snippet(d.text),
            )
            for d in documents
        ),
        wide=("text",),
    )


def document_line(document: Document, vectors: bool = False) -> str:
    """One scrolled document as a line of text: id, metadata, (the start of its
    vector,) the start of its text."""
    vector = f"  {vector_preview(document.vector)}" if vectors else ""
    return f"{document.id}  {compact_json(document.metadata)}{vector}  {snippet(document.text)}"


def print_cluster(info: shoal_pb2.GetClusterInfoResponse) -> None:
    health = shoal_pb2.GetClusterInfoResponse.DESCRIPTOR.fields_by_name["embedder_health"]
    print(
        f"topology version {info.topology_version}, replication factor "
        f"{info.replication_factor}, {count_of(len(info.groups), 'shard group')}"
    )
    print(f"embedder {info.embedder_address}: {_enum_name(health, info.embedder_health)}")
    replica_health = shoal_pb2.ReplicaInfo.DESCRIPTOR.fields_by_name["health"]
    replicas = [(group.group, replica) for group in info.groups for replica in group.replicas]
    # The member column only where membership is known (the cluster runs etcd).
    members = any(replica.HasField("member") for _, replica in replicas)
    print_table(
        ("group", "replica", "health", *(("member",) if members else ()), "documents"),
        (
            (
                group,
                replica.address,
                _enum_name(replica_health, replica.health),
                *((_member(replica),) if members else ()),
                _replica_documents(replica),
            )
            for group, replica in replicas
        ),
        right=("group",),
    )
    for move in info.moves:
        print(
            f"moving partition {move.move.partition}: group {move.move.source} ->"
            f" {move.move.target}, {move.phase}, {move.copied} records copied"
        )


def _member(replica: shoal_pb2.ReplicaInfo) -> str:
    """Whether the replica holds its lease in etcd: "lease gone" once its process died."""
    if not replica.HasField("member"):
        return "-"
    return "yes" if replica.member else "lease gone"


def _replica_documents(replica: shoal_pb2.ReplicaInfo) -> str:
    counts = [f"{c.collection} {c.documents:,}" for c in replica.collections]
    failed = [f"{f.collection} FAILED: {f.reason}" for f in replica.failed_collections]
    return ", ".join([*counts, *failed]) or "-"


def print_topology(topology: Topology) -> None:
    groups = len(topology.groups)
    print(
        f"topology version {topology.version}: {count_of(groups, 'shard group')};"
        f" partition p belongs to group p mod {groups}"
        + (", except:" if topology.partition_groups else "")
    )
    if topology.partition_groups:
        print_table(
            ("partition", "group"),
            sorted(topology.partition_groups.items()),
            right=("partition", "group"),
        )
    print_table(
        ("group", "replicas"),
        ((group.group, ", ".join(group.replicas)) for group in topology.groups),
        right=("group",),
    )


def verify_failed(report: shoal_pb2.VerifyReplicasResponse) -> bool:
    """Replicas still differ after this run, or some could not be compared."""
    return report.differing > report.repaired or any(g.unreachable for g in report.groups)


def print_verify(name: str, report: shoal_pb2.VerifyReplicasResponse) -> None:
    compared = sum(group.partitions_compared for group in report.groups)
    groups = count_of(len(report.groups), "shard group")
    where = f"{groups}, {count_of(compared, 'partition')} compared"
    if not verify_failed(report) and not report.differing:
        print(f"{name}: replicas agree ({where})")
    else:
        differing = count_of(report.differing, "document")
        verb = "differs" if report.differing == 1 else "differ"
        print(f"{name}: {differing} {verb}, {report.repaired:,} repaired ({where})")
    for group in report.groups:
        for address in group.unreachable:
            print(f"  group {group.group}: replica {address} did not answer")
    rows = [
        (
            group.group,
            partition.partition,
            replica.address,
            f"{replica.records:,}",
            f"{replica.hash:016x}",
            partition.differing,
            partition.repaired,
        )
        for group in report.groups
        for partition in group.partitions
        for replica in partition.replicas
    ]
    if rows:
        print_table(
            ("group", "partition", "replica", "records", "hash", "differing", "repaired"),
            rows,
            right=("group", "partition", "records", "differing", "repaired"),
        )
