"""The run's files in the build folder: ``outputs.jsonl`` (one answer a line, appended as
answers arrive), ``results.jsonl`` and ``outputs.replaced.jsonl``.

:func:`output_line` is the one writer of an ``outputs.jsonl`` line and
:func:`read_outputs_file` the one reader; :class:`OutputsFile` is the file as a run keeps it. No answer received is
ever lost:

- a line is split from the next on ``\\n`` alone (an answer may hold U+2028, U+2029 or
  U+0085, which JSON leaves as they are and :meth:`str.splitlines` would split on);
- an answer is appended and flushed, whole, before the run counts it;
- each file is opened as a regular file only (:func:`promptc.build.files.open_regular`): a
  link, a pipe or a device planted under its name in a shared build is refused, not followed;
- a rewrite (answers to changed requests moved aside, the file put in request order) never
  drops a line it cannot place — an unreadable line, a line torn by a kill, a second answer
  for one request — but moves it to ``outputs.replaced.jsonl`` as it was, and says so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import sys
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from promptc.build.files import held_lock, not_regular, open_regular, read_bounded
from promptc.build.writer import KEPT_NAMES, is_build_file
from promptc.errors import Location, UsageError
from promptc.text import canonical_json, write_atomic

if sys.platform != "win32":
    pass

OUTPUTS_FILE = "outputs.jsonl"


RESULTS_FILE = "results.jsonl"


REPLACED_FILE = "outputs.replaced.jsonl"


#: promptc run --batch-api's record of a build's batches, in the build folder.
STATE_FILE = "batch_api.json"


LOCK_SUFFIX = ".lock"


#: The largest outputs file read (about a million answers of 2,000 characters).
MAX_OUTPUTS_BYTES = 1 << 31


#: The note for lines a rewrite moved aside (``{count}``, ``{name}``, ``{aside}``, ``{lines}``:
#: their line numbers). Tested word for word.
UNPLACED_NOTE = (
    "{count} line(s) of {name} are not answers this run can place (unreadable, torn by an "
    "interrupted write, or a second answer for one request); moved to {aside} as they were: "
    "line(s) {lines}"
)


#: Why a file an option names is not written (``{option}``, ``{path}``; ``{name}`` and
#: ``{folder}`` for a file of the build). Tested word for word.
OVERWRITE_MESSAGES: dict[str, str] = {
    "answers": "{option} {path} would replace answers; give another file",
    "results": "{option} {path} is where the results go; give the answers another file",
    "build": "{option} {path} would replace {name} of the build in {folder}; give another file",
    "foreign": "{option} {path} is not an outputs file of promptc (its first line is no "
    "answer with the keys id, output and request_sha256 that promptc run writes): answers "
    "would replace what it holds; give a new or empty file, or an outputs file of promptc run",
    "foreign-results": "{option} {path} is not a results file of promptc (its first line is "
    "no result with the keys request_id, item_id and status that promptc writes, nor the head "
    "of promptc parse's table): results would replace what it holds; give a new or empty "
    "file, or a results file of promptc",
}

#: The keys promptc writes on every line of an outputs file (``promptc run``, ``collect``).
ANSWER_KEYS = ("id", "output", "request_sha256")
#: The keys promptc writes on every line of a results file (``run --parse``, ``parse``).
RESULT_KEYS = ("request_id", "item_id", "status")
#: The first columns of the head of ``promptc parse --format table``.
TABLE_HEAD = ("request", "item", "#")


def _holds_own(path: str, writes: Literal["answers", "results"]) -> bool:
    """Whether a file answers (or results) may replace: none there yet, empty, or one
    promptc wrote — its first line one of its answers (results), with the keys promptc
    writes on each, or the head of its table. A spec, a data file (a JSONL file's first line
    is a JSON object too), a CSV or a binary file given by mistake is not. Answers also
    resume from a file whose one line is torn (an interrupted write of the first answer)."""
    try:
        regular = stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        regular = False
    if not regular:
        # None there; or a link, a pipe or a device, which the run's file replaces by its
        # name, never written through (or is refused where it is opened).
        return True
    try:
        with open(path, "rb") as f:
            head = f.read(MAX_HEAD)
    except OSError:  # unreadable: said where it is opened
        return True
    lines = head.split(b"\n")
    first = next((k for k, line in enumerate(lines) if line.strip()), None)
    if first is None:
        return len(head) < MAX_HEAD  # blank (or a megabyte of white space: not promptc's)
    line = lines[first].lstrip(b"\xef\xbb\xbf \t").rstrip(b"\r")
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):
        torn = first == len(lines) - 1 and len(head) < MAX_HEAD  # the last line, no "\n"
        if writes == "answers":
            return torn and line.startswith(b"{")
        return writes == "results" and tuple(line.decode("utf-8", "replace").split()[:3]) == (
            TABLE_HEAD
        )
    keys = ANSWER_KEYS if writes == "answers" else RESULT_KEYS
    return isinstance(data, dict) and all(k in data for k in keys)


#: How much of a file :func:`_holds_own` reads to find its first line.
MAX_HEAD = 1 << 20


def check_placeable(path: Path, what: str, named: bool = False) -> None:
    """Refuses, before anything is sent or paid for, a path the file ``what`` (a run's
    results, collect's answers) cannot be put at: a folder under its name (a link, a pipe or
    a device is replaced whole, never followed), a parent that is no folder, or a folder
    that cannot be written. ``named``: the path is an option's (``what`` names it).

    Raises:
        UsageError: ``not-regular`` (a folder in the build's place of the file),
            ``bad-results-path`` (a path named that is a folder or in none) or
            ``unwritable``, naming the file.
    """
    try:
        is_dir = stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        is_dir = False
    if is_dir and not named:
        raise not_regular(path)
    if is_dir or not path.parent.is_dir():
        where = "is a folder" if is_dir else f"is in no folder ({path.parent})"
        raise UsageError(
            f"{what} {str(path)!r} {where}; expected a file to write the results to, in a "
            "folder that exists",
            location=Location(str(path)),
            code="bad-results-path",
        )
    if not os.access(path.parent, os.W_OK | os.X_OK):
        raise UsageError(
            f"{what} {str(path)!r} cannot be written: the folder {str(path.parent)!r} is not "
            "writable",
            location=Location(str(path)),
            code="unwritable",
        )


def _same_file(a: str, b: str) -> bool:
    """Whether two paths name one file: the same real path, or (both existing) one inode."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def overwrite_error(
    option: str,
    path: str,
    writes: Literal["answers", "results"],
    *,
    others: Sequence[str] = (),
    build: str | None = None,
) -> str | None:
    """Why the file ``path`` that ``option`` names must not be written, or ``None``.

    ``parse -o``, ``run --results`` and ``run -o`` share this one rule: what was paid for
    and the build itself are never written over. Results (``writes="results"``) never go to
    a file named as answers are (``outputs.jsonl``, ``outputs.replaced.jsonl``) nor to one
    of ``others`` (the answers); answers never go to a file named as results are, nor to
    one of ``others`` (the results), nor to ``outputs.replaced.jsonl``, where a rewrite
    moves answers aside. Neither goes to a file (or into a folder) of ``build`` other than
    the one it is meant to be (``outputs.jsonl``, ``results.jsonl``), nor over a file that is
    not promptc's own of its kind (``foreign``: a spec or a data file given by mistake).
    """
    name = os.path.basename(path)
    same = any(_same_file(path, other) for other in others)
    if name == REPLACED_FILE or (writes == "results" and (name == OUTPUTS_FILE or same)):
        key = "answers"
    elif writes == "answers" and (name == RESULTS_FILE or same):
        key = "results"
    else:
        inner = _build_file(path, build)
        # outputs.jsonl and results.jsonl of the build are what these options are meant to
        # write (the wrong one of the two is refused by its name above).
        own = (KEPT_NAMES | {STATE_FILE}) - {OUTPUTS_FILE, RESULTS_FILE}
        if inner is not None and (is_build_file(inner) or inner in own):
            return OVERWRITE_MESSAGES["build"].format(
                option=option, path=path, name=inner, folder=build
            )
        if _holds_own(path, writes):
            return None
        key = "foreign" if writes == "answers" else "foreign-results"
    return OVERWRITE_MESSAGES[key].format(option=option, path=path)


