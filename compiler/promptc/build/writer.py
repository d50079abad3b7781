"""Writing a build folder: every file streamed as it is produced, then put in place atomically.

:class:`FolderWriter` is the one writer of a build folder — of ``promptc build``'s and of the
repair build ``promptc collect`` writes. Each file goes to a temporary file in the folder
(``.NAME.tmp``; the requests' own grammars to ``.grammars.tmp/``) and into its sha256 from the
same bytes, so memory does not grow with the number of requests; :meth:`FolderWriter.commit`
then puts them in place by renaming: first the old ``manifest.json`` is removed, then the other
files are renamed over the old ones, and the new manifest comes last. A build interrupted at
any point (even killed) leaves either the previous complete build, or a folder without
``manifest.json`` — never a manifest beside files it does not describe, never a truncated file
under its real name. Without a folder, the files are kept in memory (:func:`promptc.build.assemble`).
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from promptc.build.batches import BATCHES_FILE, BatchLine
from promptc.build.files import Sink, open_regular
from promptc.build.grammars import GRAMMAR_STEM, GRAMMAR_SUFFIXES, REQUEST_GRAMMARS, Grammars
from promptc.build.manifest import MANIFEST_FILE, manifest_text
from promptc.build.requests import RequestFiles
from promptc.build.targets import BuiltRequest, Constraint, GrammarForm, Target
from promptc.build.task_file import ITEMS_FILE, TASK_FILE
from promptc.errors import Location, UsageError

#: Files a build owns in its folder; stale ones from an earlier build are removed.
_OWNED = re.compile(
    r"^(requests\.jsonl|requests-\d{4}\.jsonl|"
    + "|".join(re.escape(n) for n in (BATCHES_FILE, MANIFEST_FILE, TASK_FILE, ITEMS_FILE))
    + "|"
    + re.escape(GRAMMAR_STEM)
    + r"(-\d+)?\.(lark|gbnf|schema\.json|regex|parse\.regex))$"
)
#: A request's own grammar file in ``grammars/``.
_REQUEST_GRAMMAR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(lark|gbnf|schema\.json|regex)$")
#: What the manifest says of a build whose requests have their own grammars.
PER_REQUEST = {
    "folder": REQUEST_GRAMMARS,
    "suffixes": list(GRAMMAR_SUFFIXES),
    "note": "the shared answer files admit the union of every item's choices; "
    "grammars/<request id>.* admit exactly that request's; batches.jsonl lists each "
    "request's own with their sha256 (grammar_files)",
}


#: What else a build folder holds after promptc used it (``run``'s answers, results, the
#: answers it moved aside and its lock, ``collect``'s repair build, ``eval``'s timing): a
#: rebuild keeps them. Anything else in a folder is not promptc's, and it writes no build
#: there (docs/limits.md lists a build folder's contents).
#: The lock a build holds on its folder while it writes (removed when it ends).
BUILD_LOCK = ".build.lock"

KEPT_NAMES = frozenset(
    {
        BUILD_LOCK,  # of a build killed while it wrote: the next one takes it
        "outputs.jsonl",
        "results.jsonl",
        "outputs.replaced.jsonl",
        ".outputs.jsonl.lock",
        "repair",
        "timing.json",
        # promptc run --batch-api's record of its batches and their downloads
        # (promptc.run.outputs.STATE_FILE, batch_api.DOWNLOADS: run sits above build).
        "batch_api.json",
        "batch_api",
        REQUEST_GRAMMARS,
    }
)

#: Why a folder is not taken for a build (``{folder}``, ``{name}``). Tested word for word.
NOT_A_BUILD_FOLDER = (
    "{folder!r} holds {name!r}, which is not a file of a promptc build; promptc writes a "
    "build only into a new or empty folder or over an earlier build"
)
#: Why an input of the build is not overwritten (``{folder}``, ``{name}``, ``{writer}``: the
#: command that writes, ``promptc build`` or ``promptc collect``'s repair build).
INPUT_IN_FOLDER = "{folder!r} holds {name!r}, which this build reads; {writer} would overwrite it"


def is_build_file(name: str) -> bool:
    """Whether a file name is one a build writes (and a rebuild may remove)."""
    return _OWNED.match(name) is not None


def is_request_grammar(name: str) -> bool:
    """Whether a file name inside ``grammars/`` is one of a request's grammar files."""
    return _REQUEST_GRAMMAR.match(name) is not None


def _is_temporary(name: str) -> bool:
    return name.startswith(".") and name.endswith(".tmp")


