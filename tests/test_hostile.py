"""Hostile and broken input: every case ends in a located error or a result, in bounded time and
memory, never exit 3 (issue 12). Each test is one class of attack with several cases, run by
:func:`hostile.run_capped` in one process under a memory cap and a time budget; each asserts
the exact exit status and the located message.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hostile import run_capped
from promptc.errors import PromptcErrors
from promptc.limits import MAX_BATCH_SIZE
from promptc.sandbox.budget import MAX_RENDER_MEMORY
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"

REPO = Path(__file__).resolve().parents[1]

BASE = """\
promptc: 1
name: t
instruction: Solve.
inputs:
  question: {type: text}
outputs:
  answer: {type: integer}
data: {path: data/q.jsonl, id: qid}
strategy: {kind: batch, batch_size: 4}
model: {name: m, max_tokens: 10}
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project folder with a 6-item data file and ``base.yaml``."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "data").mkdir()
    rows = [{"qid": f"q{i}", "question": f"What is {i} + {i}?"} for i in range(1, 7)]
    (tmp_path / "data" / "q.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "base.yaml").write_text(BASE)
    return tmp_path


def spec(project: Path, name: str, old: str, new: str) -> str:
    text = BASE.replace(old, new)
    assert text != BASE or old == new
    (project / name).write_text(text, encoding="utf-8")
    return name


def lines(stderr: str) -> list[str]:
    return stderr.splitlines()


# ---------------------------------------------------------------- 1. bounded sizes


def test_batch_sizes_are_bounded_in_check_build_and_the_command_line(project: Path) -> None:
    huge = spec(project, "huge.yaml", "batch_size: 4", "batch_size: 100000000000000000000")
    over = spec(project, "over.yaml", "batch_size: 4", f"batch_size: {MAX_BATCH_SIZE + 1}")
    flt = spec(project, "float.yaml", "batch_size: 4", "batch_size: 1.0e+20")
    top = spec(project, "top.yaml", "batch_size: 4", f"batch_size: {MAX_BATCH_SIZE}")
    out = run_capped(
        [
            ["check", huge],
            ["build", huge, "-o", "b1"],
            ["check", over],
            ["check", flt],
            ["check", "base.yaml", "--batch-size", "1000000000"],
            ["build", "base.yaml", "--batch-size", str(MAX_BATCH_SIZE + 1), "-o", "b2"],
            ["build", top, "-o", "b3"],
        ],
        project,
    )
    assert [o.status for o in out] == [1, 1, 1, 1, 2, 2, 0]
    assert lines(out[0].stderr) == [
        (
            "huge.yaml:9:37: strategy.batch_size: expected an integer of at most 1000, found "
            "100000000000000000000"
        ),
        "huge.yaml: 1 error",
    ]
    assert lines(out[1].stderr)[0] == lines(out[0].stderr)[0]
    assert lines(out[2].stderr)[0] == (
        "over.yaml:9:37: strategy.batch_size: expected an integer of at most 1000, found 1001"
    )
    assert lines(out[3].stderr)[0] == (
        "float.yaml:9:37: strategy.batch_size: expected an integer of at most 1000, found 1e+20"
    )
    for o, n in ((out[4], 1000000000), (out[5], MAX_BATCH_SIZE + 1)):
        assert f"Invalid value for '--batch-size': {n} is not in the range 1<=x<=1000." in o.stderr
    # 6 items in one request of up to 1000: the grammar of the shape the request has, only.
    built = sorted(p.name for p in (project / "b3").iterdir())
    assert [n for n in built if n.startswith("answer")] == [
        "answer-6.gbnf",
        "answer-6.lark",
        "answer-6.parse.regex",
        "answer-6.regex",
        "answer-6.schema.json",
    ]
    assert sum((project / "b3" / n).stat().st_size for n in built) < 100_000


# ---------------------------------------------------------------- 2. rendering budgets

TEMPLATE_ATTACKS = {
    "nested-loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}x{% endfor %}{% endfor %}",
        "1,000,000 loop iterations per message: the loops of this message ran more often",
    ),
    "silent-nested-loops": (
        "{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}{% endfor %}",
        "1,000,000 loop iterations per message: the loops of this message ran more often",
    ),
    "huge-power": (
        "{{ 10 ** 100000000 }}",
        "100,000-bit integers: an arithmetic expression would compute a larger one",
    ),
    "power-tower": (
        "{% set x = 10 ** 3000 %}{{ x * x * x * x * x * x * x * x * x * x * x }}",
        "100,000-bit integers: an arithmetic expression would compute a larger one",
    ),
    "string-repetition": (
        "{{ 'x' * 10**10 }}",
        "2,000,000 characters (or list items) per value: a repetition would build a larger one",
    ),
    "list-of-lists": (
        "{{ [[1] * 1000000] * 1000000 }}",
        "2,000,000 characters (or list items) per value: a repetition would build a larger one",
    ),
    # No hook of Jinja's sandbox sees ``~`` (it compiles to a plain join of strings): the
    # doubling meets the memory limit around rendering instead of the value bound.
    "doubling-concat": (
        '{% set s = "xx" %}' + "{% set s = s ~ s %}" * 30 + "{{ s }}",
        "the memory this process may use: the template asked for more",
    ),
    "doubling-namespace": (
        (
            '{% set ns = namespace(s="xx") %}{% for i in range(40) %}{% set ns.s = ns.s + ns.s %}'
            "{% endfor %}{{ ns.s }}"
        ),
        "2,000,000 characters (or list items) per value: an expression built a larger one",
    ),
    "center-filter": (
        "{{ 'x' | center(10**10) }}",
        "2,000,000 characters per value: a width or count asks for more",
    ),
    "ljust-method": (
        "{{ 'x'.ljust(10**10) }}",
        "2,000,000 characters per value: a width or count asks for more",
    ),
    "replace-blowup": (
        "{{ ('x' * 1000000) | replace('x', 'x' * 1000000) }}",
        "2,000,000 characters per value: a width or count asks for more",
    ),
    "percent-width": (
        "{{ '%10000000000s' % 'x' }}",
        "2,000,000 characters per value: a width or count asks for more",
    ),
    "format-width": (
        "{{ '{:>10000000000}'.format('x') }}",
        "2,000,000 characters per value: a width or count asks for more",
    ),
    "long-message": (
        "{% for i in range(3000) %}{{ 'y' * 1000 }}{% endfor %}",
        "2,000,000 characters per message: the user message grows longer",
    ),
    "self-include-without-context": (
        '{% include "my.j2" without context %}',
        (
            "64 nested macro calls and includes: a macro or include nests deeper (one that calls "
            "or includes itself without end?)"
        ),
    ),
    "self-import": (
        '{% import "my.j2" as m %}',
        (
            "64 nested macro calls and includes: a macro or include nests deeper (one that calls "
            "or includes itself without end?)"
        ),
    ),
    "recursive-macro": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(1) }}",
        (
            "64 nested macro calls and includes: a macro or include nests deeper (one that calls "
            "or includes itself without end?)"
        ),
    ),
    "self-include": (
        '{% include "my.j2" %}',
        (
            "64 nested macro calls and includes: a macro or include nests deeper (one that calls "
            "or includes itself without end?)"
        ),
    ),
    "recursive-loop": (
        "{% set t = [1] %}{% for x in [t, t] recursive %}{{ loop([x, x]) }}{% endfor %}",
        (
            "64 nested macro calls and includes: a macro or include nests deeper (one that calls "
            "or includes itself without end?)"
        ),
    ),
}


