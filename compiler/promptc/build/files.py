"""How every build file is spelled, and how a build folder's files are read back.

Writing: one JSON spelling — :func:`dumps` for a line of a ``.jsonl`` file (sorted keys,
``", "`` and ``": "`` between, real UTF-8), :func:`document` for a whole JSON file
(``manifest.json``, ``task.json``: the same, indented by two, with a final newline).

Reading: a build folder is input promptc did not necessarily write (a folder from a colleague,
a CI artifact), so its reader takes nothing on trust. A file name found in the folder's own
files (a grammar stem, a request's own grammar) must be a plain name inside the folder
(:func:`inside`); a file is read only up to a bound (:data:`MAX_FILE_BYTES`, and
:data:`MAX_LINE_BYTES` per line of a ``.jsonl`` file); every file is opened, for reading or
writing, as a regular file only (:func:`open_regular`: no symbolic link followed out of the
folder, no FIFO waited on, no device read without end); every failure is a
:class:`~promptc.errors.UsageError` from :data:`MESSAGES`, at its file (and line).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import re
import stat
import sys
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import cast

from promptc.errors import Location, UsageError

if sys.platform != "win32":  # locked where the system can (fcntl is POSIX)
    import fcntl

#: The largest file of a build folder read whole (a manifest, a task file, a grammar).
MAX_FILE_BYTES = 64 * 1024 * 1024
#: The longest line of a build's ``.jsonl`` file that is read (one request, with its prompt).
MAX_LINE_BYTES = 64 * 1024 * 1024
#: A name a build gives a file (``answer-4.gbnf``; ``r0001.gbnf`` in ``grammars/``).
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")

#: Every error a build folder's reader raises, by key: one table, tested word for word.
MESSAGES: dict[str, str] = {
    "not-a-build": "{folder!r} is not a build: it has no {name}",
    "bad-manifest": "cannot read manifest.json: {problem}",
    "no-build-format": "manifest.json names no build format (the build was made by an older "
    "promptc); this promptc reads build format {want}",
    "build-format": "manifest.json has build format {found!r}; this promptc reads build "
    "format {want}",
    "build-modified": "{name} does not match the sha256 that manifest.json lists for it"
    "{unlisted}; the build folder was changed after promptc build",
    "build-crlf": "{name} does not match the sha256 that manifest.json lists for it: its line "
    "ends were turned into CRLF after promptc build (as git does on checkout with "
    "core.autocrlf)",
    "bad-target": "manifest.json names the target {found!r}; expected {known}",
    "too-large": "{name} is larger than {limit} bytes, more than promptc reads of a build file",
    "line-too-long": "this line of {name} is longer than {limit} bytes, more than promptc reads "
    "of a build file",
    "not-utf8": "{name} is not UTF-8 text",
    "outside-build": "{what} {name!r} is not a plain file name inside the build folder",
    "not-regular": "{name} is {kind}, not a regular file; promptc reads and writes regular "
    "files only, never through a link, a pipe or a device",
    "bad-requests-line": "{problem}",
    "bad-batches-line": "{problem}",
    "unreadable": "cannot read {name}: {problem}",
    "bad-task-file": "cannot read {name}: {problem}",
}
#: The code of a message whose key is not its code: a build of another format, or of none,
#: is one thing to a tool (rebuild it).
CODES: dict[str, str] = {
    "no-build-format": "build-format",
    "line-too-long": "too-large",
    "build-crlf": "build-modified",
}
HINTS: dict[str, str] = {
    "not-a-build": "give a folder written by promptc build SPEC -o DIR",
    "no-build-format": "rebuild it with promptc build SPEC -o DIR",
    "build-format": "rebuild it with promptc build SPEC -o DIR",
    "build-modified": "rebuild it with promptc build SPEC -o DIR",
    "build-crlf": "keep the build's bytes as written: add '{folder}/** -text' to .gitattributes "
    "and check the folder out again",
    "bad-task-file": "rebuild it with promptc build SPEC -o DIR",
    "not-regular": "put a regular file in its place: cp -L copies what a link points to, and "
    "promptc build SPEC -o DIR remakes a build folder",
}


def build_error(key: str, location: Location, **kw: object) -> UsageError:
    """A :class:`UsageError` with the message of ``key`` from :data:`MESSAGES`, its hint and
    code (``key``, or :data:`CODES`'s for it)."""
    return UsageError(
        MESSAGES[key].format(**kw),
        location=location,
        hint=HINTS[key].format(**kw) if key in HINTS else None,
        code=CODES.get(key, key),
    )


# --------------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------------


def json_default(value: object) -> object:
    """What JSON has no type for: exact decimals as text, sets sorted, numpy values as lists."""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays from similarity methods
        return value.tolist()
    return str(value)


# One encoder for every line: json.dumps with options makes a new one per call, and a build
# writes two lines per request and one per item.
_LINE = json.JSONEncoder(
    sort_keys=True, ensure_ascii=False, separators=(", ", ": "), default=json_default
)
_IN_ORDER = json.JSONEncoder(ensure_ascii=False, separators=(", ", ": "), default=json_default)


def dumps(value: object, keep: object = None) -> str:
    """One line of a build's ``.jsonl`` file (without its line end): keys sorted, but for
    those of ``keep`` (an object inside ``value``), which stays as it is, whole. A JSON
    Schema's properties are kept in their order so: constrained decoders write them in
    schema order, and a reasoning must come before the answer it leads to."""
    if keep is None:
        return _LINE.encode(value)
    return _IN_ORDER.encode(_sorted(value, keep))


def _sorted(value: object, keep: object) -> object:
    """``value`` with its mappings' keys sorted, all the way down, but for ``keep``."""
    if value is keep:
        return value
    if isinstance(value, Mapping):
        return {k: _sorted(value[k], keep) for k in sorted(value)}
    if isinstance(value, list | tuple):
        return [_sorted(v, keep) for v in value]
    return value


def document(value: object) -> str:
    """A whole JSON file of a build: sorted keys, indented by two, a final newline."""
    return (
        json.dumps(
            value,
            sort_keys=True,
            ensure_ascii=False,
            indent=2,
            separators=(",", ": "),
            default=json_default,
        )
        + "\n"
    )


def relative(path: str, start: str) -> str:
    """``path`` relative to ``start`` with ``/`` separators, so that a build is the same on
    every machine, whatever the current folder."""
    try:
        rel = os.path.relpath(path, start)
    except ValueError:  # another drive on Windows: nothing relative to say
        rel = os.path.basename(path)
    return rel.replace(os.sep, "/")


# --------------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------------


def inside(folder: Path, name: str, what: str) -> Path:
    """``folder/name`` for a name taken from the folder's own files: one plain name, or a
    plain folder name and a plain file name (``grammars/r0001.gbnf``); neither a symbolic link.

    Raises:
        UsageError: ``outside-build``: ``..``, an absolute path, another character, or a link.
    """
    parts = name.split("/")
    path = folder.joinpath(*parts)
    if (
        not 1 <= len(parts) <= 2
        or not all(PLAIN_NAME.fullmatch(p) for p in parts)
        or any((folder.joinpath(*parts[: k + 1])).is_symlink() for k in range(len(parts)))
    ):
        raise build_error("outside-build", Location(str(folder)), what=what, name=name)
    return path


#: How each mode of :func:`open_regular` opens: never through a symbolic link (``O_NOFOLLOW``:
#: a link planted in a shared build folder would carry the read or the write outside it), and
#: without waiting for a writer (``O_NONBLOCK``: a FIFO would hang the open).
_MODES: dict[str, int] = {
    "rb": os.O_RDONLY,
    "ab": os.O_WRONLY | os.O_APPEND | os.O_CREAT,
    "a+b": os.O_RDWR | os.O_APPEND | os.O_CREAT,
    "wb": os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
    "xb": os.O_WRONLY | os.O_CREAT | os.O_EXCL,
}
_NOT_FOLLOWED = getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)


