"""Is a build folder the build its spec makes now? (``promptc build SPEC -o DIR --check``)

:func:`stale_files` holds the files of a build made in memory against those in the folder,
byte for byte, and names every file that is missing, differs, or would be removed by a
rebuild; :func:`first_difference` finds the first request whose line differs, so that a CI
log says what went stale, not only that something did. Nothing is written.
"""

from __future__ import annotations

import itertools
import json
import os
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from promptc.build import (
    REQUEST_GRAMMARS,
    REQUESTS_FILE,
    BuildResult,
    is_build_file,
    is_request_grammar,
)
from promptc.build.files import read_text
from promptc.errors import Location, PromptcError, UsageError, one_line

Problem = Literal["missing", "stale", "extra", "foreign"]


@dataclass(frozen=True)
class StaleFile:
    """A file of the folder that does not match the build.

    Attributes:
        name: The file name inside the build folder.
        problem: ``missing`` (the build has it, the folder not), ``stale`` (different bytes),
            ``extra`` (an earlier build's file a rebuild would remove) or ``foreign`` (no
            file of a build, where the build writes its own: a rebuild refuses the folder).
    """

    name: str
    problem: Problem


@dataclass(frozen=True)
class FirstDifference:
    """The first line of ``requests.jsonl`` that differs.

    Attributes:
        location: ``DIR/requests.jsonl:line``.
        request: The id of the request the build makes there (``None`` past its end).
        found: The id of the request in the folder there (``None`` past the file's end).
    """

    location: Location
    request: str | None
    found: str | None


def stale_files(result: BuildResult, out_dir: str | os.PathLike[str]) -> list[StaleFile]:
    """Every file of ``out_dir`` that differs from the build ``result``, in name order."""
    folder = Path(out_dir)
    own = folder / REQUEST_GRAMMARS
    linked = own.is_symlink()  # never read through: it leads out of the folder
    out: list[StaleFile] = []
    for name, text in sorted(result.files.items()):
        path = folder / name
        if (linked and name.startswith(f"{REQUEST_GRAMMARS}/")) or not path.is_file():
            out.append(StaleFile(name, "missing"))
            continue
        try:  # a regular file, within the bound: a link, a FIFO or a device is stale
            same = read_text(path) == text
        except (OSError, PromptcError):
            same = False
        if not same:
            out.append(StaleFile(name, "stale"))
    if folder.is_dir():
        for old in sorted(folder.iterdir(), key=lambda p: p.name):
            if is_build_file(old.name) and old.name not in result.files and old.is_file():
                out.append(StaleFile(old.name, "extra"))
        if linked or (own.exists() and not own.is_dir()):
            out.append(StaleFile(REQUEST_GRAMMARS, "foreign"))
        elif own.is_dir():  # the requests' own grammars, grammars/<request id>.*
            for old in sorted(own.iterdir(), key=lambda p: p.name):
                name = f"{REQUEST_GRAMMARS}/{old.name}"
                if name in result.files:
                    continue
                grammar = is_request_grammar(old.name) and old.is_file() and not old.is_symlink()
                out.append(StaleFile(name, "extra" if grammar else "foreign"))
    return sorted(out, key=lambda s: s.name)


def first_difference(
    result: BuildResult, out_dir: str | os.PathLike[str]
) -> FirstDifference | None:
    """The first line of the folder's ``requests.jsonl`` that the build would write otherwise."""
    path = Path(out_dir) / REQUESTS_FILE
    # Lines end at "\n" alone: a prompt may hold U+2028, which str.splitlines splits at.
    want = result.files.get(REQUESTS_FILE, "").split("\n")
    try:
        have = read_text(path).split("\n")
    except (OSError, PromptcError):
        return None
    for i, (a, b) in enumerate(itertools.zip_longest(want, have)):
        if a != b:
            return FirstDifference(
                Location(str(path), i + 1),
                result.requests[i].id if i < len(result.requests) else None,
                _request_id(b),
            )
    return None


def _request_id(line: str | None) -> str | None:
    try:
        data = json.loads(line) if line is not None else None
    except (ValueError, RecursionError):
        return None
    rid = data.get("id", data.get("custom_id")) if isinstance(data, dict) else None
    return str(rid) if rid is not None else None