def test_a_specs_own_template_is_rendered_within_budgets(project: Path) -> None:
    commands = []
    for name, (body, _) in TEMPLATE_ATTACKS.items():
        folder = project / name
        folder.mkdir()
        (folder / "data").mkdir()
        (folder / "data" / "q.jsonl").write_bytes((project / "data" / "q.jsonl").read_bytes())
        (folder / "my.j2").write_text("{% block user %}\n" + body + "\n{% endblock %}\n")
        text = BASE.replace("model:", "templates: {batch: my.j2}\nmodel:")
        (folder / "s.yaml").write_text(text)
        commands.append(["check", f"{name}/s.yaml"])
    commands.append(["build", "recursive-macro/s.yaml", "-o", "out"])
    out = run_capped(commands, project)
    for (name, (_, why)), o in zip(TEMPLATE_ATTACKS.items(), out, strict=False):
        assert o.status == 1, (name, o.stderr)
        line = 1 if name == "long-message" else 2  # the message's block, or the expression
        assert lines(o.stderr) == [
            f"{name}/my.j2:{line}: template exceeds the limit of {why}",
            f"{name}/s.yaml: 1 error",
        ], name
    assert out[-1].status == 1
    assert lines(out[-1].stderr)[0] == lines(out[len(TEMPLATE_ATTACKS) - 3].stderr)[0]


