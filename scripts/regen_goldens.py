"""Regenerates every golden file: ``python scripts/regen_goldens.py`` (the one command).

- For every spec in ``specs/`` (``*.yaml``) and every strategy, the build's ``requests.jsonl``
  and its grammar files go to ``tests/golden/<spec>/<strategy>/`` (``tests/test_golden.py``).
- The grammars of the hand-made tasks of ``tests/test_grammar.py`` go to
  ``tests/golden_grammars/<task>/<kind>-<n>/``.

Both tests fail, naming this command, when a file on disk differs from what promptc makes now.
Review the diff (``git diff tests/golden tests/golden_grammars``) before committing.

    python scripts/regen_goldens.py           # rewrite the golden files
    python scripts/regen_goldens.py --check   # exit 1 and list stale files, write nothing
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
GOLDEN = REPO / "tests" / "golden"
GRAMMAR_GOLDEN = REPO / "tests" / "golden_grammars"
STRATEGIES = ("single", "few-shot", "batch", "auto-demo")
COMMAND = "python scripts/regen_goldens.py"
#: The build files kept as golden files: the rendered requests and the grammar files.
KEPT_SUFFIXES = (".lark", ".gbnf", ".schema.json", ".regex")


def example_specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


def strategies_of(spec: Path) -> tuple[str, ...]:
    """The strategies a spec builds in: all four."""
    return STRATEGIES


def build_files(spec: Path, strategy: str) -> dict[str, str]:
    """The golden files of one spec × strategy, by file name."""
    from promptc.build import assemble
    from promptc.spec.lower import compile_spec

    task = compile_spec(spec, overrides={("strategy", "kind"): strategy})
    files = assemble(task).files
    return {
        name: text
        for name, text in files.items()
        if name == "requests.jsonl" or name.endswith(KEPT_SUFFIXES)
    }


def expected_files() -> dict[Path, str]:
    """Every golden file, by its path under ``tests/golden``."""
    out: dict[Path, str] = {}
    for spec in example_specs():
        for strategy in strategies_of(spec):
            for name, text in build_files(spec, strategy).items():
                out[Path(spec.stem) / strategy / name] = text
    return out


def grammar_golden_files() -> dict[Path, str]:
    """The hand-made tasks' golden grammars, as ``tests/test_grammar.py`` defines them."""
    import importlib.util

    path = REPO / "tests" / "test_grammar.py"
    spec = importlib.util.spec_from_file_location("promptc_test_grammar", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    files: dict[Path, str] = module.grammar_golden_files()
    return files


def stale(expected: dict[Path, str], root: Path = GOLDEN) -> list[str]:
    """Golden files under ``root`` that differ, are missing, or should no longer exist."""
    problems = []
    for rel, text in sorted(expected.items()):
        path = root / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {rel}")
    on_disk = {p.relative_to(root) for p in root.rglob("*") if p.is_file()}
    problems += [f"no longer built: {rel}" for rel in sorted(on_disk - set(expected))]
    return problems


def rewrite(root: Path, expected: dict[Path, str]) -> None:
    """Replaces every file under ``root`` with ``expected`` (paths relative to ``root``)."""
    if root.exists():
        for p in sorted(root.rglob("*"), reverse=True):
            if p.is_file():
                p.unlink()
            elif p.is_dir():
                p.rmdir()
    for rel, text in sorted(expected.items()):
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)


def main(argv: list[str]) -> int:
    sets = [(GOLDEN, expected_files()), (GRAMMAR_GOLDEN, grammar_golden_files())]
    if "--check" in argv:
        problems = [
            f"{root.relative_to(REPO)}: {p}" for root, files in sets for p in stale(files, root)
        ]
        for p in problems:
            print(p)
        return 1 if problems else 0
    for root, files in sets:
        rewrite(root, files)
        print(f"wrote {len(files)} golden files under {root.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
