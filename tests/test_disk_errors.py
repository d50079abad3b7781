"""A full disk or a read-only folder, under every command that writes: a clear message naming
the file or folder, exit 1 or 2 (never 3), nothing half-written under a real name, and every
answer already written still readable.

The disk is a small tmpfs mounted by the test: as root directly, else inside
``unshare --user --map-root-user --mount``; the test is skipped, saying why, where neither
is allowed.
"""

from __future__ import annotations

import http.server
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
from loopback import QuietHandler, chat_completion, send_json, serving
from promptc.build import build
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"
ANSWER = "A[1]: positive\nA[2]: negative\nA[3]: neutral\nA[4]: positive"

#: Each command that writes, with {build}, {obuild}, {spec}, {url}, {results} filled in.
COMMANDS = {
    "build": ["build", "{spec}", "-o", "{disk}/new"],
    "rebuild": ["build", "{spec}", "--batch-size", "4", "--strategy", "batch", "-o", "{build}"],
    "init": ["init", "{disk}/starter"],
    "run": ["run", "{build}", "--base-url", "{url}", "--grammar", "none", "--repair", "0",
            "--parse", "--no-cache"],
    "collect": ["collect", "{obuild}", "{results}"],
    "parse": ["parse", "{build}", "{answers}", "-o", "{disk}/parsed.jsonl"],
    "schema": ["schema", "-o", "{disk}/schema.json"],
}  # fmt: skip


class _Answers(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        send_json(self, chat_completion(ANSWER))


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    handler: type[http.server.BaseHTTPRequestHandler] = _Answers
    with serving(handler) as base:
        yield base


def _mount(disk: Path, options: str) -> None:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (or user namespaces, not tried here)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(disk)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode(errors='replace').strip()}")


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[Path]:
    where = tmp_path / "disk"
    where.mkdir()
    _mount(where, "size=256k")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _promptc(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "promptc", *argv], capture_output=True, text=True, check=False
    )


def _prepare(disk: Path, tmp_path: Path, url: str) -> dict[str, str]:
    spec = SPECS / "sentiment.yaml"
    fill = {"spec": str(spec), "disk": str(disk), "url": url}
    overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    task = compile_spec(spec, overrides=overrides)
    for name, target in (("build", "chat"), ("obuild", "openai-batch")):
        build(task, disk / name, target=target)
        fill[name] = str(disk / name)
    results = tmp_path / "results.jsonl"
    body = {"choices": [{"message": {"content": ANSWER}, "finish_reason": "stop"}]}
    results.write_text(
        "".join(
            json.dumps({"custom_id": f"r000{k}", "response": {"status_code": 200, "body": body}})
            + "\n"
            for k in range(1, 6)
        ),
        encoding="utf-8",
    )
    answers = tmp_path / "answers.jsonl"
    answers.write_text(json.dumps({"id": "r0001", "output": ANSWER}) + "\n", encoding="utf-8")
    return {**fill, "results": str(results), "answers": str(answers)}


def _files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def _no_half_written(disk: Path) -> None:
    """Every JSON Lines file under a real name reads whole, line by line."""
    for path in disk.rglob("*.jsonl"):
        text = path.read_text(encoding="utf-8")
        assert text == "" or text.endswith("\n"), path
        for line in text.split("\n")[:-1]:
            json.loads(line)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("trouble", ["full", "read-only"])
def test_every_writing_command_on_a_full_or_read_only_disk(
    disk: Path, tmp_path: Path, url: str, command: str, trouble: str
) -> None:
    fill = _prepare(disk, tmp_path, url)
    before = _files(disk)
    if trouble == "full":
        fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT)
        try:
            with pytest.raises(OSError):
                while True:
                    os.write(fd, b"\0" * 512)
        finally:
            os.close(fd)
    else:
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
    done = _promptc([a.format(**fill) for a in COMMANDS[command]])
    if trouble == "read-only":
        subprocess.run(["mount", "-o", "remount,rw", str(disk)], check=True)
    assert done.returncode in (1, 2), (done.returncode, done.stderr)
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr
    said = "No space left on device" if trouble == "full" else "Read-only file system"
    assert said in done.stderr or "is not writable" in done.stderr, done.stderr
    assert str(disk) in done.stderr or "mnt" in done.stderr or "'-o'" in done.stderr
    (disk / "filler").unlink(missing_ok=True)
    _no_half_written(disk)
    after = _files(disk)
    # Nothing that was there is changed, except the answers a run could write before the
    # disk filled (each whole) and its lock's pid.
    for name, data in before.items():
        if name.endswith(("outputs.jsonl", ".lock")):
            continue
        assert after.get(name) == data, name
    new = {n for n in after if n not in before and not n.endswith(".lock")}
    assert new <= {"build/outputs.jsonl"}, new
    if trouble == "full" and command == "run":
        # Whatever a full disk let it write, the next run resumes from and completes.
        again = _promptc([a.format(**fill) for a in COMMANDS[command]])
        assert again.returncode == 0, again.stderr
        assert len(read_lines(disk / "build" / "outputs.jsonl")) == 5


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").split("\n")[:-1]]


