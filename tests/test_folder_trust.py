"""A build folder is untrusted input (issue: nothing outside the named folders is touched).

A colleague sharing a build folder may plant a symbolic link, a FIFO or a device under any
name the folder holds: promptc reads and writes only regular files inside it, never waits on
a pipe, never reads a device without end, and says which file it refused. The output
folders of ``build`` and ``init`` are held to the same, and ``build -o`` writes only into a
new or empty folder or over an earlier build.
"""

from __future__ import annotations

import http.server
import json
import os
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build
from promptc.build.files import held_lock
from promptc.cli.app import run
from promptc.errors import UsageError
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
ANSWER = "A[1]: positive\nA[2]: negative\nA[3]: neutral\nA[4]: positive"

#: Every file a build folder holds, and what ``promptc run --parse`` writes beside them.
BUILD_FILES = (
    "manifest.json",
    "requests.jsonl",
    "batches.jsonl",
    "task.json",
    "items.jsonl",
    "answer.gbnf",
    "answer.lark",
)
RUN_FILES = ("outputs.jsonl", ".outputs.jsonl.lock", "outputs.replaced.jsonl", "results.jsonl")
#: What is planted: a link to a file outside, a link to a device, a named pipe.
PLANTS = ("link", "device", "fifo")


class _Answers(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, chat_completion(ANSWER))

    def do_GET(self) -> None:
        send_json(self, {"error": "no"}, status=404)


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    handler: type[http.server.BaseHTTPRequestHandler] = _Answers
    with serving(handler) as base:
        yield base


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    out = tmp_path_factory.mktemp("built") / "b"
    build(compile_spec(SPECS / "sentiment.yaml", overrides=overrides), out)
    return out


@pytest.fixture(autouse=True)
def no_hang() -> Iterator[None]:
    """A FIFO opened for reading waits for a writer: a test that would hang fails instead."""

    def stop(*_: object) -> None:
        raise TimeoutError("promptc waited on a planted file")

    old = signal.signal(signal.SIGALRM, stop)
    signal.alarm(60)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def _plant(path: Path, plant: str, outside: Path) -> None:
    path.unlink(missing_ok=True)
    if plant == "link":
        path.symlink_to(outside)
    elif plant == "device":
        path.symlink_to("/dev/zero")
    else:
        os.mkfifo(path)


def _outside(tmp_path: Path) -> Path:
    outside = tmp_path / "outside" / "secret.txt"
    outside.parent.mkdir()
    outside.write_text("not promptc's\n", encoding="utf-8")
    return outside


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("name", BUILD_FILES + RUN_FILES)
def test_run_never_follows_a_planted_file(
    built: Path,
    url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    name: str,
    plant: str,
) -> None:
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    outside = _outside(tmp_path)
    if name == "outputs.replaced.jsonl":  # a line run cannot place: it is moved aside
        (folder / "outputs.jsonl").write_text("not an answer\n", encoding="utf-8")
    _plant(folder / name, plant, outside)
    argv = ["run", str(folder), "--base-url", url, "--grammar", "gbnf", "--no-cache", "--parse"]
    status = run([*argv, "--repair", "0"])
    err = capsys.readouterr().err
    assert outside.read_text(encoding="utf-8") == "not promptc's\n"
    assert sorted(p.name for p in outside.parent.iterdir()) == ["secret.txt"]
    assert "internal error" not in err
    if name in ("results.jsonl",):
        # Written whole then renamed over the name: the link itself is replaced.
        assert status == 0 and not (folder / name).is_symlink()
        return
    if name == "answer.lark":  # not read by run --grammar gbnf
        return
    kind = {"link": "a symbolic link", "device": "a symbolic link", "fifo": "a named pipe"}
    assert status == 2, err
    assert (
        f"{name} is {kind[plant]}, not a regular file; promptc reads and writes regular files "
        "only, never through a link, a pipe or a device (put a regular file in its place: cp -L "
        "copies what a link points to, and promptc build SPEC -o DIR remakes a build folder)"
    ) in err or "is not a plain file name inside the build folder" in err, err


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("name", BUILD_FILES)
def test_build_check_and_parse_never_wait_on_a_planted_file(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, plant: str
) -> None:
    folder = tmp_path / "b"
    shutil.copytree(built, folder)
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text(json.dumps({"id": "r0001", "output": ANSWER}) + "\n", encoding="utf-8")
    outside = _outside(tmp_path)
    _plant(folder / name, plant, outside)
    spec = str(SPECS / "sentiment.yaml")
    check = ["build", spec, "--strategy", "batch", "--batch-size", "4", "-o", str(folder)]
    assert run([*check, "--check"]) == 1  # out of date: the planted file is not the build's
    assert run(["parse", str(folder), str(outputs)]) in (0, 1, 2)
    assert "internal error" not in capsys.readouterr().err
    assert outside.read_text(encoding="utf-8") == "not promptc's\n"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("plant", PLANTS)
