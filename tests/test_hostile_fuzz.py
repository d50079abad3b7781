"""Property tests: mutated example specs and mutated model outputs end in a result or located
errors — exit 0 or 1, never 3 (issue 12).

Specs: each example spec of ``specs/`` is read, then keys are deleted, duplicated, retyped,
renamed or nested and strings get control characters, lone surrogates and byte order marks
(through YAML, and into the raw file too); ``promptc check`` must exit 0, or 1 with every
diagnostic at a file:line. Outputs: a build's outputs file in JSON Lines gets characters,
lines, escapes and digits inserted, deleted and duplicated; ``promptc parse`` must exit 0 or
1, every unusable line reported at its file:line:col, every result a JSON line.
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc.cli.app import run

REPO = Path(__file__).resolve().parents[1]
SPEC_NAMES = sorted(p.name for p in (REPO / "specs").glob("*.yaml"))

#: ``file:line:`` or ``file:line:col:`` at the start of a diagnostic.
LOCATED = re.compile(r"^(?:error: )?[^\s:][^:]*:\d+(?::\d+)?: \S")

HOSTILE_CHARS = ["\x00", "\x01", "\x1b", "\x7f", "\ud800", "\udfff", "\ufeff", "\u2028", "\t"]

FUZZ = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def specs_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project folder holding a copy of ``specs/`` (with its data)."""
    root = tmp_path_factory.mktemp("hostile")
    (root / "pyproject.toml").write_text("")
    shutil.copytree(REPO / "specs", root / "specs")
    return root


def invoke(argv: list[str], cwd: Path) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = run(argv)
    return status, out.getvalue(), err.getvalue()


# ---------------------------------------------------------------- mutating specs


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every key path of a YAML document, the root excluded."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield prefix + (k,)
            yield from _paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield prefix + (i,)
            yield from _paths(v, prefix + (i,))


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        doc = doc[key]
    return doc


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.sampled_from([8.0, 8.5, 1e20, -0.0, float("inf"), float("nan")]),
    st.text(max_size=12),
    st.sampled_from(["", "../../etc/passwd", "/abs", "~/x", ".", "data", "{{ 1 }}", "{x}{y}"]),
)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(st.text(max_size=6), scalars, max_size=3),
)


@st.composite
def mutated_spec(draw: st.DrawFn) -> tuple[str, str]:
    """An example spec's name and a mutated text of it."""
    name = draw(st.sampled_from(SPEC_NAMES))
    doc = yaml.safe_load((REPO / "specs" / name).read_text(encoding="utf-8"))
    for _ in range(draw(st.integers(1, 3))):
        paths = list(_paths(doc))
        path = draw(st.sampled_from(paths))
        parent, key = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(["delete", "duplicate", "retype", "rename", "nest", "chars"]))
        if op == "delete":
            del parent[key]
        elif op == "duplicate":
            if isinstance(parent, list):
                parent.append(parent[key])
            else:
                parent[
                    draw(st.sampled_from(["copy", "name", "inputs", "model", str(key) + "_"]))
                ] = parent[key]
        elif op == "retype":
            parent[key] = draw(values)
        elif op == "rename" and isinstance(parent, dict):
            new = draw(
                st.one_of(st.text(max_size=8), st.sampled_from(["Name", "nmae", "strategy"]))
            )
            parent[new] = parent.pop(key)
        elif op == "nest":
            parent[key] = draw(st.sampled_from([{"x": parent[key]}, [parent[key]]]))
        elif op == "chars" and isinstance(parent[key], str):
            text = parent[key]
            at = draw(st.integers(0, len(text)))
            parent[key] = text[:at] + draw(st.sampled_from(HOSTILE_CHARS)) + text[at:]
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if draw(st.booleans()):  # and the file's own text: a raw character anywhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(HOSTILE_CHARS)) + text[at:]
    return name, text


def _check_output_is_located(status: int, stderr: str) -> None:
    assert status in (0, 1), stderr
    if status == 0:
        return
    body = [
        line
        for line in stderr.splitlines()
        if not re.match(r"^\S+: \d+ errors?$|^… and \d+ more$", line)
    ]
    assert body, stderr
    for line in body:
        assert LOCATED.match(line) or line.startswith("<command line>: "), line


@FUZZ
@given(mutated_spec())
def test_check_on_mutated_specs_is_0_or_1_with_located_errors(
    specs_copy: Path, case: tuple[str, str]
) -> None:
    _, text = case
    path = specs_copy / "specs" / "mutated.yaml"
    # Raw lone surrogates cannot be UTF-8: written as the invalid bytes they would be.
    path.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    status, _, err = invoke(["check", "specs/mutated.yaml"], specs_copy)
    _check_output_is_located(status, err)


# ---------------------------------------------------------------- mutating outputs


@pytest.fixture(scope="module")
def built(specs_copy: Path) -> tuple[Path, str]:
    """A batch build of the math spec and a well-formed outputs file for it."""
    status, _, err = invoke(["build", "specs/math-batch.yaml", "-o", "b"], specs_copy)
    assert status == 0, err
    lines = []
    for line in (specs_copy / "b" / "requests.jsonl").read_text().splitlines():
        request = json.loads(line)
        answers = "\n".join(
            f"A[{i}]: {i} and {i} make {2 * i}. The answer is {2 * i}."
            for i in range(1, len(request["item_ids"]) + 1)
        )
        lines.append(json.dumps({"id": request["id"], "output": answers}))
    return specs_copy, "".join(line + "\n" for line in lines)


OUTPUT_INSERTS = [
    "\\ud800",
    "\\udfff",
    "\\u0000",
    "\ufeff",
    "\x00",
    "9" * 5001,
    "-" + "9" * 700,
    "A[1]: ",
    "A[99999999999]: 1",
    "Q[2]: ",
    "\n",
    '"',
    "{",
    "}",
    "\\",
    "\u2028",
]


@st.composite
def mutated_outputs(draw: st.DrawFn, text: str) -> str:
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["insert", "delete", "duplicate-line", "bom"]))
        at = draw(st.integers(0, len(text)))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(OUTPUT_INSERTS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "duplicate-line":
            lines = text.split("\n")
            k = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[: k + 1] + lines[k:])
        else:
            text = "\ufeff" + text
    return text


@FUZZ
@given(st.data())
def test_parse_on_mutated_outputs_is_0_or_1_with_located_errors(
    built: tuple[Path, str], data: st.DataObject
) -> None:
    root, outputs = built
    text = data.draw(mutated_outputs(outputs))
    (root / "outputs.jsonl").write_bytes(text.encode("utf-8", errors="surrogatepass"))
    status, out, err = invoke(["parse", "b", "outputs.jsonl"], root)
    if status == 2:  # only for an outputs file that is not UTF-8 at all, said at the file
        assert err.startswith(("promptc: ", "error: ")), err
        assert "outputs.jsonl" in err and ("not valid UTF-8" in err or "decode" in err), err
        return
    assert status in (0, 1), err
    for line in out.split("\n")[:-1]:  # JSON Lines end at \n only (a text may hold U+2028)
        result = json.loads(line)
        assert result["status"] in (
            "ok",
            "missing",
            "malformed",
            "duplicate",
            "misaligned",
            "extra",
        )
        assert result["status"] == "ok" or result["message"]
    for line in err.splitlines():
        if line.startswith("error: "):
            assert LOCATED.match(line), line
        else:
            assert re.match(r"^\d+ results from \d+ request\(s\): |^note: ", line), line
