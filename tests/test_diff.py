"""``promptc diff`` in a real git repository, and ``promptc build --check``.

A temporary repository gets a spec with its own template (which includes a partial), demos and
data, then one commit per change: the partial's wording, the instruction, a demo, the batch
size, the data. ``promptc diff spec.yaml --against HEAD~k`` must show exactly the requests
those k changes touched; the text (colour off, as it is off when stdout is not a terminal) is
held against ``tests/golden_diff/``. Regenerate after a deliberate change of the output with

    PROMPTC_REGEN_DIFF=1 python -m pytest tests/test_diff.py -q

and review ``git diff tests/golden_diff``.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from promptc.cli.app import run

GOLDEN = Path(__file__).parent / "golden_diff"
#: What diff says of the shipped templates in a repository that does not hold them.
SHIPPED_NOTE = "shipped templates: the installed promptc's (the repository holds none)"
REGEN = bool(os.environ.get("PROMPTC_REGEN_DIFF"))

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

SPEC = """\
promptc: 1
name: reviews
instruction: Classify the sentiment of each review.
inputs:
  review: {type: text}
outputs:
  label: {type: enum, choices: [positive, negative]}
demos:
  - {review: The soup was hot and tasty., label: positive}
  - {review: The lamp broke on day one., label: negative}