def test_a_build_that_fills_the_disk_midway_says_so_and_leaves_nothing(tmp_path: Path) -> None:
    # The first files fit and the disk fills while later ones are written (or flushed when
    # closed): the disk's error, named, and no temporary file left behind.
    where = tmp_path / "small"
    where.mkdir()
    _mount(where, "size=64k")
    try:
        rows = (SPECS / "data" / "sentiment.jsonl").read_text(encoding="utf-8").splitlines()
        data = tmp_path / "many.jsonl"
        data.write_text(
            "".join(
                json.dumps({**json.loads(rows[k % len(rows)]), "id": f"x{k}"}) + "\n"
                for k in range(400)
            ),
            encoding="utf-8",
        )
        done = _promptc(
            ["build", str(SPECS / "sentiment.yaml"), "--data", str(data), "-o", str(where / "b")]
        )
        assert done.returncode in (1, 2), (done.returncode, done.stderr)
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr
        assert "No space left on device" in done.stderr and str(where / "b") in done.stderr
        assert [p.name for p in where.rglob("*") if p.is_file()] == []
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


class _Counted(QuietHandler):
    """Answers each request, the second with 200 kB (more than the disk holds); counts them."""

    seen: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        self.seen.append(self.path)
        huge = len(self.seen) == 2
        send_json(self, chat_completion(ANSWER + (" x" * 100_000 if huge else "")))


def test_the_disk_filling_mid_run_ends_the_sending_and_every_message_names_its_file(
    tmp_path: Path,
) -> None:
    """The second answer does not fit: the run ends saying which file, no request waiting
    for its turn is sent after that (its answer could be written nowhere: paid and lost),
    and a resume on the still full disk names the file it could not write either."""
    where = tmp_path / "small"
    where.mkdir()
    _mount(where, "size=150k")
    try:
        spec = SPECS / "sentiment.yaml"
        overrides = {("strategy", "kind"): "batch", ("strategy", "batch_size"): 8}
        build(compile_spec(spec, overrides=overrides), where / "b", target="chat")
        _Counted.seen = []
        handler: type[http.server.BaseHTTPRequestHandler] = _Counted
        with serving(handler) as base:
            argv = ["run", str(where / "b"), "--base-url", base, "--concurrency", "1"]
            argv += ["--repair", "0", "--no-cache", "--grammar", "none"]
            first = _promptc(argv)
            assert first.returncode in (1, 2), first.stderr
            assert f"error: {where / 'b' / 'outputs.jsonl'}: No space left on device" in (
                first.stderr
            )
            assert len(_Counted.seen) == 2  # the third request was never sent
            again = _promptc(argv)
        assert again.returncode in (1, 2) and "Traceback" not in again.stderr
        assert str(where / "b") in again.stderr and "No space left on device" in again.stderr
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _answered_math(folder: Path, strategy: str, tmp_path: Path) -> None:
    """A math build of ``strategy`` with every request answered right, parsed."""
    from promptc.cli.app import run

    assert run(["build", str(SPECS / "math.yaml"), "-o", str(folder), "--strategy", strategy]) == 0
    items = [json.loads(x) for x in (folder / "items.jsonl").read_text().splitlines()]
    gold = {i["id"]: i["gold"]["answer"] for i in items}
    outputs = tmp_path / f"{strategy}.outputs.jsonl"
    with outputs.open("w", encoding="utf-8") as f:
        for line in (folder / "requests.jsonl").read_text().splitlines():
            r = json.loads(line)
            ids = r["item_ids"]
            text = "\n".join(
                f"A[{k}]: So. The answer is {gold[i]}."
                if len(ids) > 1
                else f"So. The answer is {gold[i]}."
                for k, i in enumerate(ids, 1)
            )
            f.write(json.dumps({"id": r["id"], "output": text}) + "\n")
    assert run(["parse", str(folder), str(outputs), "-o", str(folder / "results.jsonl")]) == 0


def test_an_eval_stopped_by_a_full_disk_leaves_the_last_report_whole(tmp_path: Path) -> None:
    """report.json and report.md of the new eval were in place beside the last eval's
    report.html when the disk filled: every page is now the last report's, or every one
    this report's."""
    where = tmp_path / "small"
    where.mkdir()
    _mount(where, "size=1m")
    try:
        single, batch = tmp_path / "single", tmp_path / "batch"
        _answered_math(single, "single", tmp_path)
        _answered_math(batch, "batch", tmp_path)
        report = where / "rep"
        argv = ["eval", str(SPECS / "math.yaml"), "-o", str(report), "--no-charts", "--results"]
        done = _promptc([*argv, str(single), str(batch)])
        assert done.returncode == 0, done.stderr
        before = _files(report)
        assert sorted(before) == ["report.html", "report.json", "report.md"]
        with open(where / "filler", "wb", buffering=0) as f:
            try:
                while True:
                    f.write(b"\0" * 4096)
            except OSError:
                pass
        # Room for the new report.json and report.md, not for its report.html.
        room = len(before["report.json"]) + len(before["report.md"]) + 8192
        assert room < len(before["report.html"])
        os.truncate(where / "filler", os.path.getsize(where / "filler") - room)
        done = _promptc([*argv, str(single)])
        assert done.returncode == 2, done.stderr
        assert "No space left on device" in done.stderr and "Traceback" not in done.stderr
        assert _files(report) == before
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)