def _build_file(path: str, build: str | None) -> str | None:
    """The name in ``build`` under which ``path`` lies (its first component), or ``None``."""
    if build is None:
        return None
    try:
        inner = os.path.relpath(os.path.realpath(path), os.path.realpath(build))
    except ValueError:  # another drive (Windows): not in the build
        return None
    first = inner.split(os.sep)[0]
    return None if first in (os.pardir, os.curdir) else first


# --------------------------------------------------------------------------------------------
# One line
# --------------------------------------------------------------------------------------------


def output_line(record: Mapping[str, Any]) -> str:
    """One line of ``outputs.jsonl`` (without its ``\\n``): canonical JSON in UTF-8, or, when
    the answer holds text UTF-8 cannot carry (a lone surrogate such as ``\\ud800``, which some
    servers emit for a split emoji), the same JSON with non-ASCII characters escaped — read
    back, it is the very same string, so nothing is lost and nothing crashes."""
    line = canonical_json(record)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return line


def _answer(line: bytes) -> dict[str, Any] | None:
    """The answer record on a line, or ``None`` when the line holds none."""
    try:
        data = json.loads(line)
    except (ValueError, RecursionError):  # ValueError: not JSON, not UTF-8, too many digits
        return None
    is_answer = (
        isinstance(data, dict)
        and isinstance(data.get("id"), str)
        and isinstance(data.get("output"), str)
    )
    return data if is_answer else None