data: {path: data/reviews.jsonl, id: id}
strategy: {kind: batch, batch_size: 2}
templates: {batch: templates/batch.j2}
model: {name: test-model, temperature: 0}
"""

TEMPLATE = """\
{% block system %}
{{ task.instruction }}
{% include "templates/answer.j2" %}
{% for demo in demos %}
Example: {{ demo.question }} -> {{ demo.answer }}
{% endfor %}
{% endblock %}
{% block user %}
{% for item in items %}
{{ markers.question(loop.index) }} {{ item.question }}
{% endfor %}
{% endblock %}
"""

PARTIAL = (
    'Answer each review on its own line as {{ markers.answer("i") }} {{ answer_format.form }}.\n'
)

ROWS = [
    ("r1", "Best pancakes in town."),
    ("r2", "The headphones crackle."),
    ("r3", "Friendly staff and quick service."),
    ("r4", "The parcel arrived torn."),
    ("r5", "I would buy it again."),
]


def _rows(rows: list[tuple[str, str]]) -> str:
    return "".join(json.dumps({"id": i, "review": t}) + "\n" for i, t in rows)


def git(repo: Path, *args: str) -> str:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@example.com",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@example.com",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_CONFIG_SYSTEM": os.devnull,
    }
    proc = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True, env=env
    )
    return proc.stdout


def commit(repo: Path, files: dict[str, str], message: str) -> None:
    for name, text in files.items():
        path = repo / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", message)


#: The commits after the first, newest last: ``--against HEAD~k`` undoes the last k.
CHANGES = ["template", "instruction", "demo", "batch-size", "data"]


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("repo")
    git(root, "init", "-q", "-b", "main")
    commit(
        root,
        {
            "spec.yaml": SPEC,
            "templates/batch.j2": TEMPLATE,
            "templates/answer.j2": PARTIAL,
            "data/reviews.jsonl": _rows(ROWS),
        },
        "a spec",
    )
    commit(root, {"templates/answer.j2": PARTIAL.replace("its own line", "a line")}, "template")
    spec = SPEC.replace("each review.", "each customer review.")
    commit(root, {"spec.yaml": spec}, "instruction")
    spec = spec.replace("The lamp broke on day one.", "The lamp broke on the first day.")
    commit(root, {"spec.yaml": spec}, "demo")
    spec = spec.replace("batch_size: 2", "batch_size: 3")
    commit(root, {"spec.yaml": spec}, "batch size")
    rows = [*ROWS[:2], ("r3", "Friendly staff, slow service."), *ROWS[3:], ("r6", "Meh.")]
    commit(root, {"data/reviews.jsonl": _rows(rows)}, "data")
    return root


def promptc(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *args: str
) -> tuple[int, str, str]:
    monkeypatch.chdir(repo)
    code = run(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if REGEN:
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"no golden file {path}; run PROMPTC_REGEN_DIFF=1 pytest {__file__}"
    assert text == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("k", range(1, len(CHANGES) + 1), ids=lambda k: f"HEAD~{k}")
def test_diff_against_each_earlier_commit(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], k: int
) -> None:
    code, out, err = promptc(
        repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", f"HEAD~{k}"
    )
    assert code == 1
    # It says what it read at the revision: the spec, its data and templates, from git.
    assert err.startswith(f"promptc diff: read at HEAD~{k}: HEAD~{k}:data/reviews.jsonl, ")
    assert f"HEAD~{k}:spec.yaml" in err and err.count("\n") == 1
    assert err.endswith(f"{SHIPPED_NOTE}\n")
    golden(f"against-HEAD~{k}-{'+'.join(CHANGES[-k:])}.txt", out)


#: What each commit alone changed: (status, items of the new request, changed messages) per
#: request, and the grammars added, removed or changed.
EACH = {
    "template": (
        [("changed", ["r1", "r2"], [0]), ("changed", ["r3", "r4"], [0]), ("changed", ["r5"], [0])],
        {},
    ),
    "instruction": (
        [("changed", ["r1", "r2"], [0]), ("changed", ["r3", "r4"], [0]), ("changed", ["r5"], [0])],
        {},
    ),
    "demo": (
        [("changed", ["r1", "r2"], [0]), ("changed", ["r3", "r4"], [0]), ("changed", ["r5"], [0])],
        {},
    ),
    "batch-size": (
        [
            ("changed", ["r1", "r2", "r3"], [1]),
            ("changed", ["r4", "r5"], [1]),
            ("removed", None, []),
        ],
        {"answer": "changed", "answer-1": "removed", "answer-2": "added"},
    ),
    "data": (
        [("changed", ["r1", "r2", "r3"], [1]), ("changed", ["r4", "r5", "r6"], [1])],
        {"answer-2": "removed"},
    ),
}


@pytest.mark.parametrize("change", CHANGES)
def test_what_each_commit_changed(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], change: str
) -> None:
    """Each commit alone, held against the one before it: exactly the requests it touched."""
    back = len(CHANGES) - 1 - CHANGES.index(change)  # the commit of this change is HEAD~back
    git(repo, "checkout", "-q", f"HEAD~{back}", "--", ".")
    try:
        code, out, _ = promptc(
            repo,
            monkeypatch,
            capsys,
            "diff",
            "spec.yaml",
            "--against",
            f"HEAD~{back + 1}",
            "--format",
            "json",
        )
    finally:
        git(repo, "checkout", "-q", "HEAD", "--", ".")
    assert code == 1
    data = json.loads(out)
    got = [
        (
            r["status"],
            r["new"]["item_ids"] if r["new"] else None,
            [m["index"] for m in r["messages"]],
        )
        for r in data["requests"]
    ]
    assert (got, {g["stem"]: g["status"] for g in data["grammar"]}) == EACH[change]


def test_no_change_against_head_exits_0(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert (code, out, err) == (
        0,
        "--- HEAD:spec.yaml\n+++ spec.yaml\nno change: 2 requests unchanged\n",
        (
            "promptc diff: read at HEAD: HEAD:data/reviews.jsonl, HEAD:spec.yaml, "
            f"HEAD:templates/answer.j2, HEAD:templates/batch.j2, {SHIPPED_NOTE}\n"
        ),
    )
    code, out, _ = promptc(
        repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", "main", "--stat"
    )
    assert (code, out) == (0, "no change: 2 requests unchanged\n")


def test_stat_is_the_summary_alone(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = promptc(
        repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~5", "--stat"
    )
    assert code == 1
    assert out == (
        "3 of 3 requests changed, 0 unchanged (1 removed, 2 with other items); grammar changed; "
        "input tokens -35.3% per question (counted with o200k_base)\n"
    )


def test_the_work_tree_is_never_touched(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (repo / "spec.yaml").write_text(SPEC.replace("test-model", "other-model"), encoding="utf-8")
    before = git(repo, "status", "--porcelain"), git(repo, "stash", "list")
    try:
        code, out, _ = promptc(
            repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~5"
        )
        assert code == 1
        # the new side is the work tree's edit; the old side came from git, not from the file
        assert 'params of every request: model: "test-model" → "other-model"' in out
        assert (git(repo, "status", "--porcelain"), git(repo, "stash", "list")) == before
        assert (repo / "spec.yaml").read_text(encoding="utf-8") == SPEC.replace(
            "test-model", "other-model"
        )
    finally:
        git(repo, "checkout", "-q", "--", "spec.yaml")


def test_diff_of_two_build_folders(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    assert promptc(repo, monkeypatch, capsys, "build", "spec.yaml", "-o", str(a))[0] == 0
    assert (
        promptc(repo, monkeypatch, capsys, "build", "spec.yaml", "-o", str(b), "--batch-size", "2")[
            0
        ]
        == 0
    )
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", str(a), str(b), "--stat")
    assert (code, err) == (1, "")
    assert out.startswith(
        "3 of 3 requests changed, 0 unchanged (1 added, 2 with other items); grammar changed"
    )
    code, out, _ = promptc(repo, monkeypatch, capsys, "diff", str(a), str(a))
    assert code == 0 and out.endswith("no change: 2 requests unchanged\n")
    # A build folder was built with its own strategy and batch size: options that could only
    # apply to a spec are refused, never dropped to answer "no change".
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", str(a), str(a), "--batch-size", "3")
    assert code == 2 and out == "" and "--strategy and --batch-size apply to a spec" in err


def test_another_target_or_grammar_form_is_a_change(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Builds whose requests say the same to the model, sent to another target or carrying
    another grammar form (the model answers in another form), differ."""
    chat, gbnf, json_ = tmp_path / "chat", tmp_path / "gbnf", tmp_path / "json"
    build = ["build", "spec.yaml", "-o"]
    assert promptc(repo, monkeypatch, capsys, *build, str(chat))[0] == 0
    assert promptc(repo, monkeypatch, capsys, *build, str(gbnf), "--target", "vllm-batch")[0] == 0
    vllm_json = ["--target", "vllm-batch", "--grammar", "json-schema"]
    assert promptc(repo, monkeypatch, capsys, *build, str(json_), *vllm_json)[0] == 0
    code, out, _ = promptc(repo, monkeypatch, capsys, "diff", str(gbnf), str(json_))
    assert code == 1
    assert 'every request: grammar form: "gbnf" → "json-schema"\n' in out
    assert out.splitlines()[-1].startswith(
        '0 of 2 requests changed, 2 unchanged; grammar form: "gbnf" → "json-schema"'
    )
    code, out, _ = promptc(repo, monkeypatch, capsys, "diff", str(chat), str(gbnf), "--stat")
    assert code == 1
    assert 'grammar form: "none" → "gbnf", target: "chat" → "vllm-batch"' in out
    code, out, _ = promptc(
        repo, monkeypatch, capsys, "diff", str(chat), str(gbnf), "--format", "json"
    )
    assert json.loads(out)["settings"] == [
        {"key": "grammar form", "old": "none", "new": "gbnf"},
        {"key": "target", "old": "chat", "new": "vllm-batch"},
    ]