_SAYS: dict[Problem, str] = {
    "missing": "missing: the build writes it",
    "stale": "stale: the build writes it otherwise",
    "extra": "left over: a rebuild removes it",
    "foreign": "not a file of the build: a rebuild refuses the folder until it is moved away",
}


def check_report(
    result: BuildResult,
    out_dir: str | os.PathLike[str],
    spec: str,
    options: Sequence[str] = (),
) -> tuple[int, list[str]]:
    """``promptc build --check``: the exit status (0 current, 1 stale) and the lines to print.

    Each stale file is one line, ``DIR/name: stale: …``; then the first request that
    differs, at its line of ``requests.jsonl``; then what to run: ``promptc build`` with the
    options the build was checked with (``options``: ``--strategy``, ``--data`` …), which
    make another build without them.
    """
    folder = Path(out_dir)
    command = shlex.join(["promptc", "build", spec, "-o", str(out_dir), *options])
    if not folder.is_dir():
        return 1, [f"{folder}: missing: no build folder (run {command})"]
    stale = stale_files(result, folder)
    if not stale:
        return 0, [f"{folder}: up to date ({len(result.files)} files)"]
    lines = [f"{folder / s.name}: {_SAYS[s.problem]}" for s in stale]
    first = first_difference(result, folder)
    if first is not None:
        if first.request is None:
            what = f"request {first.found} is not in the build any more"
        elif first.found is None:
            what = f"request {first.request} is missing"
        elif first.found == first.request:
            what = f"request {first.request} differs"
        else:
            what = f"request {first.found} is where the build writes {first.request}"
        lines.append(f"{first.location}: first differing request: {what}")
    # Left-over files are not among the build's: counted apart ("19 of 15" said otherwise).
    changed = sum(s.problem in ("missing", "stale") for s in stale)
    extra = sum(s.problem == "extra" for s in stale)
    foreign = len(stale) - changed - extra
    left = (f", {extra} left over" if extra else "") + (
        f", {foreign} not the build's" if foreign else ""
    )
    lines.append(
        f"{folder}: {changed} of {len(result.files)} files out of date{left} "
        f"(rebuild with {command})"
    )
    return 1, lines


def untracked(paths: Sequence[Path], cwd: Path) -> list[str]:
    """``build --check --tracked``: a line for each of ``paths`` (a build's files and the files
    it reads) that git does not track in the work tree ``cwd`` is in — what a commit made now
    would leave out (pre-commit hides unstaged changes from a hook, never untracked files).

    Raises:
        PromptcError: ``not-in-git``: git cannot be run there, or ``cwd`` is in no work tree.
    """
    cwd = next((p for p in (cwd, *cwd.parents) if p.is_dir()), cwd)  # a folder not built yet
    top = os.path.realpath(_git(["rev-parse", "--show-toplevel"], cwd).strip())
    inside = [p for p in paths if os.path.realpath(p).startswith(os.path.join(top, ""))]
    # The folders the paths are in, absolute: git runs in ``cwd`` (the build's folder) while
    # ``paths`` may be relative to the user's folder (pre-commit's, the repository's top); a
    # few folders, not one argument a file (a build may have a grammar file a request), read
    # literally (a file name may hold ``*``).
    folders = sorted({os.path.dirname(os.path.realpath(p)) for p in inside})
    args = ["--literal-pathspecs", "ls-files", "-z", "--full-name", "--", *folders]
    listed = _git(args, cwd) if folders else ""
    tracked = {os.path.join(top, name) for name in listed.split("\0") if name}
    lines = []
    for p in paths:
        if p not in inside:
            lines.append(f"{p}: not in the git repository at {top}: a commit cannot hold it")
        elif os.path.realpath(p) not in tracked:
            lines.append(f"{p}: not tracked by git: a commit leaves it out (git add it)")
    return lines


def _git(args: Sequence[str], cwd: Path) -> str:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=120, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise UsageError(
            f"--tracked: git could not be run: {e}", location=Location(str(cwd)), code="not-in-git"
        ) from None
    if done.returncode != 0:
        said = one_line(done.stderr.decode("utf-8", "replace").strip())
        raise UsageError(
            f"--tracked: {cwd} is in no git work tree ({said})",
            location=Location(str(cwd)),
            code="not-in-git",
        )
    return done.stdout.decode("utf-8", "surrogateescape")