# --------------------------------------------------------------------------------------------
# The file
# --------------------------------------------------------------------------------------------


@dataclass
class Outputs:
    """What an ``outputs.jsonl`` holds.

    Attributes:
        answers: The answer of each request id, in file order: the first of each id, except
            that an answer replaces an empty one (an empty answer is recorded, then asked
            again by the next run).
        unplaced: The lines that are no answer of :attr:`answers` — unreadable, torn (a last
            line without its ``\\n`` that holds no whole answer), or another answer for an
            id — with their line numbers, as they were in the file.
        unterminated: The file does not end with a line break: it is written again before
            anything is appended (an answer appended would join its last line).
    """

    answers: dict[str, dict[str, Any]] = field(default_factory=dict)
    unplaced: list[tuple[int, bytes]] = field(default_factory=list)
    unterminated: bool = False


def read_outputs_file(path: Path) -> Outputs:
    """Everything ``outputs.jsonl`` holds (nothing when it does not exist); changes nothing.

    Raises:
        UsageError: It is no regular file (``not-regular``: a link, a pipe, a device), or
            larger than :data:`MAX_OUTPUTS_BYTES` (``too-large``).
        OSError: It cannot be read.
    """
    try:
        raw = read_bounded(path, MAX_OUTPUTS_BYTES)
    except FileNotFoundError:
        return Outputs()
    if raw is None:
        raise UsageError(
            f"{path.name} is larger than {MAX_OUTPUTS_BYTES} bytes, more than promptc reads "
            "of an outputs file",
            location=Location(str(path)),
            hint="split the build, or give another outputs file with -o",
            code="too-large",
        )
    lines = raw.split(b"\n")
    # After a final "\n" the last piece is b"". A last line without one is a line torn by an
    # interrupted write unless it holds a whole answer (the file saved by a tool that drops
    # the final line break): then it is that answer, as every other line.
    unterminated = bool(lines[-1].strip())
    if not unterminated:
        lines.pop()
    found: dict[str, tuple[int, dict[str, Any]]] = {}
    unplaced: list[tuple[int, bytes]] = []
    for lineno, line in enumerate(lines, 1):
        data = _answer(line)
        if data is None:
            if line.strip():
                unplaced.append((lineno, line))
            continue
        old = found.get(data["id"])
        if old is None:
            found[data["id"]] = (lineno, data)
        elif not old[1]["output"] and data["output"]:
            unplaced.append((old[0], lines[old[0] - 1]))  # the empty answer it replaces
            found[data["id"]] = (lineno, data)
        else:
            unplaced.append((lineno, line))
    answers = {k: data for k, (_, data) in found.items()}
    return Outputs(answers, sorted(unplaced), unterminated)


