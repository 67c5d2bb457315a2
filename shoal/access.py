"""Who may call what on the public API: roles, keys' scopes and the role table.

Pure code (no gRPC), so the whole table is unit-tested on its own;
`shoal.runtime.auth` applies it to calls.

Three roles, each including the one before: `read` (search, get, count,
scroll, a collection's settings, listings), `write` (also upsert, delete and
any other change to documents) and `admin` (also creating and dropping
collections, verify/repair, and cluster operations: topology). A key may be
limited to named collections; such a key may call only RPCs that name one of
its collections, never the cluster-wide ones (ListCollections,
GetClusterInfo, GetTopology, UpdateTopology), whose answers would name or
count other collections.

A method missing from the table (an RPC added later) needs an unlimited admin
key: the table fails closed.
"""

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field


class Role(enum.IntEnum):
    """Ordered: a role may do everything the roles below it may."""

    READ = 1
    WRITE = 2
    ADMIN = 3

    @classmethod
    def parse(cls, text: str) -> "Role":
        try:
            return cls[text.strip().upper()]
        except KeyError:
            names = ", ".join(role.name.lower() for role in cls)
            raise ValueError(f"role {text!r} is not one of {names}") from None


@dataclass(frozen=True)
class Rule:
    """What a method needs: a role, and where its collection is named in the request
    (a dotted field path), or None for a cluster-wide method."""

    role: Role
    collection_field: str | None


def _collection(role: Role, path: str = "collection") -> Rule:
    return Rule(role, path)


def _cluster(role: Role) -> Rule:
    return Rule(role, None)


#: The service the table is for; any other service's methods are UNKNOWN_METHOD.
PUBLIC_SERVICE = "shoal.v1.ShoalService"

#: ShoalService's methods by name.
PUBLIC_RULES: Mapping[str, Rule] = {
    "GetCollection": _collection(Role.READ, "name"),
    "ListCollections": _cluster(Role.READ),
    "Get": _collection(Role.READ),
    "Count": _collection(Role.READ),
    "Scroll": _collection(Role.READ),
    "Search": _collection(Role.READ),
    "SearchBatch": _collection(Role.READ),
    "GetClusterInfo": _cluster(Role.READ),
    "GetTopology": _cluster(Role.READ),
    "ListMoves": _cluster(Role.READ),
    "Upsert": _collection(Role.WRITE),
    "Delete": _collection(Role.WRITE),
    "Update": _collection(Role.WRITE),
    "CreateCollection": _collection(Role.ADMIN, "config.name"),
    "DeleteCollection": _collection(Role.ADMIN, "name"),
    "VerifyReplicas": _collection(Role.ADMIN),
    "UpdateTopology": _cluster(Role.ADMIN),
    "StartMoves": _cluster(Role.ADMIN),
    "CancelMoves": _cluster(Role.ADMIN),
    # Snapshots may hold every collection and restores create them: cluster admins.
    "CreateSnapshot": _cluster(Role.ADMIN),
    "ListSnapshots": _cluster(Role.ADMIN),
    "DeleteSnapshot": _cluster(Role.ADMIN),
    "RestoreSnapshot": _cluster(Role.ADMIN),
}

#: A method the table does not know.
UNKNOWN_METHOD = _cluster(Role.ADMIN)

#: Services every caller may use without a key (probes).
OPEN_SERVICES = frozenset({"grpc.health.v1.Health"})


@dataclass(frozen=True)
class Principal:
    """An authenticated key: its name (for logs), role and collections (empty: all)."""

    name: str
    role: Role
    collections: frozenset[str] = field(default_factory=frozenset)

    def may(self, rule: Rule, collection: str | None) -> bool:
        """Whether this key may call a method with `rule` on `collection` (None
        where the request names none or could not be read)."""
        if self.role < rule.role:
            return False
        if not self.collections:
            return True
        return rule.collection_field is not None and collection in self.collections


def rule_for(method: str, rules: Mapping[str, Rule] = PUBLIC_RULES) -> Rule:
    """The rule of a method, by its bare name (`Search`) or full path
    (`/shoal.v1.ShoalService/Search`); a full path of another service has none."""
    if method.startswith("/") and not method.startswith(f"/{PUBLIC_SERVICE}/"):
        return UNKNOWN_METHOD
    return rules.get(method.rsplit("/", 1)[-1], UNKNOWN_METHOD)


def denial(principal: Principal, rule: Rule, method: str) -> str:
    """The PERMISSION_DENIED message: names the key, the role needed and its scope,
    never whether the collection exists."""
    name = method.rsplit("/", 1)[-1]
    if principal.role < rule.role:
        return (
            f"API key {principal.name!r} has role {principal.role.name.lower()};"
            f" {name} needs {rule.role.name.lower()}"
        )
    if rule.collection_field is None:
        return (
            f"API key {principal.name!r} is limited to collections"
            f" {sorted(principal.collections)}; {name} is cluster-wide and needs a key for"
            " all collections"
        )
    return (
        f"API key {principal.name!r} is limited to collections"
        f" {sorted(principal.collections)}; this request names another"
    )


def scope_text(collections: Collection[str]) -> str:
    return ", ".join(sorted(collections)) if collections else "all collections"