def _kind(path: Path) -> str:
    """What a path that is no regular file is, in words."""
    try:
        mode = os.lstat(path).st_mode
    except OSError:
        return "not a regular file"
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def not_regular(path: Path) -> UsageError:
    """``not-regular``: ``path`` is a link, a pipe, a device or a folder."""
    return build_error("not-regular", Location(str(path)), name=path.name, kind=_kind(path))


@contextlib.contextmanager
def held_lock(lock_path: Path, busy: Callable[[str], UsageError]) -> Iterator[None]:
    """Holds an exclusive lock file while the block runs (a run's answers, a build's folder:
    two processes writing them at once would each undo the other), then removes it, while
    still held: a folder keeps no trace of it. The holder's pid is written in it.

    Raises:
        UsageError: ``busy(pid)``: another process holds the lock.
    """
    f = _locked(lock_path, busy)
    try:
        # The pid only tells another process who holds the lock: written unbuffered, and a
        # full disk leaves it unsaid rather than stopping the work before it starts.
        with contextlib.suppress(OSError):
            os.ftruncate(f.fileno(), 0)
            os.write(f.fileno(), f"{os.getpid()}\n".encode())
        yield
    finally:
        with contextlib.suppress(OSError):
            lock_path.unlink()  # while locked: no other process holds this file now
        f.close()  # releases the lock


def _locked(lock_path: Path, busy: Callable[[str], UsageError]) -> io.BufferedIOBase:
    """The lock file, opened and locked. A holder that ends removes it (while it holds the
    lock): a file opened before that is no longer the one at ``lock_path``, so it is opened
    again until the file locked is the one there."""
    while True:
        f = open_regular(lock_path, "a+b")
        try:
            if sys.platform != "win32":  # elsewhere nothing is locked
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            f.seek(0)
            pid = f.read(64).decode("utf-8", "replace").strip() or "?"
            f.close()
            raise busy(pid) from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(f.fileno()).st_ino:
                return f
        except FileNotFoundError:
            pass
        f.close()