def test_data_too_long_for_a_message_is_said_at_its_row_or_its_request(project: Path) -> None:
    # One input no message can carry: check and build agree, at the data row. Inputs that
    # only together outgrow a message: build names the request, its items and the longest
    # item's data row (check renders no batch of the data).
    rows = [{"qid": f"q{i}", "question": f"What is {i} + {i}?"} for i in range(1, 3)]
    one = [*rows, {"qid": "big", "question": "x" * 2_000_001}]
    several = [*rows, *({"qid": f"b{i}", "question": "y" * (1_000_000 + i)} for i in range(3))]
    for name, data in (("one", one), ("several", several)):
        (project / name / "data").mkdir(parents=True)
        text = "".join(json.dumps(r) + "\n" for r in data)
        (project / name / "data" / "q.jsonl").write_text(text)
        (project / name / "s.yaml").write_text(BASE)
    out = run_capped(
        [
            ["check", "one/s.yaml"],
            ["build", "one/s.yaml", "-o", "one/b"],
            ["check", "several/s.yaml"],
            ["build", "several/s.yaml", "-o", "several/b"],
        ],
        project,
    )
    assert [o.status for o in out] == [1, 1, 0, 1]
    said = (
        "one/data/q.jsonl:3:1: field 'question' (for input 'question') holds 2,000,001 "
        "characters; a message holds at most 2,000,000"
    )
    assert lines(out[0].stderr) == [said, "one/s.yaml: 1 error"]
    assert lines(out[1].stderr)[0] == said
    assert lines(out[3].stderr) == [
        (
            "<promptc>/batch.j2:31: template exceeds the limit of 2,000,000 characters per "
            "message: the user message grows longer (while rendering request r0001, of items q1, "
            "q2, b0, b1; its longest item is b1, 1,000,001 characters of inputs at "
            "several/data/q.jsonl:4:1)"
        )
    ]


def test_a_template_nested_thousands_deep_is_a_located_syntax_error(project: Path) -> None:
    sources = {
        "parens": "{{ " + "(" * 3000 + "1" + ")" * 3000 + " }}",
        "lists": "{{ " + "[" * 3000 + "1" + "]" * 3000 + " }}",
        "ifs": "{% if true %}" * 2000 + "x" + "{% endif %}" * 2000,
        "fors": "{% for x in [1] %}" * 2000 + "x" + "{% endfor %}" * 2000,
    }
    commands = []
    for name, body in sources.items():
        folder = project / name
        (folder / "data").mkdir(parents=True)
        (folder / "data" / "q.jsonl").write_bytes((project / "data" / "q.jsonl").read_bytes())
        (folder / "my.j2").write_text("{% block user %}\n" + body + "\n{% endblock %}\n")
        (folder / "s.yaml").write_text(BASE.replace("model:", "templates: {batch: my.j2}\nmodel:"))
        commands += [["check", f"{name}/s.yaml"], ["build", f"{name}/s.yaml", "-o", f"{name}/b"]]
    out = run_capped(commands, project)
    for i, name in enumerate(sources):
        for o in out[2 * i : 2 * i + 2]:
            assert o.status == 1, (name, o.stderr)
            assert lines(o.stderr)[0] == (
                f"{name}/my.j2:2: template syntax error: brackets and statements nest deeper "
                "than the limit of 50 levels"
            )


def test_a_slow_template_meets_the_wall_clock_limit(project: Path) -> None:
    (project / "my.j2").write_text(
        "{% block user %}\n{% for i in range(99999) %}{% set x = (range(99999) | list | sort) "
        "| length %}{% endfor %}\n{% endblock %}\n"
    )
    spec(project, "slow.yaml", "model:", "templates: {batch: my.j2}\nmodel:")
    setup = "import promptc.sandbox.budget as b; b.MAX_RENDER_SECONDS = 1.0"
    (o,) = run_capped([["check", "slow.yaml"]], project, setup=setup)
    assert o.status == 1
    assert lines(o.stderr) == [
        (
            "my.j2:2: template exceeds the limit of 1 seconds per message: rendering one message "
            "took longer"
        ),
        "slow.yaml: 1 error",
    ]
    assert o.seconds < 5


def _own_template(project: Path, name: str, body: str) -> str:
    """A spec in ``project/name/`` whose batch template's user block is ``body``."""
    folder = project / name
    (folder / "data").mkdir(parents=True)
    (folder / "data" / "q.jsonl").write_bytes((project / "data" / "q.jsonl").read_bytes())
    (folder / "my.j2").write_text("{% block user %}\n" + body + "\n{% endblock %}\n")
    (folder / "s.yaml").write_text(BASE.replace("model:", "templates: {batch: my.j2}\nmodel:"))
    return f"{name}/s.yaml"