class OutputsFile:
    """``outputs.jsonl`` as a run keeps it: tidied, appended to.

    Args:
        path: The outputs file.
        note: Where to say what was moved aside.
    """

    def __init__(self, path: Path, note: Callable[[str], None]) -> None:
        self.path = path
        self.note = note
        self._out: io.BufferedIOBase | None = None

    @property
    def aside(self) -> Path:
        """``outputs.replaced.jsonl`` beside the outputs: what is moved out of them."""
        return self.path.with_name(REPLACED_FILE)

    def tidy(
        self,
        found: Outputs | None = None,
        *,
        order: Mapping[str, int] | None = None,
        drop: Collection[str] = (),
    ) -> dict[str, dict[str, Any]]:
        """Rewrites the file with one answer per request id — in ``order`` (ids not in it
        after, by id), else as they are — moving the answers of ``drop`` and every line it
        cannot place to ``outputs.replaced.jsonl`` first; removes a file left with no answer.

        Args:
            found: What the file holds, if just read (:func:`read_outputs_file`).
            order: Request id → its place.
            drop: Request ids whose answers are moved aside.

        Returns:
            The answers kept, by request id.
        """
        if found is None:
            found = read_outputs_file(self.path)
        kept = {k: v for k, v in found.answers.items() if k not in drop}
        moved = [output_line(found.answers[k]).encode() for k in drop if k in found.answers]
        moved += [line for _, line in found.unplaced]
        if moved:
            # Appended there first: a crash in between duplicates an answer, never loses one.
            try:
                with open_regular(self.aside, "ab") as f:
                    f.writelines(line + b"\n" for line in moved)
            except OSError as e:  # a full disk: said with the file being written
                raise OSError(e.errno, e.strerror or str(e), str(self.aside)) from None
        if found.unplaced:
            self.note(
                UNPLACED_NOTE.format(
                    count=len(found.unplaced),
                    name=self.path.name,
                    aside=self.aside.name,
                    lines=", ".join(str(n) for n, _ in found.unplaced[:5])
                    + (" …" if len(found.unplaced) > 5 else ""),
                )
            )
        ordered = list(kept.items())
        if order is not None:
            ordered.sort(key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        if not ordered:  # nothing answered: no empty file to mistake for a run's answers
            self.path.unlink(missing_ok=True)
        elif moved or order is not None or found.unterminated:
            write_atomic(self.path, (output_line(v) for _, v in ordered))
        return kept

    @contextlib.contextmanager
    def appending(self) -> Iterator[None]:
        """Opens the file for :meth:`append` until the block ends."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        out = open_regular(self.path, "ab")
        self._out = out
        try:
            yield
        finally:
            self._out = None
            # Closing writes what is left of a line append failed to write (a full disk),
            # and fails as append did: append's error, with the file, is the one said.
            with contextlib.suppress(OSError):
                out.close()

    def append(self, record: Mapping[str, Any]) -> None:
        """Appends one answer, whole, and flushes it: once this returns, a kill loses nothing.

        Blocking, though the run is async: one short line, written before the run counts the
        answer or awaits the next."""
        assert self._out is not None, "append outside appending()"
        try:
            self._out.write(output_line(record).encode("utf-8") + b"\n")
            self._out.flush()
        except OSError as e:  # a full disk: said with the file the answer was for
            raise OSError(e.errno, e.strerror or str(e), str(self.path)) from None


@contextlib.contextmanager
def outputs_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on an outputs file for a run, so that two runs of one build
    do not both send every request. The lock file (``.outputs.jsonl.lock``) is removed when
    the run ends: a build folder keeps no trace of it; nor of an outputs file left empty.

    Raises:
        UsageError: Another process holds the lock (``run-in-progress``), naming its pid.
    """
    path.parent.mkdir(parents=True, exist_ok=True)

    def busy(pid: str) -> UsageError:
        return UsageError(
            f"another promptc run (pid {pid}) is writing {path.name} of this build",
            location=Location(str(path)),
            hint="wait for it to finish (it resumes where it is), or pass -o OTHER.jsonl",
            code="run-in-progress",
        )

    with held_lock(path.with_name(f".{path.name}{LOCK_SUFFIX}"), busy):
        try:
            yield
        finally:
            # Interrupted before any answer, wherever the interrupt landed (a signal handler
            # raises where the run is, even inside another cleanup): no empty file to
            # mistake for a run's answers, removed while the lock keeps other runs out.
            with contextlib.suppress(OSError):
                st = path.lstat()  # a regular file only: never a link, a pipe or a device
                if stat.S_ISREG(st.st_mode) and st.st_size == 0:
                    path.unlink()
