"""Regenerates the golden files of the example specs: ``python scripts/regen_goldens.py``.

For every spec in ``specs/`` (``*.yaml``) and every strategy, the build's ``requests.jsonl``
and its grammar files go to ``tests/golden/<spec>/<strategy>/``. ``tests/test_golden.py``
fails, naming this command, when a file on disk differs from what promptc builds now.
Review the diff (``git diff tests/golden``) before committing regenerated files.

    python scripts/regen_goldens.py           # rewrite the golden files
    python scripts/regen_goldens.py --check   # exit 1 and list stale files, write nothing
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SPECS = REPO / "specs"
GOLDEN = REPO / "tests" / "golden"
STRATEGIES = ("single", "few-shot", "batch", "auto-demo")
COMMAND = "python scripts/regen_goldens.py"
#: The build files kept as golden files: the rendered requests and the grammar files.
KEPT_SUFFIXES = (".lark", ".gbnf", ".schema.json", ".regex")


def example_specs() -> list[Path]:
    return sorted(SPECS.glob("*.yaml"))


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
        for strategy in STRATEGIES:
            for name, text in build_files(spec, strategy).items():
                out[Path(spec.stem) / strategy / name] = text
    return out


def stale(expected: dict[Path, str]) -> list[str]:
    """Golden files that differ, are missing, or should no longer exist."""
    problems = []
    for rel, text in sorted(expected.items()):
        path = GOLDEN / rel
        if not path.is_file():
            problems.append(f"missing: {rel}")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"differs: {rel}")
    on_disk = {p.relative_to(GOLDEN) for p in GOLDEN.rglob("*") if p.is_file()}
    problems += [f"no longer built: {rel}" for rel in sorted(on_disk - set(expected))]
    return problems


def main(argv: list[str]) -> int:
    expected = expected_files()
    if "--check" in argv:
        problems = stale(expected)
        for p in problems:
            print(p)
        return 1 if problems else 0
    if GOLDEN.exists():
        for p in sorted(GOLDEN.rglob("*"), reverse=True):
            if p.is_file():
                p.unlink()
            elif p.is_dir():
                p.rmdir()
    for rel, text in sorted(expected.items()):
        path = GOLDEN / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
    print(f"wrote {len(expected)} golden files under {GOLDEN.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