#: A command run in a fresh process with no memory cap but promptc's own, reporting its exit
#: status, stderr and how much its peak resident memory grew while the command ran.
_UNCAPPED = """
import contextlib, io, json, resource, sys
from promptc.cli.app import run
import promptc.render.renderer
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
err = io.StringIO()
with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
    status = run(sys.argv[1:])
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(json.dumps({"status": status, "stderr": err.getvalue(), "grown_kib": grown}))
"""


def test_what_no_sandbox_hook_sees_meets_the_os_limits(project: Path) -> None:
    """``~`` and a loop over a list that calls nothing compile to plain Python, out of reach of
    Jinja's sandbox hooks: the time and memory limits around rendering end them."""
    doubling = _own_template(
        project, "doubling", '{% set s = "xx" %}' + "{% set s = s ~ s %}" * 40 + "{{ s }}"
    )
    proc = subprocess.run(
        [sys.executable, "-c", _UNCAPPED, "check", doubling],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout)
    assert out["status"] == 1
    assert lines(out["stderr"])[0] == (
        "doubling/my.j2:2: template exceeds the limit of the memory this process may use: "
        "the template asked for more"
    )
    # Forty doublings of two characters would ask for two terabytes.
    assert out["grown_kib"] * 1024 < MAX_RENDER_MEMORY + 64 * 2**20
    silent = _own_template(
        project,
        "silent",
        "{% set xs = range(99999) | list %}"
        "{% for a in xs %}{% for b in xs %}{% endfor %}{% endfor %}",
    )
    setup = "import promptc.sandbox.budget as b; b.MAX_RENDER_SECONDS = 1.0"
    (o,) = run_capped([["check", silent]], project, setup=setup)
    assert o.status == 1
    assert lines(o.stderr)[0] == (
        "silent/my.j2:2: template exceeds the limit of 1 seconds per message: rendering one "
        "message took longer"
    )
    assert o.seconds < 5


# ---------------------------------------------------------------- 3. internal errors owed a diagnostic