def check_folder(
    out: Path, inputs: Iterable[str | os.PathLike[str]] = (), writer: str = "promptc build"
) -> None:
    """Refuses a folder to write a build into unless it is new, empty, or holds an earlier
    build (build files, :data:`KEPT_NAMES` and temporary files alone), and unless none of
    ``inputs`` is in it (:func:`check_inputs`).

    Raises:
        UsageError: ``out-not-build``, naming the first file that is not a build's, or
            ``out-holds-input``, naming the input.
    """
    try:
        names = sorted(os.listdir(out))
    except FileNotFoundError:
        return
    except OSError as e:
        raise not_writable(out, e) from None
    check_inputs(out, inputs, writer)
    for name in names:
        # Build files without a manifest are those of a build interrupted while it put its
        # files in place: the next build replaces them (the inputs are checked above).
        if not (_is_temporary(name) or is_build_file(name) or name in KEPT_NAMES):
            raise _not_a_build(out, name)
        if name in (REQUEST_GRAMMARS, f".{REQUEST_GRAMMARS}.tmp"):
            # A rebuild replaces the folder whole: a file of the user's in it (or a link in
            # its place) would stop it halfway, with the manifest already gone.
            where = out / name
            if where.is_symlink() or not where.is_dir():
                raise _not_a_build(out, name)
            for inner in sorted(os.listdir(where)):
                path = where / inner
                if not is_request_grammar(inner) or path.is_symlink() or not path.is_file():
                    raise _not_a_build(out, f"{name}/{inner}")


def _not_a_build(out: Path, name: str) -> UsageError:
    """``out-not-build``: ``name`` (a path inside ``out``) is no file of a build."""
    return UsageError(
        NOT_A_BUILD_FOLDER.format(folder=str(out), name=name),
        location=Location(str(out / name)),
        hint="give a new or empty folder with -o, or move that file away",
        code="out-not-build",
    )


def check_inputs(
    out: Path, inputs: Iterable[str | os.PathLike[str]], writer: str = "promptc build"
) -> None:
    """Refuses a folder to write a build into when one of ``inputs`` (the spec, its data,
    its templates; for a repair build, the build's own manifest) is in it, or in a folder of
    it (``grammars/``): the build would overwrite what it reads. ``writer`` is what the
    message says would overwrite it.

    Raises:
        UsageError: ``out-holds-input``, naming the input.
    """
    here = os.path.join(os.path.realpath(out), "")
    for path in inputs:
        real = os.path.realpath(path)
        if real.startswith(here):
            name = real[len(here) :]
            raise UsageError(
                INPUT_IN_FOLDER.format(folder=str(out), name=name, writer=writer),
                location=Location(str(out)),
                hint="give another folder with -o",
                code="out-holds-input",
            )


