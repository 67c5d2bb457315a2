"""The layering rules of docs/architecture.md, checked on every module's imports.

Each module is parsed (ast), never imported, so the check starts no process and
sees imports inside functions too. Importing `a.b.c` runs the `__init__` of `a`
and `a.b` first, so those count as imported; imports under `if TYPE_CHECKING:`
do not run and count only where a rule forbids naming a module at all.
"""

import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("shoal", "coordinator", "shard", "embedder", "loadtest")
SERVICES = ("coordinator", "shard", "embedder")
#: Generated protobuf and gRPC code (shoal/v1, shoal/etcdpb) and the libraries
#: behind it. A module that imports one of these, at any depth, speaks gRPC.
WIRE_PREFIXES = ("shoal.v1", "shoal.etcdpb", "grpc", "grpc_health", "grpc_reflection", "google")


def _is_under(module: str, prefixes: tuple[str, ...]) -> bool:
    return any(module == prefix or module.startswith(prefix + ".") for prefix in prefixes)


def _parents(module: str) -> Iterator[str]:
    parts = module.split(".")
    for end in range(1, len(parts)):
        yield ".".join(parts[:end])


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


@dataclass
class Module:
    name: str
    path: Path
    runtime: set[str] = field(default_factory=set)  # what importing it runs
    typing: set[str] = field(default_factory=set)  # named under TYPE_CHECKING only


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _collect() -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            name = _module_name(path)
            if not _is_under(name, ("shoal.v1", "shoal.etcdpb")):
                modules[name] = Module(name, path)
    for module in modules.values():
        _read_imports(module, modules)
    return modules


def _read_imports(module: Module, known: dict[str, Module]) -> None:
    tree = ast.parse(module.path.read_text(), str(module.path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for inner in node.body:
                typing_only.update(id(child) for child in ast.walk(inner))
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names = [node.module]
            names += [
                f"{node.module}.{alias.name}"
                for alias in node.names
                if f"{node.module}.{alias.name}" in known
            ]
        if not names:
            continue
        target = module.typing if id(node) in typing_only else module.runtime
        for name in names:
            target.add(name)
            target.update(_parents(name))
    module.runtime.update(_parents(module.name))


MODULES = _collect()


def _wire_path(name: str, seen: set[str] | None = None) -> list[str] | None:
    """The chain of runtime imports from `name` to generated or gRPC code, if any."""
    seen = set() if seen is None else seen
    seen.add(name)
    module = MODULES.get(name)
    if module is None:
        return [name] if _is_under(name, WIRE_PREFIXES) else None
    for imported in sorted(module.runtime):
        if imported in seen:
            continue
        chain = _wire_path(imported, seen)
        if chain is not None:
            return [name, *chain]
    return None


def _in_layer(name: str, layers: tuple[str, ...]) -> bool:
    return any(_is_under(name, (f"{service}.{layer}",)) for service in SERVICES for layer in layers)


def _service_of(name: str) -> str | None:
    top = name.split(".")[0]
    return top if top in SERVICES else None


#: The subpackages of `shoal`, by role; the modules directly in `shoal` are the
#: domain code every side shares.
SHOAL_ROLES = ("shoal.sdk", "shoal.cli", "shoal.runtime", "shoal.etcd", "shoal.tools")
DOMAIN = sorted(
    name for name in MODULES if _is_under(name, ("shoal",)) and not _is_under(name, SHOAL_ROLES)
)

#: Pure code: the services' core and storage layers, and the shared domain code.
PURE = sorted(name for name in MODULES if _in_layer(name, ("core", "storage"))) + DOMAIN

#: Who may not import whom, beyond the rules above: (importer, forbidden).
FORBIDDEN = [
    # The runtime and the etcd stores serve every process; the SDK and the CLI use them.
    (("shoal.runtime", "shoal.etcd"), ("shoal.sdk", "shoal.cli", "shoal.tools", "loadtest")),
    (("shoal.sdk",), ("shoal.cli", "shoal.etcd", "shoal.tools", "loadtest")),
    (("shoal.tools",), ("shoal.sdk", "shoal.cli", "shoal.runtime", "shoal.etcd", "loadtest")),
    # The services use the domain code and the runtime, never the SDK or the tools.
    (SERVICES, ("shoal.sdk", "shoal.cli", "shoal.tools", "loadtest")),
    (("shoal", "loadtest"), SERVICES),
]


@pytest.mark.parametrize("name", PURE)
def test_pure_code_never_reaches_grpc_or_generated_code(name: str) -> None:
    module = MODULES[name]
    named = sorted(i for i in module.runtime | module.typing if _is_under(i, WIRE_PREFIXES))
    assert not named, f"{name} imports {named}"
    chain = _wire_path(name)
    assert chain is None, f"{name} reaches gRPC through " + " -> ".join(chain or [])


def test_core_imports_neither_api_nor_clients() -> None:
    wrong = {
        name: sorted(
            i
            for i in module.runtime | module.typing
            if _service_of(i) == _service_of(name)
            and not _in_layer(i, ("core", "storage"))
            and i != _service_of(name)
        )
        for name, module in MODULES.items()
        if _in_layer(name, ("core",))
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_api_never_imports_clients() -> None:
    wrong = {
        name: sorted(i for i in module.runtime | module.typing if _in_layer(i, ("clients",)))
        for name, module in MODULES.items()
        if _in_layer(name, ("api",))
    }
    assert {name: found for name, found in wrong.items() if found} == {}


@pytest.mark.parametrize(("importers", "forbidden"), FORBIDDEN)
def test_roles_import_only_what_they_may(
    importers: tuple[str, ...], forbidden: tuple[str, ...]
) -> None:
    wrong = {
        name: sorted(i for i in module.runtime if _is_under(i, forbidden))
        for name, module in MODULES.items()
        if _is_under(name, importers)
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_domain_code_knows_no_role() -> None:
    """The SDK's names are loaded lazily by shoal/__init__.py, named only for the type checker."""
    wrong = {
        name: sorted(i for i in MODULES[name].runtime if _is_under(i, SHOAL_ROLES))
        for name in DOMAIN
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_services_never_import_each_other() -> None:
    wrong = {
        name: sorted(
            i
            for i in module.runtime | module.typing
            if _service_of(i) is not None and _service_of(i) != _service_of(name)
        )
        for name, module in MODULES.items()
    }
    assert {name: found for name, found in wrong.items() if found} == {}


def test_the_rules_see_the_imports_they_judge() -> None:
    """A rule that reads no imports passes whatever the code does."""
    assert "shoal.errors" in MODULES["coordinator.core.reads"].runtime
    assert "coordinator.core" in MODULES["coordinator.core.reads"].runtime
    assert _wire_path("coordinator.api.servicer") is not None
    assert len(PURE) > 50
    assert {"shoal", "shoal.errors", "shoal.topology"} <= set(DOMAIN)
    assert "shoal.sdk.client" not in DOMAIN
    assert set(MODULES["shoal"].typing) >= {"shoal.sdk.client", "shoal.sdk.results"}
