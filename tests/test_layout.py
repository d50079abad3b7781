"""The package's layering, checked on its source (AST), so that the next change cannot break it.

- Layering by rank: docs/architecture.md lists the layers from the bottom up, and no module
  imports from a layer above its own.
- No stage imports the CLI: only ``promptc.cli.*`` (and ``promptc.__main__``) may import
  ``promptc.cli``.
- The leaves (the first layer) import nothing of promptc.
- No private name (``_x``) is imported from another module, and none is reached through a
  module attribute (``module._x``).
- No import cycles among promptc's modules (imports inside functions count: they are the
  same dependency, taken later).
- Every package folder is listed in ``pyproject.toml``, so the wheel cannot leave one out.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "compiler" / "promptc"
ARCHITECTURE = REPO / "docs" / "architecture.md"


def layers() -> list[list[str]]:
    """The layers of docs/architecture.md's list, from the bottom up: each a list of modules
    (``promptc.spec`` covers its subpackage; ``promptc`` alone is the package's face)."""
    text = ARCHITECTURE.read_text(encoding="utf-8")
    section = text.split("## What may import what", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in section.splitlines():
        if re.match(r"\d+\. ", line):
            names = re.findall(r"`([a-z_]+)`", line.split(" — ")[0])
            out.append(["promptc" if n == "promptc" else f"promptc.{n}" for n in names])
    return out


LAYERS = layers()
#: Modules that import nothing of promptc: the first layer.
LEAVES = frozenset(LAYERS[0])


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


def annotations_only(tree: ast.AST) -> set[int]:
    """The ids of the nodes under ``if TYPE_CHECKING:``: imports for annotations only, which
    are no dependency."""
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and (
            (isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING")
            or (isinstance(node.test, ast.Attribute) and node.test.attr == "TYPE_CHECKING")
        ):
            out.update(id(sub) for stmt in node.body for sub in ast.walk(stmt))
    return out


def imports_of(module: str, path: Path, modules: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    skip = annotations_only(tree)
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
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
    assert [i for i in all_imports() if i.module == leaf] == []


def rank(module: str) -> int | None:
    """The layer of a module (0 at the bottom), or ``None`` if the list names none."""
    for r, layer in enumerate(LAYERS):
        for name in layer:
            if module == name or (name != "promptc" and module.startswith(name + ".")):
                return r
    return None


def upward_imports(imports: list[Import]) -> list[str]:
    """Every import of a module from a layer above its own."""
    out = []
    for i in imports:
        mine, theirs = rank(i.module), rank(i.target)
        if mine is not None and theirs is not None and theirs > mine:
            out.append(f"{i.module} (line {i.line}) imports {i.target}, a higher layer")
    return out


def test_the_architecture_lists_the_layers() -> None:
    assert len(LAYERS) >= 10 and ["promptc.ir"] in LAYERS


def test_every_module_has_a_layer() -> None:
    assert [m for m in package_modules() if rank(m) is None] == []


def test_no_module_imports_from_a_higher_layer() -> None:
    assert upward_imports(all_imports()) == []


def test_the_layering_test_catches_an_import_from_a_higher_layer(tmp_path: Path) -> None:
    """The rule above is not vacuous: the grammar importing the renderer is reported."""
    stage = tmp_path / "promptc" / "grammar" / "answer.py"
    stage.parent.mkdir(parents=True)
    stage.write_text("from promptc.render.renderer import Renderer\n", encoding="utf-8")
    found = list(imports_of("promptc.grammar.answer", stage, {"promptc.render.renderer"}))
    assert upward_imports(found) == [
        "promptc.grammar.answer (line 1) imports promptc.render.renderer, a higher layer"
    ]


def test_an_import_for_annotations_only_is_no_dependency(tmp_path: Path) -> None:
    """The value types name the IR's output field in annotations only (``if TYPE_CHECKING:``):
    that is not an import from a higher layer, but the same import at run time is."""
    stage = tmp_path / "promptc" / "values" / "types.py"
    stage.parent.mkdir(parents=True)
    stage.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from promptc.ir import OutputField\n"
        "from promptc.ir import Task\n",
        encoding="utf-8",
    )
    found = list(imports_of("promptc.values.types", stage, set()))
    assert upward_imports(found) == [
        "promptc.values.types (line 4) imports promptc.ir, a higher layer"
    ]


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


#: Rooms of a readable size (docs/architecture.md): a module, a function.
MAX_MODULE_LINES = 800
MAX_FUNCTION_LINES = 80


def oversized(root: Path) -> list[str]:
    """The modules over :data:`MAX_MODULE_LINES` lines and functions over
    :data:`MAX_FUNCTION_LINES` under ``root``, each named with its length."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        source = path.read_text(encoding="utf-8")
        where = path.relative_to(root)
        if source.count("\n") > MAX_MODULE_LINES:
            found.append(f"{where}: {source.count(chr(10))} lines")
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{where}:{node.lineno} {node.name}: {length} lines")
    return found


def test_no_module_or_function_is_over_its_size() -> None:
    assert oversized(PACKAGE) == []


def test_the_size_test_catches_a_long_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    (tmp_path / "long.py").write_text(f"def f() -> None:\n{body}", encoding="utf-8")
    assert oversized(tmp_path) == [f"long.py:1 f: {MAX_FUNCTION_LINES + 1} lines"]
