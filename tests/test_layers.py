"""The layers of docs/design.md as an import contract, read from the source with ast: the grid
imports nothing above it, and HTTP only translates (messages, the runtime, the system, errors).
Lazy imports inside functions count like any other."""

from __future__ import annotations

import ast
from pathlib import Path

from mem8.encoders import wave
from mem8.grid import placement
from mem8.http import embeddings, memories
from mem8.memory import MODALITIES

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "mem8"
BOTTOM = ("mem8.scope", "mem8.text")  # below every layer: anyone may import them
# What the grid must not import: it knows nothing of actors, HTTP, storage, encoders or memories.
ABOVE_GRID = ("mem8.actors", "mem8.http", "mem8.storage", "mem8.encoders", "mem8.memory")
HTTP_MAY_IMPORT = (
    "mem8.actors.messages",
    "mem8.actors.runtime",
    "mem8.system",
    "mem8.errors",
    "mem8.http",
    *BOTTOM,
)
# module -> what else it may import, and why
HTTP_EXCEPTIONS: dict[str, set[str]] = {
    # who a key says is calling (Caller) is the domain's answer the gate acts on
    "mem8.http.gate": {"mem8.keys"},
    # a request's log line carries its fields for the JSON format (mem8.logs imports nothing)
    "mem8.http.observe": {"mem8.logs"},
}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imported(source: str, module: str, is_package: bool = False) -> set[str]:
    """The mem8 modules a module's source imports (`from mem8 import errors` is mem8.errors)."""
    found: set[str] = set()
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package up
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if _is_module(candidate) else base)
    return {name for name in found if name == "mem8" or name.startswith("mem8.")}


def imports_of(directory: str) -> dict[str, set[str]]:
    return {
        module_name(path): imported(
            path.read_text(encoding="utf-8"), module_name(path), path.name == "__init__.py"
        )
        for path in sorted((PACKAGE / directory).rglob("*.py"))
    }


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def upward(imports: dict[str, set[str]], forbidden: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports.items()
        for name in names
        if _within(name, forbidden)
    )


def outside(imports: dict[str, set[str]], allowed: tuple[str, ...]) -> list[str]:
    return sorted(
        f"{module} imports {name}"
        for module, names in imports.items()
        for name in names
        if not _within(name, allowed) and name not in HTTP_EXCEPTIONS.get(module, set())
    )


def test_the_grid_imports_nothing_above_it() -> None:
    assert upward(imports_of("grid"), ABOVE_GRID) == []
    assert outside(imports_of("grid"), ("mem8.grid", *BOTTOM)) == []


def test_the_layers_below_the_actors_import_no_actor_and_no_route() -> None:
    for layer in ("storage", "encoders", "senses", "backends"):
        assert upward(imports_of(layer), ("mem8.actors", "mem8.http", "mem8.system")) == []


def test_an_actor_imports_no_other_actor_and_no_route() -> None:
    """Actors meet through messages and the runtime, never through each other's modules."""
    # messages, the runtime, and percepts: the helper any sender uses to encode what it sends
    shared = ("mem8.actors.messages", "mem8.actors.runtime", "mem8.actors.percepts")
    for module, names in imports_of("actors").items():
        others = {n for n in names if _within(n, ("mem8.actors",)) and not _within(n, shared)}
        assert others - {module} == set(), module
        assert upward({module: names}, ("mem8.http", "mem8.system")) == []


def test_http_imports_only_messages_runtime_system_and_errors() -> None:
    assert outside(imports_of("http"), HTTP_MAY_IMPORT) == []


def test_the_contract_sees_every_kind_of_import() -> None:
    """Not vacuous: plain, from, package-relative and lazy imports are all found."""
    source = (
        "import mem8.storage.sqlite\n"
        "from mem8 import errors\n"
        "from mem8.actors.messages import Ack\n"
        "from .forms import read_form\n"
        "def later():\n"
        "    from mem8.grid.placement import BANDS\n"
    )
    found = imported(source, "mem8.http.files")
    assert found == {
        "mem8.storage.sqlite",
        "mem8.errors",
        "mem8.actors.messages",
        "mem8.http.forms",
        "mem8.grid.placement",
    }
    assert outside({"mem8.http.files": found}, HTTP_MAY_IMPORT) == [
        "mem8.http.files imports mem8.grid.placement",
        "mem8.http.files imports mem8.storage.sqlite",
    ]
    assert upward({"mem8.grid.x": {"mem8.memory", "mem8.text"}}, ABOVE_GRID) == [
        "mem8.grid.x imports mem8.memory"
    ]


def test_the_vocabulary_http_spells_out_is_the_domains() -> None:
    """HTTP names bands, modalities and the widest wave itself rather than import them."""
    assert memories.BANDS == placement.BANDS
    assert memories.MODALITIES == MODALITIES
    assert embeddings.MAX_DIMENSIONS == wave.MAX_DIMENSIONS


def _names_imported(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    found: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


def test_ray_is_imported_only_when_the_runtime_is_ray() -> None:
    """Nothing imports Ray or mem8.actors.ray_host at a module's top; only ray_host and the
    sweep's cluster (mem8.sim.cluster) import Ray at all (in their functions), and only the
    system imports ray_host (when it places)."""
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = module_name(path)
        at_top = _names_imported(tree.body)
        anywhere = _names_imported(list(ast.walk(tree)))
        assert not {"ray", "mem8.actors.ray_host"} & at_top, module
        if module not in ("mem8.actors.ray_host", "mem8.sim.cluster"):
            assert not any(_within(name, ("ray",)) for name in anywhere), module
        if module != "mem8.system":
            assert "mem8.actors.ray_host" not in anywhere, module
