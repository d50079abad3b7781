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
import importlib
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


#: The stage entry points :mod:`promptc.api` wraps, each with the public function that does its
#: job (docs/api.md): the commands are built on the API, so none reaches past it to the stage
#: (``promptc.build`` and ``promptc.parse``/``promptc.run`` re-export some of them by name).
#: ``promptc parse`` (``cli/parse.py``) is left out: it reads outputs a way the API does not.
API_WRAPS = {
    "promptc.spec.lower.compile_spec": "load_spec",
    "promptc.render.checks.check_templates": "load_spec",
    "promptc.render.checks.raise_template_errors": "load_spec",
    "promptc.select.methods.missing_requirements": "load_spec",
    "promptc.render.output_budget.budget_warning": "spec_warnings",
    "promptc.build.produce.Producer": "iter_requests",
    "promptc.build.produce.iter_requests": "iter_requests",
    "promptc.build.iter_requests": "iter_requests",
    "promptc.build.make.build": "write_build",
    "promptc.build.build": "write_build",
    "promptc.build.requests.read_requests": "open_build",
    "promptc.build.read_requests": "open_build",
    "promptc.build.task_file.read_task": "open_build",
    "promptc.build.read_task": "open_build",
    "promptc.parse.output.parse_output": "parse_output",
    "promptc.parse.parse_output": "parse_output",
    "promptc.run.orchestrate.run_build": "run_build",
    "promptc.run.collect.collect": "collect",
    "promptc.eval.runner.run_variants": "run_variants",
    "promptc.eval.report.build_report": "evaluate",
    "promptc.eval.report.write_report": "evaluate",
    "promptc.eval.results.read_variant": "evaluate",
    "promptc.plan.estimate.plan_spec": "plan_spec",
    "promptc.plan.probe.probe": "plan_spec",
}
#: The command modules that may use the stages directly.
PAST_THE_API = frozenset({"promptc.cli.parse"})


def dotted(node: ast.expr) -> str | None:
    """``a.b.c`` for a name or a chain of attributes on one, else ``None``."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = dotted(node.value)
        return None if base is None else f"{base}.{node.attr}"
    return None


def reached_past_the_api(module: str, path: Path, modules: set[str]) -> list[str]:
    """Every stage entry point of :data:`API_WRAPS` that ``module`` imports by name, or reaches
    as an attribute of a module it imports (``from promptc import build as b; b.build``)."""
    found = [
        f"{i.module} (line {i.line}) imports {i.target}.{n}: use promptc.api."
        + API_WRAPS[f"{i.target}.{n}"]
        for i in imports_of(module, path, modules)
        for n in i.names
        if f"{i.target}.{n}" in API_WRAPS
    ]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    aliases: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("promptc"):
                    name = a.asname or a.name.split(".")[0]
                    aliases[name] = a.name if a.asname else name
        elif isinstance(node, ast.ImportFrom) and node.module:
            for a in node.names:
                if f"{node.module}.{a.name}" in modules:
                    aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    for node in ast.walk(tree):
        name = dotted(node) if isinstance(node, ast.Attribute) else None
        if name is None or name.split(".")[0] not in aliases:
            continue
        head, _, rest = name.partition(".")
        full = f"{aliases[head]}.{rest}"
        if full in API_WRAPS:
            found.append(
                f"{module} (line {node.lineno}) uses {full}: use promptc.api.{API_WRAPS[full]}"
            )
    return found


def test_the_commands_are_built_on_the_public_api() -> None:
    mods = package_modules()
    found = [
        line
        for module, path in mods.items()
        if is_cli(module) and module not in PAST_THE_API
        for line in reached_past_the_api(module, path, set(mods))
    ]
    assert found == []


def test_every_entry_point_the_rule_names_exists() -> None:
    """The rule above names real functions: a renamed stage cannot leave it checking nothing."""
    for name, instead in API_WRAPS.items():
        module, _, attr = name.rpartition(".")
        assert hasattr(importlib.import_module(module), attr), name
        assert hasattr(importlib.import_module("promptc.api"), instead), name


def test_the_api_rule_catches_a_command_reaching_past_it(tmp_path: Path) -> None:
    """The rule is not vacuous: a stage function imported by name, or reached through its
    module, is reported with the API function to use instead."""
    command = tmp_path / "promptc" / "cli" / "build.py"
    command.parent.mkdir(parents=True)
    command.write_text(
        "from promptc import build as build_mod\n"
        "from promptc.spec.lower import compile_spec\n"
        "import promptc.plan.estimate\n"
        "build_mod.build(compile_spec('x'), 'out')\n"
        "promptc.plan.estimate.plan_spec('x', [])\n",
        encoding="utf-8",
    )
    modules = {"promptc.build", "promptc.spec.lower", "promptc.plan.estimate"}
    assert reached_past_the_api("promptc.cli.build", command, modules) == [
        (
            "promptc.cli.build (line 2) imports promptc.spec.lower.compile_spec: "
            "use promptc.api.load_spec"
        ),
        "promptc.cli.build (line 4) uses promptc.build.build: use promptc.api.write_build",
        (
            "promptc.cli.build (line 5) uses promptc.plan.estimate.plan_spec: "
            "use promptc.api.plan_spec"
        ),
    ]