def test_an_outputs_file_to_parse_is_a_regular_file(
    built: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: str
) -> None:
    outputs = tmp_path / "outputs.jsonl"
    _plant(outputs, plant, _outside(tmp_path))
    assert run(["parse", str(built), str(outputs)]) == 2
    assert "not a regular file" in capsys.readouterr().err


def test_build_writes_only_into_a_new_or_empty_folder_or_over_a_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(SPECS, tmp_path / "specs")
    spec = tmp_path / "specs" / "sentiment.yaml"
    out = tmp_path / "out"
    out.mkdir()
    notes = out / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    assert run(["build", str(spec), "-o", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"{notes}: {str(out)!r} holds 'notes.txt', which is not a file of a promptc build; "
        "promptc writes a build only into a new or empty folder or over an earlier build "
        "(give a new or empty folder with -o, or move that file away)\n"
    )
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    notes.unlink()
    assert run(["build", str(spec), "-o", str(out)]) == 0
    (out / "outputs.jsonl").write_text("", encoding="utf-8")  # what run leaves is kept
    assert run(["build", str(spec), "-o", str(out)]) == 0
    assert (out / "outputs.jsonl").exists()
    capsys.readouterr()
    # The spec's own folder, whose data is named like a build file: refused, naming it.
    data = tmp_path / "specs" / "data"
    shutil.copy(data / "sentiment.jsonl", data / "items.jsonl")
    own = tmp_path / "specs" / "own.yaml"
    own.write_text(
        spec.read_text(encoding="utf-8").replace("data/sentiment.jsonl", "data/items.jsonl"),
        encoding="utf-8",
    )
    before = (data / "items.jsonl").read_bytes()
    assert run(["build", str(own), "-o", str(data)]) == 2
    assert capsys.readouterr().err == (
        f"{data}: {str(data)!r} holds 'items.jsonl', which this build reads; promptc build "
        "would overwrite it (give another folder with -o)\n"
    )
    assert (data / "items.jsonl").read_bytes() == before
    # -o under a path that is a file.
    assert run(["build", str(spec), "-o", str(notes.parent / "outputs.jsonl" / "x")]) == 2
    assert "Not a directory" in capsys.readouterr().err


def test_a_template_a_template_includes_is_never_replaced_by_the_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A template included (imported, extended) by the spec's own template, kept in the -o
    folder under a build file's name or in its grammars/, was overwritten by the build: only
    the spec's top-level templates were checked. Refused, naming it, the file untouched."""
    root = tmp_path / "t"
    (root / "data").mkdir(parents=True)
    shutil.copy(SPECS / "data" / "sentiment.jsonl", root / "data")
    spec = root / "s.yaml"
    text = (SPECS / "sentiment.yaml").read_text(encoding="utf-8")
    spec.write_text(text + "templates: {batch: mine.j2}\n", encoding="utf-8")
    out = root / "o"
    for kept in ("answer.gbnf", "grammars/r0001.lark"):
        (root / "mine.j2").write_text(
            '{% extends "promptc/batch.j2" %}{% block system %}'
            f'{{% include "o/{kept}" %}}{{% endblock %}}\n',
            encoding="utf-8",
        )
        mine = out / kept
        mine.parent.mkdir(parents=True, exist_ok=True)
        mine.write_text("You are a careful annotator.\n", encoding="utf-8")
        assert run(["build", str(spec), "-o", str(out)]) == 2
        assert capsys.readouterr().err == (
            f"{out}: {str(out)!r} holds {kept!r}, which this build reads; promptc build "
            "would overwrite it (give another folder with -o)\n"
        )
        assert mine.read_text(encoding="utf-8") == "You are a careful annotator.\n"


def test_a_second_build_into_a_folder_being_built_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two builds into one folder at once removed each other's files: one said "built" over
    # a folder with no manifest. The second is refused, naming the first; the lock file is
    # gone when the first ends, and a later build takes the folder.
    out = tmp_path / "out"
    spec = str(SPECS / "sentiment.yaml")
    assert run(["build", spec, "-o", str(out)]) == 0
    capsys.readouterr()

    def busy(pid: str) -> UsageError:
        raise AssertionError(pid)

    with held_lock(out / ".build.lock", busy):
        assert run(["build", spec, "-o", str(out), "--batch-size", "4"]) == 2
        assert capsys.readouterr().err == (
            f"{out}: another promptc build (pid {os.getpid()}) is writing {str(out)!r} "
            "(wait for it to finish, or give another folder with -o)\n"
        )
    assert not (out / ".build.lock").exists()
    (out / ".build.lock").write_text("", encoding="utf-8")  # left by a build killed -9
    assert run(["build", spec, "-o", str(out), "--batch-size", "4"]) == 0
    assert not (out / ".build.lock").exists() and (out / "manifest.json").is_file()


def test_a_users_file_in_the_request_grammars_folder_is_refused_up_front(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # commonsense-qa's options give each request its own grammars (grammars/): a rebuild
    # replaces that folder whole, and a file of the user's in it (or a link in its place)
    # stopped it halfway, the manifest removed. Refused before anything is touched.
    shutil.copytree(SPECS, tmp_path / "specs")
    spec = str(tmp_path / "specs" / "commonsense-qa.yaml")
    out = tmp_path / "c"
    args = ["build", spec, "-o", str(out), "--strategy", "batch", "--batch-size", "4"]
    assert run(args) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    notes = out / "grammars" / "notes.txt"
    notes.write_text("mine\n", encoding="utf-8")
    capsys.readouterr()
    assert run(args) == 2
    assert capsys.readouterr().err == (
        f"{notes}: {str(out)!r} holds 'grammars/notes.txt', which is not a file of a promptc "
        "build; promptc writes a build only into a new or empty folder or over an earlier "
        "build (give a new or empty folder with -o, or move that file away)\n"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert run([*args, "--check"]) == 1
    said = capsys.readouterr().err
    assert f"{notes}: not a file of the build: a rebuild refuses the folder" in said
    # A link in the folder's place: refused too, and --check never reads through it.
    shutil.rmtree(out / "grammars")
    outside = _outside(tmp_path).parent
    (out / "grammars").symlink_to(outside, target_is_directory=True)
    assert run(args) == 2
    assert "holds 'grammars', which is not a file of a promptc build" in capsys.readouterr().err
    assert run([*args, "--check"]) == 1
    said = capsys.readouterr().err
    assert f"{out / 'grammars'}: not a file of the build" in said and "left over" not in said


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("plant", PLANTS)
@pytest.mark.parametrize("name", [".requests.jsonl.tmp", ".items.jsonl.tmp", "requests.jsonl"])
def test_build_never_writes_through_a_planted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, plant: str
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    outside = _outside(tmp_path)
    _plant(out / name, plant, outside)
    status = run(["build", str(SPECS / "sentiment.yaml"), "-o", str(out)])
    assert "internal error" not in capsys.readouterr().err
    assert status == 0
    assert outside.read_text(encoding="utf-8") == "not promptc's\n"
    assert not (out / "requests.jsonl").is_symlink()


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this system")
@pytest.mark.parametrize("plant", PLANTS)
def test_init_never_writes_through_a_planted_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], plant: str
) -> None:
    folder = tmp_path / "new"
    folder.mkdir()
    outside = _outside(tmp_path)
    _plant(folder / "task.yaml", plant, outside)
    assert run(["init", str(folder)]) == 2
    assert f"refusing to overwrite {folder / 'task.yaml'}" in capsys.readouterr().err
    assert outside.read_text(encoding="utf-8") == "not promptc's\n"
    assert sorted(p.name for p in folder.iterdir()) == ["task.yaml"]


def test_collect_never_writes_a_repair_build_through_a_planted_link(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    folder = tmp_path / "b"
    task = compile_spec(SPECS / "sentiment.yaml", overrides=overrides)
    build(task, folder, target="openai-batch")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "requests.jsonl").write_text("precious\n", encoding="utf-8")
    (folder / "repair").symlink_to(elsewhere)
    results = tmp_path / "results.jsonl"
    results.write_text(
        json.dumps({"custom_id": "r0001", "response": {"status_code": 500, "body": {}}}) + "\n",
        encoding="utf-8",
    )
    assert run(["collect", str(folder), str(results)]) == 2
    assert "repair is a symbolic link, not a regular file" in capsys.readouterr().err
    assert sorted(p.name for p in elsewhere.iterdir()) == ["requests.jsonl"]
    assert (elsewhere / "requests.jsonl").read_text(encoding="utf-8") == "precious\n"