def open_regular(path: Path, mode: str = "rb") -> io.BufferedIOBase:
    """Opens a regular file (``mode``: ``rb``, ``ab``, ``a+b``, ``wb`` or ``xb``), never a
    symbolic link, a pipe or a device — the one way promptc opens a file of a build folder.

    Raises:
        FileNotFoundError: ``rb`` of a file that does not exist.
        OSError: It cannot be opened (no permission, a full or read-only disk).
        UsageError: ``not-regular``.
    """
    try:
        fd = os.open(path, _MODES[mode] | _NOT_FOLLOWED | getattr(os, "O_CLOEXEC", 0), 0o666)
    except OSError as e:
        # ELOOP: the last part is a link (O_NOFOLLOW); ENXIO: a FIFO with no reader;
        # EISDIR: a folder opened for writing.
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.EMLINK):
            raise not_regular(path) from None
        raise
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise not_regular(path)
        if _NOT_FOLLOWED and hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return cast(io.BufferedIOBase, os.fdopen(fd, mode))
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Path, limit: int) -> bytes | None:
    """A regular file's bytes (:func:`open_regular`), or ``None`` when it holds more than
    ``limit``: its size is asked first, as ``read(limit + 1)`` would allocate that much.

    Raises:
        FileNotFoundError: It does not exist.
        OSError: It cannot be read.
        UsageError: ``not-regular``.
    """
    with open_regular(path) as f:
        if os.fstat(f.fileno()).st_size > limit:
            return None
        data = f.read()
    return data if len(data) <= limit else None


def read_text(path: Path) -> str:
    """A whole file of a build folder, at most :data:`MAX_FILE_BYTES` bytes of UTF-8.

    Raises:
        OSError: It cannot be opened or read.
        UsageError: ``too-large``, ``not-utf8`` or ``not-regular``.
    """
    limit = MAX_FILE_BYTES
    data = read_bounded(path, limit)
    if data is None:
        raise build_error("too-large", Location(str(path)), name=path.name, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise build_error("not-utf8", Location(str(path)), name=path.name) from None


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text without its line end) of each non-blank line of a ``.jsonl`` file.

    Raises:
        OSError: It cannot be opened or read.
        UsageError: A line longer than :data:`MAX_LINE_BYTES` (``too-large``, at its line),
            bytes that are not UTF-8 (``not-utf8``), or no regular file (``not-regular``).
    """
    with open_regular(path) as f:
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                where = Location(str(path), lineno, 1)
                raise build_error("line-too-long", where, name=path.name, limit=MAX_LINE_BYTES)
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError:
                where = Location(str(path), lineno, 1)
                raise build_error("not-utf8", where, name=path.name) from None
            if text.strip():
                yield lineno, text


# --------------------------------------------------------------------------------------------
# Writing a file as it is produced
# --------------------------------------------------------------------------------------------

#: Bytes of a file's text gathered before they go to the file and its sha256 at once: a
#: 200k-item build spends about 8% more CPU writing and hashing line by line (measured).
BUFFER_BYTES = 1 << 20


class Sink:
    """One file of a build being produced: its text goes to a temporary file (or, for a
    build made in memory, to a list) and into its sha256, from the same bytes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sha = hashlib.sha256()
        self.parts: list[str] | None = None if path is not None else []
        self.file: io.BufferedIOBase | None = None
        if path is not None:
            self.file = open_regular(path, "wb")
        self.pending: list[bytes] = []
        self.size = 0
        #: Bytes written so far.
        self.written = 0

    def write(self, text: str) -> int:
        """Writes ``text``; returns its size in bytes."""
        data = text.encode("utf-8")
        if self.parts is not None:
            self.parts.append(text)
        self.pending.append(data)
        self.size += len(data)
        self.written += len(data)
        if self.size >= BUFFER_BYTES:
            self.flush()
        return len(data)

    def flush(self) -> None:
        """The bytes gathered go into the sha256 (one update per buffer, not per line: the
        same digest) and to the file."""
        if self.pending:
            chunk = b"".join(self.pending)
            self.sha.update(chunk)
            if self.file is not None:
                self.file.write(chunk)
            self.pending.clear()
            self.size = 0

    def close(self) -> None:
        if self.file is not None and self.file.closed:
            return  # closed already: a close that failed (a full disk), then the discard
        try:
            self.flush()
        finally:
            if self.file is not None:
                self.file.close()

    def text(self) -> str:
        """The whole text (a sink in memory)."""
        assert self.parts is not None
        return "".join(self.parts)

    def hexdigest(self) -> str:
        self.flush()
        return self.sha.hexdigest()
