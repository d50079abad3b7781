"""The package's layering, checked on its source (AST), so that the next change cannot break it.

- No stage imports the CLI: only ``promptc.cli.*`` (and ``promptc.__main__``) may import
  ``promptc.cli``.
- ``promptc.errors``, ``promptc.text`` and ``promptc.limits`` import nothing of promptc.
- No private name (``_x``) is imported from another module, and none is reached through a
  module attribute (``module._x``).
- No import cycles among promptc's modules (imports inside functions count: they are the
  same dependency, taken later).
- Every package folder is listed in ``pyproject.toml``, so the wheel cannot leave one out.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "compiler" / "promptc"
#: Modules that import nothing of promptc but other leaves (``promptc.records``, the one
#: leaf another imports, imports nothing of promptc at all).
LEAVES = frozenset({"promptc.errors", "promptc.text", "promptc.limits", "promptc.records"})


@dataclass(frozen=True)
class Import:
    """One ``import``/``from … import`` of a promptc module."""

    module: str  # the importing module
    target: str  # the imported module
    names: tuple[str, ...]  # names taken from it (``from`` imports)
    line: int


def module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def package_modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(module: str, path: Path, modules: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "promptc":
                    yield Import(module, alias.name, (), node.lineno)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")
                base = ".".join(up[: len(up) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != "promptc":
                continue
            names = tuple(a.name for a in node.names)
            # ``from promptc.select import neighbors`` imports a module, not a name.
            submodules = [n for n in names if f"{base}.{n}" in modules]
            for n in submodules:
                yield Import(module, f"{base}.{n}", (), node.lineno)
            rest = tuple(n for n in names if n not in submodules)
            if rest:
                yield Import(module, base, rest, node.lineno)


def all_imports() -> list[Import]:
    mods = package_modules()
    names = set(mods)
    return [imp for m, p in mods.items() for imp in imports_of(m, p, names)]


def is_cli(module: str) -> bool:
    return module == "promptc.cli" or module.startswith("promptc.cli.")


def cli_imports_in_stages(imports: list[Import]) -> list[str]:
    return [
        f"{i.module} (line {i.line}) imports {i.target}"
        for i in imports
        if is_cli(i.target) and not is_cli(i.module) and i.module != "promptc.__main__"
    ]


def test_no_stage_imports_the_cli() -> None:
    assert cli_imports_in_stages(all_imports()) == []


def test_the_layering_test_catches_a_stage_importing_the_cli(tmp_path: Path) -> None:
    """The rule above is not vacuous: a stage with a CLI import is reported."""
    stage = tmp_path / "promptc" / "build.py"
    stage.parent.mkdir()
    stage.write_text("from promptc.cli.common import plural\n", encoding="utf-8")
    found = list(imports_of("promptc.build", stage, set()))
    assert cli_imports_in_stages(found) == ["promptc.build (line 1) imports promptc.cli.common"]


@pytest.mark.parametrize("leaf", sorted(LEAVES))
def test_leaf_modules_import_nothing_of_promptc(leaf: str) -> None:
    allowed = set() if leaf == "promptc.records" else {"promptc.records"}
    assert [i for i in all_imports() if i.module == leaf and i.target not in allowed] == []


def test_no_private_name_crosses_a_module_boundary() -> None:
    crossing = [
        f"{i.module} (line {i.line}) imports {n} from {i.target}"
        for i in all_imports()
        for n in i.names
        if n.startswith("_") and not n.startswith("__")
    ]
    assert crossing == []


def test_no_private_module_attribute_is_reached_from_outside() -> None:
    """``import promptc.x as m; m._y`` is the same crossing as ``from promptc.x import _y``."""
    mods = package_modules()
    found = []
    for module, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        aliases: dict[str, str] = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("promptc."):
                        aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom) and node.module:
                for a in node.names:
                    if f"{node.module}.{a.name}" in mods:
                        aliases[a.asname or a.name] = f"{node.module}.{a.name}"
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
                and aliases[node.value.id] != module
            ):
                found.append(f"{module} (line {node.lineno}) uses {node.value.id}.{node.attr}")
    assert found == []


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (as a path that returns to its start), or ``None``."""
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)) is not None:
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)) is not None:
            return cycle
    return None


def import_graph() -> dict[str, set[str]]:
    mods = set(package_modules())
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for i in all_imports():
        target = i.target
        while target not in mods and "." in target:
            target = target.rpartition(".")[0]
        # A package's __init__ re-exporting its own modules is not a cycle through them.
        if target != i.module and not i.module.startswith(target + "."):
            graph[i.module].add(target)
    return graph


def test_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_every_package_folder_is_in_the_wheel() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    listed = set(config["tool"]["setuptools"]["packages"])
    folders = {module_name(p) for p in PACKAGE.rglob("__init__.py")}
    assert folders - listed == set()
    assert {"promptc.templates", "promptc.grammars"} <= listed


def test_no_function_imports_what_the_module_already_imports() -> None:
    """An import inside a function is for laziness; repeating a top-level one is noise."""
    found = []
    for module, path in package_modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        top: set[tuple[str | None, str | None, str | None]] = set()
        for node in tree.body:
            if isinstance(node, ast.Import):
                top |= {(a.name, None, a.asname) for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                top |= {(node.module, a.name, a.asname) for a in node.names}
        for fn in ast.walk(tree):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    keys = [(a.name, None, a.asname) for a in node.names]
                elif isinstance(node, ast.ImportFrom):
                    keys = [(node.module, a.name, a.asname) for a in node.names]
                else:
                    continue
                found += [f"{module} (line {node.lineno}): {k}" for k in keys if k in top]
    assert found == []
