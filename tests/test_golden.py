"""Golden files: the rendered requests and grammars of every example spec × strategy.

Regenerate with ``python scripts/regen_goldens.py`` after an intended change, and review the
diff. Also: builds are byte-identical on rebuild, and every example spec builds in all four
strategies.
"""

from __future__ import annotations

import filecmp
import hashlib
import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from promptc.build import build
from promptc.spec.lower import compile_spec

REPO = Path(__file__).resolve().parents[1]


def _regen() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "regen_goldens", REPO / "scripts" / "regen_goldens.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["regen_goldens"] = module
    spec.loader.exec_module(module)
    return module


regen = _regen()
CASES = [(s, k) for s in regen.example_specs() for k in regen.strategies_of(s)]


def test_there_are_example_specs_for_every_required_task() -> None:
    names = {p.stem for p in regen.example_specs()}
    assert {"sentiment", "math", "reading", "nli"} <= names
    assert any("extends" in p.read_text(encoding="utf-8") for p in regen.example_specs())


@pytest.mark.parametrize(("spec", "strategy"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_goldens_on_disk_are_current(spec: Path, strategy: str) -> None:
    folder = regen.GOLDEN / spec.stem / strategy
    built = regen.build_files(spec, strategy)
    # grammars/<request id>.* too: the requests' own grammars of a spec with choices_from.
    on_disk = (
        {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
        if folder.is_dir()
        else set()
    )
    hint = f"golden files are stale; regenerate them with: {regen.COMMAND} (then review git diff)"
    assert set(built) == on_disk, hint
    for name, text in built.items():
        assert (folder / name).read_text(encoding="utf-8") == text, f"{name}: {hint}"


def test_no_stray_golden_folders() -> None:
    expected = {f"{s.stem}/{k}" for s, k in CASES}
    found = {f"{p.parent.name}/{p.name}" for p in regen.GOLDEN.glob("*/*") if p.is_dir()}
    assert found == expected, f"regenerate with: {regen.COMMAND}"


def test_goldens_hold_clean_prompts() -> None:
    """No stray blank lines or trailing spaces in any rendered message."""
    import json

    for path in regen.GOLDEN.glob("*/*/requests.jsonl"):
        for line in path.read_text(encoding="utf-8").splitlines():
            for m in json.loads(line)["messages"]:
                text = m["content"]
                assert text == text.strip(), path
                assert "\n\n\n" not in text, path
                assert not any(l != l.rstrip() for l in text.split("\n")), path


@pytest.mark.parametrize("spec", regen.example_specs(), ids=lambda p: p.stem)
def test_rebuild_is_byte_identical(spec: Path, tmp_path: Path) -> None:
    task = compile_spec(spec)
    first = build(task, tmp_path / "a")
    build(compile_spec(spec), tmp_path / "b")
    names = sorted(p.relative_to(tmp_path / "a").as_posix() for p in (tmp_path / "a").rglob("*"))
    # The requests' own grammars (grammars/<request id>.*) are listed in batches.jsonl, with
    # their sha256, rather than in memory: a build's memory does not grow with its requests.
    batches = (tmp_path / "a" / "batches.jsonl").read_text(encoding="utf-8").splitlines()
    own = {n: h for r in map(json.loads, batches) for n, h in r["grammar_files"].items()}
    assert names == sorted({*first.files, *own, *(["grammars"] if own else [])})
    for name, digest in own.items():
        assert hashlib.sha256((tmp_path / "a" / name).read_bytes()).hexdigest() == digest
    names = [n for n in names if n != "grammars"]
    _, mismatch, errors = filecmp.cmpfiles(tmp_path / "a", tmp_path / "b", names, shallow=False)
    assert (mismatch, errors) == ([], [])
    before = {n: (tmp_path / "a" / n).read_bytes() for n in names}
    build(compile_spec(spec), tmp_path / "a")  # into the same folder
    assert {n: (tmp_path / "a" / n).read_bytes() for n in names} == before


def test_manifest_is_the_same_on_every_machine(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of the project in different places, built from different working folders,
    give byte-identical builds: every path in them is relative."""
    import shutil

    outputs = []
    for root in (tmp_path / "machine-a" / "deep" / "project", tmp_path / "machine-b"):
        shutil.copytree(regen.SPECS, root / "specs")
        (root / "pyproject.toml").write_text("[project]\nname = 'x'\n", encoding="utf-8")
        monkeypatch.chdir(root.parent)
        build(compile_spec(root / "specs" / "math-batch.yaml"), root / "build")
        outputs.append({p.name: p.read_bytes() for p in (root / "build").iterdir()})
    assert outputs[0] == outputs[1]
    assert str(tmp_path).encode() not in outputs[0]["manifest.json"]


def _sample_value(field: object) -> object:
    from decimal import Decimal

    from promptc import ir

    assert isinstance(field, ir.OutputField)
    return {
        "text": "Worked it out step by step",
        "number": Decimal("-1234.5"),
        "integer": 42,
        "boolean": True,
        # An item's own options are at least one: (a) answers every item.
        "enum": (field.choices[0] if field.choices_from else field.choices[-1])
        if field.choices
        else "",
    }[field.type.name]


@pytest.mark.parametrize(("spec", "strategy"), CASES, ids=[f"{s.stem}-{k}" for s, k in CASES])
def test_answers_written_as_the_prompt_asks_parse_strictly(spec: Path, strategy: str) -> None:
    """What the shipped templates ask the model to write is exactly what the answer grammar
    accepts: an answer written as the prompt's solved examples are written parses ``ok`` in
    strict mode, with the values it was written from."""
    from promptc import markers
    from promptc.build import assemble
    from promptc.parse.output import parse_output
    from promptc.spec.answer_format import write_answer

    task = compile_spec(spec, overrides={("strategy", "kind"): strategy})
    values = {o.name: _sample_value(o) for o in task.outputs}
    answer = write_answer(task.answer_format, task.outputs, values)
    by_id = {it.id: it for it in task.items}
    for request in assemble(task).requests[:2]:
        if strategy in ("single", "few-shot"):
            output = answer
        else:
            lines = []
            for i, item_id in enumerate(request.batch.item_ids, 1):
                if strategy == "auto-demo":  # as the prompt's solved examples show questions
                    inputs = by_id[item_id].inputs
                    lines.append(markers.question_block(task.inputs, inputs, i, task.markers))
                lines.append(f"{markers.answer_marker(i, task.markers)} {answer}")
            output = "\n".join(lines)
        results = parse_output(task, request, output, mode="strict")
        assert [r.status for r in results] == ["ok"] * len(request.batch.item_ids), output
        assert all(dict(r.values) == values for r in results)