def test_an_item_id_expression_meets_the_memory_limit_of_a_template(project: Path) -> None:
    """``~`` in ``data.id`` is held as in a template: each row's id fails at its line, within
    the memory a message may take to render (once 850 MB and `valid` for 28 doublings); and
    `build` says the expression's failure, never that the data file changed."""
    doubling = (
        "{% set s = namespace(x='ab') %}{% for i in range(28) %}{% set s.x = s.x ~ s.x %}"
        "{% endfor %}{{ s.x|length }}-{{ row.qid }}"
    )
    spec(project, "ids.yaml", "id: qid", f'id: "{doubling}"')
    said = [
        f"data/q.jsonl:{n}:1: data.id: item id expression failed: template exceeds the limit "
        "of the memory this process may use: the expression asked for more"
        for n in range(1, 7)
    ]
    for command in (["check", "ids.yaml"], ["build", "ids.yaml", "-o", "out"]):
        proc = subprocess.run(
            [sys.executable, "-c", _UNCAPPED, *command],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        out = json.loads(proc.stdout)
        assert out["status"] == 1
        assert lines(out["stderr"])[:6] == said
        assert out["grown_kib"] * 1024 < MAX_RENDER_MEMORY + 64 * 2**20


def test_integral_numbers_nul_bytes_and_lone_surrogates_in_specs(project: Path) -> None:
    f8 = spec(project, "f8.yaml", "batch_size: 4", "batch_size: 8.0")
    f85 = spec(project, "f85.yaml", "batch_size: 4", "batch_size: 8.5")
    mt = spec(project, "mt.yaml", "max_tokens: 10", "max_tokens: 10.0")
    seed = spec(
        project,
        "seed.yaml",
        "batch_size: 4",
        "batch_size: 4, selection: {method: random, seed: 7.0}",
    )
    nul_data = spec(project, "nul1.yaml", "data/q.jsonl", '"data/q\\0.jsonl"')
    nul_tpl = spec(project, "nul2.yaml", "model:", 'templates: {batch: "a\\0.j2"}\nmodel:')
    nul_ext = spec(project, "nul3.yaml", "model:", 'extends: "a\\0.yaml"\nmodel:')
    nul_cache = spec(
        project,
        "nul4.yaml",
        "batch_size: 4",
        'batch_size: 4, selection: {method: partition, cache_dir: "c\\0"}',
    )
    (project / "data" / "sur.jsonl").write_text('{"qid": "a", "question": "x\\ud800y"}\n')
    sur = spec(project, "sur.yaml", "data/q.jsonl", "data/sur.jsonl")
    out = run_capped(
        [
            ["check", f8],
            ["build", f8, "-o", "b8"],
            ["check", f85],
            ["build", mt, "-o", "bmt"],
            ["build", seed, "-o", "bseed"],
            ["check", nul_data],
            ["check", nul_tpl],
            ["check", nul_ext],
            ["check", nul_cache],
            ["check", sur],
            ["build", sur, "-o", "bsur"],
        ],
        project,
    )
    assert [o.status for o in out] == [0, 0, 1, 0, 0, 1, 1, 1, 1, 1, 1]
    # Valid; max_tokens 10 may cut a batch of 8 off: a warning (on stderr), exit status 0.
    assert out[0].stdout == "f8.yaml: valid: 6 items, strategy batch, 8 per request (1 warning)\n"
    assert "warning: model.max_tokens 10 may cut off the requests of batch-8" in out[0].stderr
    manifest = json.loads((project / "b8" / "manifest.json").read_text())
    assert manifest["strategy"] == {"kind": "batch", "batch_size": 8}
    assert lines(out[2].stderr)[0] == (
        "f85.yaml:9:37: strategy.batch_size: expected an integer, found a number 8.5"
    )
    first = json.loads((project / "bmt" / "requests.jsonl").read_text().splitlines()[0])
    assert first["params"]["max_tokens"] == 10 and isinstance(first["params"]["max_tokens"], int)
    assert '"max_tokens": 10,' in (project / "bmt" / "requests.jsonl").read_text()
    assert json.loads((project / "bseed" / "manifest.json").read_text())["selection"]["seed"] == 7
    nul = "contains a NUL character, which no file name can hold"
    assert (
        lines(out[5].stderr)[0] == f"nul1.yaml:8:14: data.path: data path 'data/q\\x00.jsonl' {nul}"
    )
    assert lines(out[6].stderr)[0] == f"nul2.yaml:10:20: templates.batch: path 'a\\x00.j2' {nul}"
    assert lines(out[7].stderr)[0] == f"nul3.yaml:10:10: extends: extends path 'a\\x00.yaml' {nul}"
    assert lines(out[8].stderr)[0] == (
        f"nul4.yaml:9:82: strategy.selection.cache_dir: path 'c\\x00' {nul}"
    )
    surrogate = (
        "data/sur.jsonl:1:1: field 'question' (for input 'question') holds a lone surrogate "
        "\\ud800, which is not a character; expected text"
    )
    assert lines(out[9].stderr)[0] == surrogate and lines(out[10].stderr)[0] == surrogate


def _build(project: Path) -> Path:
    (o,) = run_capped([["build", "base.yaml", "-o", "b"]], project)
    assert o.status == 0, o.stderr
    return project / "b"


def test_a_nul_in_an_input_value_is_refused_at_its_line(project: Path) -> None:
    """A prompt cannot carry it: llama.cpp answered every request of such an Auto-Demo build
    with HTTP 500 (its grammar pinned the NUL), run after run."""
    (project / "data" / "nul.jsonl").write_text(
        '{"qid": "a", "question": "x"}\n{"qid": "b", "question": "nul\\u0000x"}\n'
    )
    name = spec(project, "nuld.yaml", "data/q.jsonl", "data/nul.jsonl")
    (out,) = run_capped([["check", name]], project)
    assert out.status == 1
    assert lines(out.stderr)[0] == (
        "data/nul.jsonl:2:1: field 'question' (for input 'question') holds a NUL character, "
        "which no prompt can carry; expected text"
    )


def test_a_spec_writes_its_embedding_cache_inside_its_folder_only(project: Path) -> None:
    """The cache folder is written (embeddings.sqlite3, and the folders to it): a spec may not
    name one outside its own folder, as it may not for its data and templates."""
    outside = project.parent / "outside"
    cases = {
        "c1.yaml": ("../outside/made", "leaves the spec's folder"),
        "c2.yaml": (str(outside), "is absolute; expected a folder relative to the spec's folder"),
        "c3.yaml": (
            "~/promptc-cache",
            "is absolute; expected a folder relative to the spec's folder",
        ),
    }
    argv = []
    for name, (path, _) in cases.items():
        new = f'batch_size: 4, selection: {{method: partition, cache_dir: "{path}"}}'
        argv.append(["build", spec(project, name, "batch_size: 4", new), "-o", f"b-{name}"])
    out = run_capped(argv, project)
    for o, (name, (path, why)) in zip(out, cases.items()):
        assert o.status == 1, o.stderr
        assert lines(o.stderr)[0] == (
            f"{name}:9:82: strategy.selection.cache_dir: cache_dir {path!r} {why}"
        )
    assert not outside.exists() and not (project / "b-c1.yaml").exists()


def test_hostile_values_in_model_outputs_are_located_not_fatal(project: Path) -> None:
    _build(project)
    digits = "9" * 5001
    lines_in = [
        {"id": "r0001", "output": f"A[1]: {digits}\nA[2]: 3\nA[3]: 4\nA[4]: 5"},
        {"id": "r0002", "output": "A[1]: \ud800 1\nA[2]: 2"},
    ]
    (project / "o.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in lines_in), encoding="utf-8"
    )
    (project / "one.txt").write_text(f"A[1]: 1\nA[2]: -{digits}\nA[3]: 3\nA[4]: 4\n")
    (project / "sur.jsonl").write_text('{"id": "r0001", "output": "A[1]: 1\\nA[2]: \\udfff"}\n')
    (project / "digits.jsonl").write_text(
        f'{{"id": "r0001", "n": {digits}, "output": "A[1]: 1"}}\n'
        + "[" * 100_000
        + '\n{"id": "r0002", "output": "A[1]: 1\\nA[2]: 2"}\n'
    )
    out = run_capped(
        [
            ["parse", "b", "o.jsonl"],
            ["parse", "b", "o.jsonl", "--mode", "strict"],
            ["parse", "b", "one.txt", "--request", "r0001"],
            ["parse", "b", "one.txt", "--request", "r0001", "--mode", "strict"],
            ["parse", "b", "sur.jsonl", "--format", "table"],
            ["parse", "b", "digits.jsonl"],
        ],
        project,
    )
    assert [o.status for o in out] == [1, 1, 1, 1, 1, 1]
    results = [json.loads(x) for x in out[0].stdout.splitlines()]
    assert [r["status"] for r in results] == ["malformed", "ok", "ok", "ok", "malformed", "ok"]
    assert results[0]["expected"] == ["answer: an integer of at most 640 digits"]
    assert results[0]["message"].startswith(
        "A[1]: expected answer: an integer of at most 640 digits, found '9999"
    )
    assert results[0]["message"].endswith(" at 1:7")
    assert results[4]["found"] == "\ufffd 1"  # the lone surrogate, read as U+FFFD
    strict = [json.loads(x) for x in out[1].stdout.splitlines()]
    assert strict[0]["expected"] == ["answer: an integer of at most 640 digits"]
    assert out[0].stderr.splitlines()[0].startswith("6 results from 2 request(s): 4 ok")
    one = [json.loads(x) for x in out[2].stdout.splitlines()]
    assert [r["status"] for r in one] == ["ok", "malformed", "ok", "ok"]
    assert one[1]["message"].startswith("A[2]: expected answer: an integer of at most 640")
    assert "\ufffd" in out[4].stdout
    # An integer past Python's 4,300-digit limit in a field promptc does not read no longer
    # costs the line its answer (r0001's is parsed); the over-nested line is said and skipped.
    assert lines(out[5].stderr)[:2] == [
        "error: digits.jsonl:2:1: not a JSON line: nested too deeply",
        (
            "6 results from 2 request(s): 3 ok, 3 missing, 0 malformed, 0 duplicate, "
            "0 misaligned, 0 extra, 0 truncated"
        ),
    ]
    statuses = [json.loads(x)["status"] for x in out[5].stdout.splitlines()]
    assert statuses == ["ok", "missing", "missing", "missing", "ok", "ok"]


def test_data_files_with_unreadable_numbers_are_located(project: Path) -> None:
    digits = "9" * 5001
    (project / "data" / "big.jsonl").write_text(
        f'{{"qid": "a", "question": "x", "n": {digits}}}\n' + '{"qid": "b", "question": "y"}\n'
    )
    (project / "data" / "big.json").write_text(f'[{{"qid": "a", "question": {digits}}}]')
    (project / "data" / "deep.jsonl").write_text("[" * 100_000 + "\n")
    a = spec(project, "a.yaml", "data/q.jsonl", "data/big.jsonl")
    b = spec(project, "b.yaml", "data/q.jsonl", "data/big.json")
    c = spec(project, "c.yaml", "data/q.jsonl", "data/deep.jsonl")
    out = run_capped([["check", a], ["check", b], ["check", c]], project)
    assert [o.status for o in out] == [1, 1, 1]
    too_many = "invalid JSON: an integer has more digits than can be read"
    assert lines(out[0].stderr)[0] == f"data/big.jsonl:1:1: {too_many}"
    assert lines(out[1].stderr)[0] == f"data/big.json:1:2: {too_many}"
    assert lines(out[2].stderr)[0] == "data/deep.jsonl:1:1: invalid JSON: nested too deeply"


def test_data_values_nested_past_the_bound_are_located_not_a_crash(project: Path) -> None:
    """A mapped input nested 500 levels deep (which Python's json reads) ended in exit 3, a
    RecursionError of what reads the value after; past 100 levels a row is refused at its
    line, in JSONL and in a JSON array, and 100 levels are read."""
    deep = "[" * 499 + '"x"' + "]" * 499
    (project / "data" / "d.jsonl").write_text(f'{{"qid": "a", "question": {deep}}}\n')
    (project / "data" / "d.json").write_text(f'[{{"qid": "a", "question": {deep}}}]')
    edge = "[" * 99 + '"x"' + "]" * 99  # the row is level 1: 100 in all
    (project / "data" / "ok.jsonl").write_text(f'{{"qid": "a", "question": {edge}}}\n')
    a = spec(project, "a.yaml", "data/q.jsonl", "data/d.jsonl")
    b = spec(project, "b.yaml", "data/q.jsonl", "data/d.json")
    c = spec(project, "c.yaml", "data/q.jsonl", "data/ok.jsonl")
    out = run_capped([["check", a], ["check", b], ["check", c]], project)
    assert [o.status for o in out] == [1, 1, 0], [o.stderr for o in out]
    problem = "invalid JSON: nested deeper than 100 levels"
    assert lines(out[0].stderr)[0] == f"data/d.jsonl:1:1: {problem}"
    assert lines(out[1].stderr)[0] == f"data/d.json:1:2: {problem}"


def test_a_diagnostic_is_one_line_whatever_the_spec_holds(project: Path) -> None:
    text = BASE.replace(
        "  answer: {type: integer}", '  "a\\x1eb": {type: integer}\n  "c\\u2028": {type: text}'
    )
    (project / "ctl.yaml").write_text(
        text.replace("instruction: Solve.", 'instruction: Solve.\n"\\r": 1')
    )
    (o,) = run_capped([["check", "ctl.yaml"]], project)
    assert o.status == 1
    assert all(line.isprintable() for line in o.stderr.split("\n"))
    assert "ctl.yaml:4:1: ['\\r']: unknown key '\\r'" in o.stderr
    assert "outputs['a\\x1eb']: 'a\\x1eb' is not a valid field name" in o.stderr


# ---------------------------------------------------------------- 5. smaller ones


def test_outputs_with_a_byte_order_mark_lose_no_request(project: Path) -> None:
    _build(project)
    record = {"id": "r0001", "output": "A[1]: 2\nA[2]: 4\nA[3]: 6\nA[4]: 8"}
    (project / "bom.jsonl").write_text(json.dumps(record) + "\n", encoding="utf-8-sig")
    (project / "bom.txt").write_text("A[1]: 2\nA[2]: 4\nA[3]: 6\nA[4]: 8\n", encoding="utf-8-sig")
    bom_id = dict(record, id="\ufeffr0001")
    (project / "bomid.jsonl").write_text(json.dumps(bom_id) + "\n", encoding="utf-8")
    out = run_capped(
        [
            ["parse", "b", "bom.jsonl"],
            ["parse", "b", "bom.txt", "--request", "r0001"],
            ["parse", "b", "bomid.jsonl"],
        ],
        project,
    )
    for o in out[:2]:
        assert o.status == 0, o.stderr
        assert [json.loads(x)["status"] for x in o.stdout.splitlines()] == ["ok"] * 4
    assert out[2].status == 1
    assert re.match(r"error: bomid\.jsonl:1:1: .*request", out[2].stderr)


def test_check_reports_a_missing_similarity_dependency(project: Path) -> None:
    part = spec(project, "p.yaml", "batch_size: 4", "batch_size: 4, selection: {method: partition}")
    local = spec(
        project,
        "m.yaml",
        "batch_size: 4",
        "batch_size: 4, selection: {method: retrieval, model: nowhere}",
    )
    blocked = "import sys; sys.modules['sentence_transformers'] = None; sys.modules['torch'] = None"
    out = run_capped([["check", part], ["check", local]], project, setup=blocked)
    assert [o.status for o in out] == [1, 1]
    hint = "(install the embed extra: pip install 'promptc-compiler[embed]')"
    assert lines(out[0].stderr) == [
        "p.yaml:9:40: strategy.selection.method: selection method 'partition' needs "
        + f"'sentence-transformers', 'torch': they are not installed {hint}",
        "p.yaml: 1 error",
    ]
    assert (
        "m.yaml:9:40: strategy.selection.model: embedding model 'nowhere' is not a local model folder"
        in out[1].stderr
    )


def test_broken_extended_parents_are_reported_where_the_problem_is(project: Path) -> None:
    (project / "parent.yaml").write_text('promptc: 1\nname: "abc\ninstruction: x\n')
    (project / "parent2.yaml").write_text("promptc: 1\ninputs: {q: {}\n")
    (project / "parent3.yaml").write_text("promptc: 1\nname: 'it''s\n\n")
    (project / "folder").mkdir()
    a = spec(project, "a.yaml", "model:", "extends: parent.yaml\nmodel:")
    b = spec(project, "b.yaml", "model:", "extends: parent2.yaml\nmodel:")
    c = spec(project, "c.yaml", "model:", "extends: parent3.yaml\nmodel:")
    d = spec(project, "d.yaml", "model:", "extends: folder\nmodel:")
    e = spec(project, "e.yaml", "model:", "extends: .\nmodel:")
    out = run_capped([["check", x] for x in (a, b, c, d, e)], project)
    assert [o.status for o in out] == [1] * 5
    quote_hint = "(add the closing quote (inside '…' write '' for a quote, inside \"…\" \\\"))"
    assert lines(out[0].stderr)[0] == (
        "parent.yaml:2:7: invalid YAML: a quoted scalar opened here is never closed (the file "
        f"ends at line 3) {quote_hint}"
    )
    assert lines(out[1].stderr)[0] == (
        "parent2.yaml:2:9: invalid YAML: a flow mapping opened here is never closed (the file "
        "ends at line 2) (close it)"
    )
    assert lines(out[2].stderr)[0].startswith(
        "parent3.yaml:2:7: invalid YAML: a quoted scalar opened here is never closed"
    )
    assert lines(out[3].stderr)[0] == (
        "d.yaml:10:10: extends: extends path 'folder' is a folder; expected a spec file"
    )
    assert lines(out[4].stderr)[0] == (
        "e.yaml:10:10: extends: extends path '.' is a folder; expected a spec file"
    )


@pytest.mark.parametrize(
    ("option", "said"),
    [
        ("\\ud800", "holds a lone surrogate \\ud800, which is not a character; expected text"),
        ("a\\u0000b", "holds a NUL character, which no prompt can carry; expected text"),
    ],
)
def test_an_option_is_held_to_what_any_input_is(tmp_path: Path, option: str, said: str) -> None:
    """An ``options`` input's choices go into the prompt as text: a lone surrogate (exit 3 in
    build) or a NUL (sent to the model) is refused at its data line, by check and build."""
    shutil.copytree(SPECS, tmp_path / "specs")
    data = tmp_path / "specs" / "data" / "commonsense-qa.jsonl"
    data.write_text(
        '{"qid": "c1", "question": "Which?", "choices": ["' + option + '", "x"]}\n',
        encoding="utf-8",
    )
    spec = tmp_path / "specs" / "commonsense-qa-text.yaml"
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    assert f"commonsense-qa.jsonl:1:1: field 'choices' (for input 'choices') {said}" in (
        e.value.format()
    )


def test_numbers_with_an_absurd_exponent_are_refused_as_written(tmp_path: Path) -> None:
    """A JSON gold number 1e999999999 (or a --tolerance, a --price-in of that exponent) is
    refused quoting it as written, in bounded memory: written out it is a billion digits."""
    from promptc.errors import UsageError
    from promptc.eval.report import parse_tolerance
    from promptc.plan.estimate import price_of

    shutil.copytree(SPECS, tmp_path / "specs")
    data = tmp_path / "specs" / "data" / "math.jsonl"
    rows = data.read_text(encoding="utf-8").splitlines()
    first = json.loads(rows[0])
    rows[0] = json.dumps({**first, "answer": 1}).replace('"answer": 1', '"answer": 1e999999999')
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    with pytest.raises(PromptcErrors) as e:
        compile_spec(tmp_path / "specs" / "math.yaml")
    said = e.value.format()
    assert "found '1e999999999'" in said and len(said) < 1000
    for text in ("1e999999999", "1e-999999999"):
        with pytest.raises(UsageError):
            parse_tolerance(text)
    with pytest.raises(UsageError) as price:
        price_of(compile_spec(SPECS / "math.yaml"), "1e-999999999", "1")
    assert price.value.code == "bad-price"
