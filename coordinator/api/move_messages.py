"""Partition moves between the API's messages and `shoal.moves`."""

from collections.abc import Iterable

from shoal.errors import InvalidArgument
from shoal.moves import MoveRecord, PlannedMove
from shoal.topology import Topology
from shoal.v1 import shoal_pb2


def move_to_proto(record: MoveRecord) -> shoal_pb2.PartitionMoveStatus:
    return shoal_pb2.PartitionMoveStatus(
        id=record.id,
        move=shoal_pb2.PartitionMove(
            partition=record.partition, source=record.source, target=record.target
        ),
        phase=record.phase,
        copied=record.copied,
        copied_bytes=record.copied_bytes,
        cleaned=record.cleaned,
        cancel=record.cancel,
        error=record.error,
        created_s=record.created_s,
        updated_s=record.updated_s,
        started_s=record.started_s,
    )


def check_moves(topology: Topology, moves: Iterable[shoal_pb2.PartitionMove]) -> list[PlannedMove]:
    """The requested moves, each from a group of the topology to another, a
    partition at most once."""
    planned: list[PlannedMove] = []
    seen: set[int] = set()
    groups = len(topology.groups)
    for move in moves:
        if move.partition in seen:
            raise InvalidArgument(f"partition {move.partition} is moved twice in one request")
        seen.add(move.partition)
        if move.source >= groups or move.target >= groups or move.source == move.target:
            raise InvalidArgument(
                f"move of partition {move.partition} from group {move.source} to {move.target}:"
                f" source and target must be two different groups of 0-{groups - 1}"
            )
        planned.append(PlannedMove(move.partition, move.source, move.target))
    if not planned:
        raise InvalidArgument("give at least one partition move")
    return planned