#: A spec with gold answers whose prompt shows the review, not the note (parse and eval
#: still read the note: it is an input of each item).
GOLD_SPEC = """\
promptc: 1
name: graded
instruction: Classify the sentiment of each review.
inputs:
  review: {type: text}
  note: {type: text}
outputs:
  label: {type: enum, choices: [positive, negative]}
data: {path: data/graded.jsonl, id: id, gold: {label: label}}
strategy: {kind: batch, batch_size: 2}
templates: {batch: templates/batch.j2}
model: {name: test-model, temperature: 0}
"""

REVIEW_ONLY = """\
{% block system %}{{ task.instruction }}{% endblock %}
{% block user %}{% for item in items %}{{ item.index }}. {{ item.fields.review }}
{% endfor %}{% endblock %}
"""


def _graded(labels: str, notes: str = "abcd") -> str:
    return "".join(
        json.dumps({"id": f"g{k}", "review": f"Review {k}.", "note": notes[k], "label": label})
        + "\n"
        for k, label in enumerate(labels.split())
    )


def test_gold_unshown_inputs_and_how_answers_are_read_are_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Builds that send the same requests but score (gold) or read (an input no prompt shows,
    an output's aliases) the answers otherwise are not the same build: diff says what changed,
    exit 1 — for two folders and against a revision alike."""
    git(tmp_path, "init", "-q")
    labels = "positive negative positive negative"
    files = {
        "spec.yaml": GOLD_SPEC,
        "templates/batch.j2": REVIEW_ONLY,
        "data/graded.jsonl": _graded(labels),
    }
    commit(tmp_path, files, "graded")
    a, b = tmp_path / "a", tmp_path / "b"
    assert promptc(tmp_path, monkeypatch, capsys, "build", "spec.yaml", "-o", str(a))[0] == 0
    (tmp_path / "data/graded.jsonl").write_text(
        _graded("negative negative negative negative", notes="abXY"), encoding="utf-8"
    )
    assert promptc(tmp_path, monkeypatch, capsys, "build", "spec.yaml", "-o", str(b))[0] == 0
    expected = (
        "gold of 2 items changed: g0, g2\n"
        "inputs of 2 items changed, not shown in their prompts: g2, g3\n"
        "0 of 2 requests changed, 2 unchanged; gold of 2 items changed; inputs of 2 items "
        "changed, not shown in their prompts; input tokens +0.0% per question"
    )
    code, out, _ = promptc(tmp_path, monkeypatch, capsys, "diff", str(a), str(b))
    assert code == 1 and out.startswith(f"--- {a}\n+++ {b}\n{expected}")
    code, out, _ = promptc(tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 1 and out.startswith(f"--- HEAD:spec.yaml\n+++ spec.yaml\n{expected}")
    code, out, _ = promptc(
        tmp_path, monkeypatch, capsys, "diff", str(a), str(b), "--format", "json"
    )
    assert json.loads(out)["items_changed"] == [
        {"what": "gold", "items": ["g0", "g2"]},
        {"what": "inputs", "items": ["g2", "g3"]},
    ]
    # An alias changes what parse credits, though no request or grammar shows it.
    (tmp_path / "data/graded.jsonl").write_text(_graded(labels), encoding="utf-8")
    (tmp_path / "spec.yaml").write_text(
        GOLD_SPEC.replace("negative]}", "negative], aliases: {pos: positive}}"), encoding="utf-8"
    )
    code, out, _ = promptc(tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 1
    assert 'answers read with: output label aliases: [] → [["pos", "positive"]]\n' in out
    # Run settings no request shows: the repair rounds and where run sends.
    (tmp_path / "spec.yaml").write_text(
        GOLD_SPEC + "run: {repair: {max_attempts: 0}}\n", encoding="utf-8"
    )
    code, out, _ = promptc(tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 1 and "run repair max_attempts: 2 → 0" in out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["spec.yaml", "--against", "no-such-rev"],
            (
                "spec.yaml: unknown revision 'no-such-rev': git knows no commit by that name "
                "(give a commit, branch or tag, e.g. HEAD~1 or main)"
            ),
        ),
        (
            ["extra.yaml", "--against", "HEAD~5"],
            (
                "extra.yaml: the spec did not exist at HEAD~5: git has no file extra.yaml there "
                "(diff against a revision that has the spec)"
            ),
        ),
        (
            ["templates", "data"],
            (
                "templates/manifest.json: 'templates' is not a build: it has no manifest.json "
                "(give a folder written by promptc build SPEC -o DIR)"
            ),
        ),
        (
            ["spec.yaml"],
            (
                "give SPEC --against REV, or two build folders to compare "
                "(e.g. promptc diff specs/task.yaml --against HEAD)"
            ),
        ),
        (
            ["nowhere.yaml", "--against", "HEAD"],
            "nowhere.yaml: no such spec file or build folder 'nowhere.yaml'",
        ),
    ],
    ids=["unknown-rev", "spec-not-at-rev", "not-a-build", "nothing-to-compare", "no-spec"],
)
def test_bad_input_is_one_line_and_exit_2(
    repo: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    (repo / "extra.yaml").write_text(SPEC, encoding="utf-8")
    try:
        code, out, err = promptc(repo, monkeypatch, capsys, "diff", *args)
    finally:
        (repo / "extra.yaml").unlink()
    assert (code, out, err) == (2, "", message + "\n")


def test_builds_of_different_specs_are_refused(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.yaml"
    shutil.copytree(repo / "data", tmp_path / "data")
    shutil.copytree(repo / "templates", tmp_path / "templates")
    other.write_text(SPEC.replace("name: reviews", "name: other"), encoding="utf-8")
    a, b = tmp_path / "a", tmp_path / "b"
    assert promptc(repo, monkeypatch, capsys, "build", "spec.yaml", "-o", str(a))[0] == 0
    assert promptc(repo, monkeypatch, capsys, "build", str(other), "-o", str(b))[0] == 0
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", str(a), str(b))
    assert (code, out) == (2, "")
    assert err == (
        f"{b}: '{b}' is a build of 'other' (other.yaml), but '{a}' is a build of 'reviews' "
        "(spec.yaml): builds of different specs cannot be compared (compare two builds of the "
        "same spec)\n"
    )
    # A folder against a spec file is held to the same rule; two spec files are compared as
    # asked.
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", str(a), str(other), "--stat")
    assert (code, out) == (2, "")
    assert "builds of different specs cannot be compared" in err
    code, out, err = promptc(repo, monkeypatch, capsys, "diff", "spec.yaml", str(other), "--stat")
    assert code == 1 and err == ""


def test_an_old_spec_that_does_not_compile_is_located_at_the_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    git(tmp_path, "init", "-q")
    commit(
        tmp_path,
        {
            "spec.yaml": SPEC.replace("batch_size: 2", "batch_size: two"),
            "templates/batch.j2": TEMPLATE,
            "templates/answer.j2": PARTIAL,
            "data/reviews.jsonl": _rows(ROWS),
        },
        "broken",
    )
    commit(tmp_path, {"spec.yaml": SPEC}, "fixed")
    code, out, err = promptc(
        tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~1"
    )
    assert (code, out) == (2, "")
    assert (
        err
        == "HEAD~1:spec.yaml:12:37: strategy.batch_size: expected an integer, found a string 'two'\n"
    )


def test_a_spec_outside_git_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    (tmp_path / "spec.yaml").write_text(SPEC, encoding="utf-8")
    code, _, err = promptc(tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 2
    assert err.startswith("spec.yaml: spec.yaml is not inside a git repository")
    assert err.count("\n") == 1


# ---------------------------------------------------------------- promptc build --check


def test_build_check_fresh_stale_and_missing(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = str(tmp_path / "build")
    assert promptc(repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir)[0] == 0
    listing = sorted(os.listdir(out_dir))
    code, out, err = promptc(
        repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir, "--check"
    )
    assert (code, out, err) == (0, f"{out_dir}: up to date (10 files)\n", "")

    partial = repo / "templates" / "answer.j2"
    partial.write_text(PARTIAL.replace("Answer", "Label"), encoding="utf-8")
    try:
        code, out, err = promptc(
            repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir, "--check"
        )
    finally:
        git(repo, "checkout", "-q", "--", "templates/answer.j2")
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        # batches.jsonl holds each request's prompt hash.
        f"{out_dir}/batches.jsonl: stale: the build writes it otherwise",
        f"{out_dir}/manifest.json: stale: the build writes it otherwise",
        f"{out_dir}/requests.jsonl: stale: the build writes it otherwise",
        f"{out_dir}/requests.jsonl:1: first differing request: request r0001 differs",
        f"{out_dir}: 3 of 10 files out of date (rebuild with promptc build spec.yaml -o {out_dir})",
    ]
    assert sorted(os.listdir(out_dir)) == listing  # nothing written

    os.remove(os.path.join(out_dir, "answer.gbnf"))
    code, _, err = promptc(
        repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir, "--check"
    )
    assert code == 1
    assert err.splitlines() == [
        f"{out_dir}/answer.gbnf: missing: the build writes it",
        f"{out_dir}: 1 of 10 files out of date (rebuild with promptc build spec.yaml -o {out_dir})",
    ]
    assert "answer.gbnf" not in os.listdir(out_dir)


def test_build_check_names_leftovers_and_a_missing_folder(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir = str(tmp_path / "build")
    assert promptc(repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir)[0] == 0
    Path(out_dir, "answer-7.lark").write_text("", encoding="utf-8")
    Path(out_dir, "notes.txt").write_text("mine", encoding="utf-8")
    code, _, err = promptc(
        repo, monkeypatch, capsys, "build", "spec.yaml", "-o", out_dir, "--check"
    )
    assert code == 1
    assert err.splitlines()[0] == f"{out_dir}/answer-7.lark: left over: a rebuild removes it"
    # The build's own files are current: left-overs are counted apart from them.
    assert err.splitlines()[-1] == (
        f"{out_dir}: 0 of 10 files out of date, 1 left over "
        f"(rebuild with promptc build spec.yaml -o {out_dir})"
    )
    missing = str(tmp_path / "none")
    code, _, err = promptc(
        repo, monkeypatch, capsys, "build", "spec.yaml", "-o", missing, "--check"
    )
    assert (code, err) == (
        1,
        f"{missing}: missing: no build folder (run promptc build spec.yaml -o {missing})\n",
    )
    assert not os.path.exists(missing)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from promptc.cli.diff import run_diff

    monkeypatch.chdir(repo)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    outputs = []
    for stream in (_Terminal(), io.StringIO()):
        code = run_diff(
            "spec.yaml",
            None,
            "HEAD~1",
            stat=False,
            fmt="text",
            strategy=None,
            batch_size=None,
            target="chat",
            out=stream,
        )
        assert code == 1
        outputs.append(stream.getvalue())
    coloured, plain = outputs
    assert "\x1b[" not in plain
    assert "\x1b[" in coloured
    assert re.sub(r"\x1b\[[0-9;]*m", "", coloured) == plain


def test_the_extends_chain_and_its_data_are_read_at_the_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The base spec (in another folder, with its own data and template) is read from git too."""
    git(tmp_path, "init", "-q")
    base = SPEC.replace("name: reviews", "name: base")
    commit(
        tmp_path,
        {
            "base/spec.yaml": base,
            "base/templates/batch.j2": TEMPLATE,
            "base/templates/answer.j2": PARTIAL,
            "base/data/reviews.jsonl": _rows(ROWS),
            "variants/child.yaml": "extends: ../base/spec.yaml\nname: child\nmodel: {temperature: 1}\n",
        },
        "base and child",
    )
    commit(tmp_path, {"base/data/reviews.jsonl": _rows(ROWS[:4])}, "one row fewer")
    commit(tmp_path, {"base/templates/answer.j2": PARTIAL.replace("review", "text")}, "wording")
    code, out, err = promptc(
        tmp_path,
        monkeypatch,
        capsys,
        "diff",
        "variants/child.yaml",
        "--against",
        "HEAD~2",
        "--stat",
    )
    # The extends chain, the data and the templates, each read at the revision.
    assert (code, err) == (
        1,
        (
            "promptc diff: read at HEAD~2: HEAD~2:base/data/reviews.jsonl, HEAD~2:base/spec.yaml, "
            "HEAD~2:base/templates/answer.j2, HEAD~2:base/templates/batch.j2, "
            f"HEAD~2:variants/child.yaml, {SHIPPED_NOTE}\n"
        ),
    )
    assert out.startswith(
        "3 of 3 requests changed, 0 unchanged (1 removed); grammar changed; input tokens -"
    )
    assert out.endswith("% per question (counted with o200k_base)\n")
    code, out, _ = promptc(
        tmp_path, monkeypatch, capsys, "diff", "variants/child.yaml", "--against", "HEAD~1"
    )
    assert code == 1
    assert "-Answer each review on its own line as A[i]: <label>." in out
    assert "+Answer each text on its own line as A[i]: <label>." in out
    assert "requests.jsonl" not in out and not (tmp_path / "variants" / "build").exists()


def test_a_link_at_the_revision_is_read_as_the_file_it_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A data file (or the spec) that was a link at the revision is read as the file the link
    names inside the repository, as a checkout of the revision would read it; a link out of
    the repository is refused by name."""
    git(tmp_path, "init", "-q")
    commit(
        tmp_path,
        {
            "spec.yaml": SPEC,
            "templates/batch.j2": TEMPLATE,
            "templates/answer.j2": PARTIAL,
            "shared/reviews.jsonl": _rows(ROWS),
        },
        "shared data",
    )
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "reviews.jsonl").symlink_to("../shared/reviews.jsonl")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "data as a link")
    (tmp_path / "data" / "reviews.jsonl").unlink()
    commit(tmp_path, {"data/reviews.jsonl": _rows(ROWS)}, "data as a file")
    code, out, err = promptc(
        tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~1", "--stat"
    )
    assert code == 0, err
    assert out.startswith("no change:")
    (tmp_path / "data" / "reviews.jsonl").unlink()
    (tmp_path / "data" / "reviews.jsonl").symlink_to("../../outside.jsonl")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "a link out")
    (tmp_path / "data" / "reviews.jsonl").unlink()
    commit(tmp_path, {"data/reviews.jsonl": _rows(ROWS)}, "a file again")
    code, out, err = promptc(
        tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~1", "--stat"
    )
    assert code == 2 and "Traceback" not in err
    assert (
        "data/reviews.jsonl is a link at HEAD~1 to '../../outside.jsonl', outside the repository"
    ) in err


def test_without_the_plan_extra_diff_says_it_estimates(
    repo: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from promptc.diff import views
    from promptc.errors import BackendError

    def not_installed(*args: object, **kw: object) -> None:
        raise BackendError("bpe-openai is not installed", code="missing-bpe")

    monkeypatch.setattr(views, "tokenizer_for", not_installed)
    code, out, _ = promptc(
        repo, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~5", "--stat"
    )
    assert code == 1
    assert out.endswith(
        "input tokens -33.3% per question (estimated: pip install 'promptc-compiler[plan]' counts them "
        "as plan does)\n"
    )


def test_the_old_revision_renders_with_its_own_shipped_templates(tmp_path: Path) -> None:
    from promptc.build import assemble
    from promptc.render.environment import SHIPPED_TEXTS
    from promptc.resources import read_template, template_names
    from promptc.spec.lower import compile_spec

    spec = Path(__file__).parents[1] / "specs" / "sentiment.yaml"
    task = compile_spec(str(spec))
    today = assemble(task).requests[0].messages[0].content
    old = {n: read_template(n) for n in template_names()}
    old["batch.j2"] = old["batch.j2"].replace(
        "{% block system %}\n", "{% block system %}\nAn older instruction.\n", 1
    )
    token = SHIPPED_TEXTS.set(old)
    try:
        then = assemble(compile_spec(str(spec))).requests[0].messages[0].content
    finally:
        SHIPPED_TEXTS.reset(token)
    assert then == "An older instruction.\n" + today


def test_diff_in_promptcs_own_repository_reads_the_shipped_templates_at_the_revision(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    top = Path(__file__).parents[1]
    if not (top / ".git").exists() or shutil.which("git") is None:
        pytest.skip("needs promptc's git checkout")
    tracked = subprocess.run(
        ["git", "ls-files", "--error-unmatch", "templates/batch.j2", "specs/sentiment.yaml"],
        cwd=top,
        capture_output=True,
        check=False,
    )
    if tracked.returncode != 0:
        pytest.skip("the templates are not committed here")
    code, out, err = promptc(
        top, monkeypatch, capsys, "diff", "specs/sentiment.yaml", "--against", "HEAD", "--stat"
    )
    assert "HEAD:templates/batch.j2, HEAD:templates/few-shot.j2" in err
    assert "HEAD:templates/partials/" in err and "installed promptc" not in err
    assert err.startswith("promptc diff: read at HEAD: HEAD:specs/data/sentiment.jsonl, ")
    assert code in (0, 1) and out


def test_the_old_sides_embedding_cache_is_never_written_through_a_link_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The spec at the revision named cache_dir: oldcache; today oldcache is a link out of the
    repository. The old side's embeddings stay in diff's temporary tree: nothing is created
    or written outside (build refuses that cache_dir too), and the work tree is untouched."""
    pytest.importorskip("sentence_transformers")
    root, outside = tmp_path / "repo", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    git(root, "init", "-q", "-b", "main")
    spec = SPEC.replace(
        "batch_size: 2}", "batch_size: 2, selection: {method: partition, cache_dir: oldcache}}"
    ).replace("templates: {batch: templates/batch.j2}\n", "")
    assert "cache_dir: oldcache" in spec
    commit(root, {"spec.yaml": spec, "data/reviews.jsonl": _rows(ROWS)}, "a spec")
    (root / "spec.yaml").write_text(spec.replace("oldcache", "newcache"), encoding="utf-8")
    (root / "oldcache").symlink_to(outside)
    code, _, err = promptc(root, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code in (0, 1), err
    assert list(outside.iterdir()) == []


def test_a_spec_that_is_a_link_is_read_at_the_revision_as_the_file_it_named_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """current.yaml → v1.yaml at the revision, → v2.yaml now: v1 as it was against v2 as it
    is, never v2 against itself ("no change")."""
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    v2 = SPEC.replace("batch_size: 2", "batch_size: 3")
    commit(
        root,
        {"v1.yaml": SPEC, "v2.yaml": v2, "templates/batch.j2": TEMPLATE,
         "templates/answer.j2": PARTIAL, "data/reviews.jsonl": _rows(ROWS)},
        "two versions",
    )  # fmt: skip
    (root / "current.yaml").symlink_to("v1.yaml")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "current is v1")
    (root / "current.yaml").unlink()
    (root / "current.yaml").symlink_to("v2.yaml")
    code, out, err = promptc(
        root, monkeypatch, capsys, "diff", "current.yaml", "--against", "HEAD", "--stat"
    )
    assert code == 1, err
    assert "HEAD:current.yaml" in err and "no change" not in out


def test_the_order_of_an_enums_aliases_is_no_change() -> None:
    """Aliases are a mapping: in another order nothing sent or read differs."""
    from dataclasses import replace

    from promptc.diff.views import answer_reading
    from promptc.spec.lower import compile_spec

    task = compile_spec(Path(__file__).resolve().parents[1] / "specs" / "sentiment.yaml")
    out = next(o for o in task.outputs if o.aliases)
    turned = replace(out, aliases=tuple(reversed(out.aliases)))
    other = replace(task, outputs=tuple(turned if o is out else o for o in task.outputs))
    assert answer_reading(task) == answer_reading(other)


def test_an_extends_chain_as_long_as_the_loader_follows_is_read_at_a_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A chain of 18 specs builds (the loader follows 32), but diff --against copied 17 of
    them out of git and said the 18th was 'not found'."""
    root = tmp_path / "chain"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = {"spec.yaml": SPEC, "data/reviews.jsonl": _rows(ROWS)}
    files["templates/batch.j2"], files["templates/answer.j2"] = TEMPLATE, PARTIAL
    prev = "spec.yaml"
    for i in range(1, 18):
        files[f"s{i}.yaml"] = f"extends: {prev}\nmodel: {{temperature: 0.{i % 10}}}\n"
        prev = f"s{i}.yaml"
    commit(root, files, "chain")
    code, out, err = promptc(root, monkeypatch, capsys, "diff", prev, "--against", "HEAD")
    assert (code, "not found" in err) == (0, False), out + err


def test_a_file_stored_through_a_git_filter_is_read_as_a_checkout_writes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data kept through a filter (Git LFS stores a pointer, its smudge filter writes the
    data): diff --against read the stored blob, not the data, and said it was no JSON. Read
    with the checkout's filters, nothing changed is no change."""
    root = tmp_path / "filtered"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "filter.upper.clean", "tr a-z A-Z")
    git(root, "config", "filter.upper.smudge", "tr A-Z a-z")
    files = {".gitattributes": "data/*.jsonl filter=upper\n", "spec.yaml": SPEC}
    files["data/reviews.jsonl"] = _rows([(i, t.lower()) for i, t in ROWS])
    files["templates/batch.j2"], files["templates/answer.j2"] = TEMPLATE, PARTIAL
    commit(root, files, "filtered")
    assert '"ID"' in git(root, "cat-file", "blob", "HEAD:data/reviews.jsonl")  # as stored
    code, out, err = promptc(root, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 0 and "no change" in out, out + err


def test_data_and_templates_in_a_linked_folder_are_read_at_a_revision(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """data -> shared/data, a link to a folder inside the repository: the build follows it,
    but diff --against said the data was 'not found', even against HEAD with no change."""
    root = tmp_path / "linked"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = {"spec.yaml": SPEC, "shared/data/reviews.jsonl": _rows(ROWS)}
    files["shared/t/batch.j2"], files["shared/t/answer.j2"] = TEMPLATE, PARTIAL
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text, encoding="utf-8")
    (root / "data").symlink_to("shared/data")
    (root / "templates").symlink_to("shared/t")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "linked")
    code, out, err = promptc(root, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 0 and "no change" in out, out + err


def test_a_revision_a_shallow_clone_lacks_says_the_clone_is_shallow(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """CI's default checkout holds one commit: --against HEAD~1 said 'git knows no commit by
    that name', and its hint suggested HEAD~1 itself."""
    clone = tmp_path / "shallow"
    git(tmp_path, "clone", "-q", "--depth", "1", f"file://{repo}", str(clone))
    code, _, err = promptc(clone, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD~1")
    assert code == 2
    assert err == (
        "spec.yaml: unknown revision 'HEAD~1': git knows no commit by that name (this clone is "
        "shallow: it holds only the latest commits) (fetch more history (git fetch "
        "--deepen=N, or a CI checkout's fetch-depth: 0))\n"
    )


def test_data_in_the_work_tree_but_not_committed_is_said_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Data git ignores: 'data file not found' at HEAD, while the user sees it right there."""
    root = tmp_path / "ignored"
    root.mkdir()
    git(root, "init", "-q", "-b", "main")
    files = {".gitignore": "data/\n", "spec.yaml": SPEC, "data/reviews.jsonl": _rows(ROWS)}
    files["templates/batch.j2"], files["templates/answer.j2"] = TEMPLATE, PARTIAL
    commit(root, files, "data ignored")
    code, _, err = promptc(root, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD")
    assert code == 2
    assert err.endswith(
        "data file 'data/reviews.jsonl' not found (the file is in the work tree but not "
        "committed at HEAD (untracked or ignored by git): diff --against reads the revision's "
        "files from git)\n"
    )


def test_a_computed_include_reads_the_folders_and_passes_over_an_unrelated_link_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template that includes ``part ~ ".j2"`` brings in every file of the spec's folders
    at the revision. An unrelated committed link out of the repository among them made the
    diff fail (exit 2) though the build never opens it; and the ``read at`` line named every
    file brought in. The link is passed over and the files brought in are counted."""
    git(tmp_path, "init", "-q")
    computed = TEMPLATE.replace('"templates/answer.j2"', '"templates/" ~ "answer" ~ ".j2"')
    notes = {f"docs/n{k}.md": f"note {k}\n" for k in range(30)}
    commit(
        tmp_path,
        {
            "spec.yaml": SPEC,
            "templates/batch.j2": computed,
            "templates/answer.j2": PARTIAL,
            "data/reviews.jsonl": _rows(ROWS),
            **notes,
        },
        "a computed include",
    )
    (tmp_path / "docs" / "outside-link").symlink_to("/etc/hostname")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "an unrelated link out")
    code, out, err = promptc(
        tmp_path, monkeypatch, capsys, "diff", "spec.yaml", "--against", "HEAD", "--stat"
    )
    assert code == 0, err
    assert out.startswith("no change:")
    assert err == (
        "promptc diff: read at HEAD: HEAD:data/reviews.jsonl, HEAD:spec.yaml, "
        "HEAD:templates/batch.j2, 31 other file(s) of the spec's folders (a template names "
        f"another by an expression), {SHIPPED_NOTE}\n"
    )