class FolderWriter:
    """The files of one build as they are written (see the module's docstring).

    Args:
        folder: The build folder, or ``None`` to keep the files in memory.
        chosen: The build's target: the form of its request lines.
        form: The grammar form its bodies carry (for a target whose bodies carry one).
    """

    def __init__(
        self, folder: Path | None, chosen: Target, form: GrammarForm | None = None
    ) -> None:
        self.folder = folder
        self.target = chosen
        self.form = form
        self.sinks: dict[str, Sink] = {}
        #: The requests' own grammar files (``grammars/<id>.*``) by name, for a build in
        #: memory; on disk, how many were written.
        self.own: dict[str, str] = {}
        self.own_files = 0
        self.messages = 0
        if folder is not None:
            _remove_temporary(folder)  # of an interrupted build
        self.requests = RequestFiles(chosen, self.open, self.rename)
        self.batches = self.open(BATCHES_FILE)

    def _tmp(self, name: str) -> Path | None:
        return self.folder / f".{name}.tmp" if self.folder is not None else None

    def open(self, name: str) -> Sink:
        """A file of the build, written as it is produced."""
        sink = Sink(self._tmp(name))
        self.sinks[name] = sink
        return sink

    def rename(self, old: str, new: str) -> None:
        """The file written as ``old`` is put in place as ``new``."""
        self.sinks[new] = self.sinks.pop(old)

    def drop(self, name: str) -> None:
        """Gives up a file begun."""
        sink = self.sinks.pop(name)
        sink.close()
        if sink.path is not None:
            sink.path.unlink(missing_ok=True)

    def write(self, name: str, text: str) -> None:
        """A whole file of the build."""
        self.write_lines(name, (text,))

    def write_lines(self, name: str, lines: Iterable[str]) -> None:
        """A file of lines (each with its line end), streamed."""
        sink = self.open(name)
        try:
            for line in lines:
                sink.write(line)
        finally:
            sink.close()

    def add(
        self,
        request: BuiltRequest,
        batch: BatchLine,
        constraint: Constraint | None = None,
        own: Mapping[str, str] | None = None,
    ) -> None:
        """One request: its line of ``requests.jsonl`` (in the target's form), its line of
        ``batches.jsonl`` and its own grammar files (``grammars/<id>.*``)."""
        self.requests.write(self.target.line(request, constraint))
        self.batches.write(batch.text() + "\n")
        self.messages += len(request.messages)
        for name, text in (own or {}).items():
            self._own_file(name, text)

    def _own_file(self, name: str, text: str) -> None:
        self.own_files += 1
        if self.folder is None:
            self.own[name] = text
            return
        where = self.folder / f".{REQUEST_GRAMMARS}.tmp"
        if self.own_files == 1:
            where.mkdir()
        with open_regular(where / name.split("/", 1)[1], "xb") as f:
            f.write(text.encode("utf-8"))

    def finish(
        self, manifest: Mapping[str, object], grammars: Grammars, counts: Mapping[str, int]
    ) -> dict[str, Any]:
        """Writes the shared grammar files and ``manifest.json`` (``manifest`` with the
        target, the grammar, the counts and every file's sha256), last; returns the manifest.
        """
        for name, text in grammars.files.items():
            self.write(name, text)
        self.requests.close()
        for sink in self.sinks.values():
            sink.close()
        per_request = {"per_request": PER_REQUEST} if self.own_files else {}
        grammar = {**grammars.manifest(), **per_request}
        whole: dict[str, Any] = {
            **manifest,
            "target": self.target.name,
            **self.target.manifest(self.form),
            "grammar": grammar,
            "counts": {**counts, "requests": self.requests.count, "messages": self.messages},
            "files": {
                name: sink.hexdigest()
                for name, sink in sorted(self.sinks.items())
                if name not in grammars.files
            },
        }
        self.write(MANIFEST_FILE, manifest_text(whole))
        return whole

    def texts(self) -> dict[str, str]:
        """Every file by name (a build in memory), the requests' own grammars included."""
        return {**{name: sink.text() for name, sink in self.sinks.items()}, **self.own}

    def discard(self) -> None:
        """Removes the temporary files (a build that failed, perhaps for a full disk)."""
        for sink in self.sinks.values():
            with contextlib.suppress(OSError):  # what is left unwritten is removed below
                sink.close()
        if self.folder is not None:
            _remove_temporary(self.folder)

    def commit(self) -> None:
        """Puts every file in place, the manifest last (see the module's docstring).

        Raises:
            UsageError: ``out-not-writable``.
        """
        out = self.folder
        assert out is not None
        try:
            manifest_path = out / MANIFEST_FILE
            manifest_path.unlink(missing_ok=True)  # from here on, no manifest until the new one
            for old in out.iterdir():
                if is_build_file(old.name) and old.name not in self.sinks and old.is_file():
                    old.unlink()
            _remove_request_grammars(out)
            for name, sink in sorted(self.sinks.items()):
                if name != MANIFEST_FILE:
                    os.replace(sink.path, out / name)  # type: ignore[arg-type]
            if self.own_files:
                os.replace(out / f".{REQUEST_GRAMMARS}.tmp", out / REQUEST_GRAMMARS)
            os.replace(self.sinks[MANIFEST_FILE].path, manifest_path)  # type: ignore[arg-type]
        except OSError as e:
            raise not_writable(out, e) from None


def not_writable(out: Path, e: OSError) -> UsageError:
    """The error of a build folder that cannot be written, located at the file the system
    named (``task.json`` that is a folder, say) when it named one."""
    # os.replace names the temporary file first and its destination second: the destination
    # is the build's file the user can look at.
    named = e.filename2 if e.filename2 is not None else e.filename
    where = str(named) if named is not None else str(out)
    return UsageError(
        f"cannot write the build to {str(out)!r}: {e.strerror or e}",
        location=Location(where),
        code="out-not-writable",
    )


def _remove_request_grammars(out: Path, folder: str = REQUEST_GRAMMARS) -> None:
    """Removes a build's folder of request grammars (its files, then the folder if that
    leaves it empty; files a user put there stay)."""
    where = out / folder
    if not where.is_dir() or where.is_symlink():
        return
    for old in where.iterdir():
        if _REQUEST_GRAMMAR.match(old.name) and old.is_file() and not old.is_symlink():
            old.unlink()
    try:
        where.rmdir()
    except OSError:
        pass  # not empty: the user's files stay, and the new folder cannot replace it


def _remove_temporary(out: Path) -> None:
    """Removes the temporary files a build writes before renaming them into place."""
    _remove_request_grammars(out, f".{REQUEST_GRAMMARS}.tmp")
    for old in out.iterdir():
        name = old.name
        # Whatever it is (a link or a pipe planted under the name too), not a folder.
        temporary = _is_temporary(name) and (old.is_symlink() or not old.is_dir())
        if temporary and _OWNED.match(name[1:-4]):
            old.unlink(missing_ok=True)
