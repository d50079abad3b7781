"""Text primitives every stage shares, each defined once.

- Positions in a text: :class:`Position`, :class:`LineTable` (offset → line:col, built on first
  use) and :class:`Span` (a stretch of a text, positions worked out when read).
- Words for messages: :func:`excerpt` (what was found at an offset), :func:`describe` (a value
  as a message names it), :func:`default_label` (an input's label from its name).
- Canonical text: :func:`canonical_json` (the one spelling that is hashed), :func:`decimal_text`
  (a Decimal as an exact number without exponent), :func:`sha256_text`, :func:`sha256_hasher`.
- Files: :func:`write_atomic` (a file replaced whole or not at all), :func:`write_output` (a
  file the user named: a pipe or ``/dev/null`` written into) and :func:`cache_dir` (where
  promptc keeps its caches).

This module imports nothing of promptc, so that every stage may use it.
"""

from __future__ import annotations

import errno
import functools
import gc
import hashlib
import io
import json
import os
import re
import stat
import tempfile
import unicodedata
from bisect import bisect_right
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol
from urllib.parse import urlsplit, urlunsplit

#: Line ends as editors count them: ``\n``, ``\r\n`` and a lone ``\r``.
EDITOR_BREAKS = r"\r\n|\r|\n"
#: What YAML 1.1 (and so libyaml's line numbers) also ends a line at, and editors do not:
#: NEL, LS and PS.
YAML_ONLY_BREAKS = re.compile("[\x85\u2028\u2029]")


@functools.lru_cache(maxsize=4)
def has_yaml_only_breaks(text: str) -> bool:
    """Whether ``text`` holds a line end of YAML 1.1 alone (:data:`YAML_ONLY_BREAKS`); asked
    once per text, not once per YAML node (a search of a 300 KB spec for each of its 60,000
    nodes took 270 s)."""
    return YAML_ONLY_BREAKS.search(text) is not None


#: The environment variable that moves every cache of promptc.
CACHE_ENV = "PROMPTC_CACHE_DIR"


class Position(NamedTuple):
    """A place in a text: 1-based line and column (code points), 0-based offset."""

    line: int
    col: int
    offset: int

    def __str__(self) -> str:
        return f"{self.line}:{self.col}"


class LineTable:
    """Offset → :class:`Position` in one text; the table of line starts is built on first use.

    Lines end as an editor ends them (:data:`EDITOR_BREAKS`).
    """

    __slots__ = ("_starts", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._starts: list[int] | None = None

    @property
    def starts(self) -> list[int]:
        """The offset at which each line starts (``starts[0] == 0``)."""
        starts = self._starts
        if starts is None:
            text = self.text
            if "\r" not in text:
                # The common case, about three times faster than the general pattern.
                starts = [0]
                find = text.find
                i = find("\n")
                while i >= 0:
                    starts.append(i + 1)
                    i = find("\n", i + 1)
            else:
                starts = [0] + [m.end() for m in re.finditer(EDITOR_BREAKS, text)]
            self._starts = starts
        return starts

    def position(self, offset: int) -> Position:
        """The line:col of ``offset`` (an offset past the end is on the last line)."""
        starts = self.starts
        line = bisect_right(starts, offset)
        return Position(line, offset - starts[line - 1] + 1, offset)

    def span(self, start: int, end: int) -> Span:
        """The :class:`Span` from ``start`` to ``end`` in this text."""
        return Span(start, end, self)


@functools.lru_cache(maxsize=4)
def lines_of(text: str) -> LineTable:
    """The line table of ``text``, kept for the few texts in use (a spec and its bases)."""
    return LineTable(text)


class Span(NamedTuple):
    """A stretch of a text: ``start_offset`` is its first character, ``end_offset`` the offset
    just after its last one, in the text of ``lines``.

    Spans hold offsets; lines and columns are worked out when read (from a line table shared by
    every span of the text), so that code making many spans does not pay for positions nobody
    reads. Two spans are equal when their offsets are. A span is a tuple underneath: the parser
    makes several per item, and a tuple is the cheapest immutable object to make.
    """

    start_offset: int
    end_offset: int
    lines: LineTable

    @property
    def start(self) -> Position:
        """Where the span starts."""
        return self[2].position(self[0])

    @property
    def end(self) -> Position:
        """Where the span ends (just after its last character)."""
        return self[2].position(self[1])

    def text(self) -> str:
        """The spanned text."""
        return self[2].text[self[0] : self[1]]

    def to_dict(self) -> dict[str, dict[str, int]]:
        """``{"start": {"line", "col", "offset"}, "end": {…}}``: JSON-ready."""
        s, e = self.start, self.end
        return {
            "start": {"line": s.line, "col": s.col, "offset": s.offset},
            "end": {"line": e.line, "col": e.col, "offset": e.offset},
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Span):
            return NotImplemented
        return self[0] == other[0] and self[1] == other[1]

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    def __hash__(self) -> int:
        return hash((self[0], self[1]))

    def __repr__(self) -> str:
        return f"Span({self.start_offset}, {self.end_offset}: {self})"

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"


# ---------------------------------------------------------------- words for messages


_VISIBLE = re.compile(r"\S")


def excerpt(
    text: str,
    offset: int,
    limit: int = 40,
    *,
    end: str = "end of the answer",
    quote: bool = True,
    stop: int | None = None,
) -> str:
    """What is found at ``offset``, for messages: the rest of its line, abbreviated.

    Reads only up to the first visible character and ``limit`` more, never the rest of the
    text: recovery asks this once per answer of an output that may hold 100,000 of them.

    Args:
        text: The text.
        offset: Where to look.
        limit: At most this many characters are shown, ``…`` included.
        end: What to say when nothing but white space is left.
        quote: Whether the excerpt is shown quoted (``'abc'``), as messages quote what was
            found, or bare, as a result's ``found`` field holds it.
        stop: Where the text ends for this excerpt (``text[:stop]``, without copying it).
    """
    stop_at = len(text) if stop is None else stop
    visible = _VISIBLE.search(text, offset, stop_at)
    if visible is None:
        return end
    if text.find("\n", offset, visible.start()) >= 0:
        return "a line break"
    line = text[offset : min(stop_at, offset + limit + 1)].split("\n", 1)[0]
    shown = line if len(line) <= limit else line[: limit - 1] + "…"
    return repr(shown) if quote else shown


#: Control characters, escaped by :func:`printable`: C0 but tab and line feed, DEL, C1, and
#: the bidirectional controls, which make a terminal show text in another order than it is
#: (U+202E turns ``positive`` written after it around).
_CONTROL = (
    {c: f"\\x{c:02x}" for c in (*range(0x09), *range(0x0B, 0x20), 0x7F)}
    | {
        c: f"\\u{c:04x}"
        for c in (*range(0x80, 0xA0), 0x61C, 0x200E, 0x200F, *range(0x202A, 0x202F))
    }
    | {c: f"\\u{c:04x}" for c in range(0x2066, 0x206A)}
)


def printable(text: str) -> str:
    """``text`` with its control characters written as escapes (``\\x1b``), for a terminal:
    ids, inputs and a server's words reach it in messages and tables, and an escape sequence
    among them could retitle, clear or recolour the user's terminal."""
    return text.translate(_CONTROL)


def public_url(url: str) -> str:
    """The URL without user name, password, query or fragment: what messages, summaries and
    caches may say of an endpoint (nothing secret is shown or recorded)."""
    if url_problem(url) is not None:  # not a URL: shown without what a user part may hold
        return re.sub(r"//[^/@]*@", "//", url).split("?", 1)[0].split("#", 1)[0]
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def url_problem(url: str) -> str | None:
    """What keeps ``url`` from being an endpoint's URL (``http://`` or ``https://``, a host, a
    port from 1 to 65535), in words; ``None`` if nothing does."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:  # an unclosed [IPv6 bracket, a port that is no number or too large
        return str(e).lower()
    if parts.scheme not in ("http", "https"):
        return "expected a URL starting http:// or https://"
    if not parts.hostname:
        return "it names no host"
    if port == 0:
        return "port 0 is no port to send to"
    return None


def describe(value: object, *, show: bool = True) -> str:
    """A value as messages name it: ``a string 'abc'``, ``an integer 5``, ``a mapping``.

    Args:
        value: A value read from YAML or JSON.
        show: Whether scalars show their value (``a string 'abc'``, abbreviated past 40
            characters) or only their kind (``a string``), as messages about a document's
            structure want.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean {'true' if value else 'false'}" if show else "a boolean"
    if isinstance(value, (int, Decimal)):
        if not show:
            return "a number"
        # Past Python's 4,300-digit limit str() of an int raises: such a number (read as a
        # Decimal by json_number) is named by its first digits and its length.
        text = str(value)
        shown = text if len(text) <= 40 else f"{text[:20]}… ({len(text)} digits)"
        return f"an integer {shown}" if isinstance(value, int) else f"a number {shown}"
    if isinstance(value, float):
        return f"a number {value!r}" if show else "a number"
    if isinstance(value, str):
        if not show:
            return "a string"
        shown = value if len(value) <= 40 else value[:37] + "…"
        return f"a string {shown!r}"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a mapping"


def json_int(text: str) -> int | Decimal:
    """A JSON integer as ``json.loads(..., parse_int=json_int)`` reads it: an int, or past
    Python's 4,300-digit limit for int conversion a Decimal, so that the line holding it (an
    answer, with its usage) is still read and the odd number is said where it is used."""
    return int(text) if len(text) <= 4000 else Decimal(text)


def or_list(words: Sequence[str]) -> str:
    """``["a", "b", "c"]`` → ``"a, b or c"``: the alternatives a message names."""
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " or " + words[-1]


def default_label(name: str) -> str:
    """How an input is labelled without ``label``: ``passage_text`` → ``Passage text``."""
    words = name.replace("_", " ").replace("-", " ").strip() or name
    return words[:1].upper() + words[1:]


# ---------------------------------------------------------------- canonical text


def canonical_json(value: object) -> str:
    """Sorted keys, no spaces, real UTF-8: the one spelling of JSON that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def decimal_text(d: Decimal) -> str:
    """A Decimal as an exact number without exponent or trailing zeros: ``7.50`` → ``7.5``.

    Infinities and NaN (which no answer reads as) are written as JSON strings.
    """
    if not d.is_finite():
        return json.dumps(str(d))
    text = format(d, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def sha256_text(text: str) -> str:
    """The hex sha256 of ``text``'s UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class Hasher(Protocol):
    """What a file reader feeds its bytes to: ``hashlib.sha256()``, or :class:`NoDigest`."""

    def update(self, data: bytes, /) -> None: ...

    def hexdigest(self) -> str: ...


class NoDigest:
    """A hasher that takes the bytes and keeps nothing: its digest is ``""``."""

    def update(self, data: bytes, /) -> None:
        """Ignores ``data``."""

    def hexdigest(self) -> str:
        """``""``: nothing was digested."""
        return ""


def sha256_hasher(enabled: bool = True) -> Hasher:
    """A new sha256 hasher, or (``enabled=False``) a :class:`NoDigest`: ``promptc check``
    names no digest, and reads its files (a data file may be hundreds of megabytes) without
    hashing them."""
    if not enabled:
        return NoDigest()
    return hashlib.sha256()


# ---------------------------------------------------------------- files


def write_output(path: str | os.PathLike[str], lines: Iterable[str] | bytes) -> None:
    """Writes a file the user named (``-o FILE``, ``--results FILE``).

    A named pipe or a character device (``/dev/null``, ``/dev/stdout``, ``/dev/tty``) is
    written into, as any shell tool writes into it: a rename would put a regular file in its
    place. A link is followed only where the system keeps its own (``/dev/stdout``,
    ``/dev/fd/N``). Anything else is written by :func:`write_atomic` (a regular file whole or
    not at all, a link replaced); a block device or a socket is refused.

    Raises:
        OSError: The file cannot be written (the error names it).
    """
    if not os.fspath(path):
        raise OSError(errno.EINVAL, "an empty path names no file", "")
    target = Path(path)
    followed = False
    try:
        mode = os.lstat(target).st_mode
        if stat.S_ISLNK(mode) and _system_link(target):
            mode, followed = os.stat(target).st_mode, True
    except FileNotFoundError:
        mode = stat.S_IFREG
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode) or (followed and stat.S_ISREG(mode)):
        # (``/dev/stdout`` redirected to a file is that file, not a link to replace)
        try:
            with open(target, "wb") as f:
                _write(f, lines)
        except OSError as e:
            raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    elif stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise OSError(errno.EINVAL, "not a regular file, a pipe or a character device", str(target))
    else:
        write_atomic(target, lines)


def write_atomic(path: str | os.PathLike[str], lines: Iterable[str] | bytes) -> None:
    """Writes a file whole or not at all: to a temporary file beside it, then renamed over
    whatever stands at ``path`` (a link, a pipe planted in a build folder: replaced, never
    followed or written into).

    Args:
        path: The file.
        lines: Its lines, each written with a ``\\n`` after it (or its bytes, as they are:
            an image).

    Raises:
        OSError: The file cannot be written (the error names it).
    """
    write_all({Path(path): lines})


def write_all(files: Mapping[Path, Iterable[str] | bytes]) -> None:
    """Writes several files as :func:`write_atomic` writes one, all or none: each is written
    to its temporary file first, and they are renamed into place only once every one is
    written. A full disk halfway leaves the files as they were, never some of a new set
    beside the rest of an old one (a report whose pages disagree).

    Raises:
        OSError: A file cannot be written (the error names it); none has been replaced.
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, lines in files.items():
            staged.append((_staged(target, lines), target))
        for tmp, target in staged:
            try:
                os.replace(tmp, target)
            except OSError as e:
                raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    finally:
        for tmp, _ in staged:
            tmp.unlink(missing_ok=True)


def _staged(target: Path, lines: Iterable[str] | bytes) -> Path:
    """A new temporary file beside ``target`` holding ``lines``, with the mode a new file
    gets."""
    # mkstemp: a new file of its own (O_EXCL, a name no one could plant a link under), so
    # that a link in a shared folder never carries the write elsewhere; the rename then
    # replaces a link at ``path`` itself, never the file it points to.
    try:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except OSError as e:
        raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    tmp = Path(name)
    try:
        with open(fd, "wb") as f:
            _write(f, lines)
        os.chmod(tmp, 0o666 & ~_umask())
    except OSError as e:
        tmp.unlink(missing_ok=True)
        # A write's error names no file (a full disk): this one names the file it was for.
        raise OSError(e.errno, e.strerror or str(e), str(target)) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp


def _write(f: BinaryIO, lines: Iterable[str] | bytes) -> None:
    """Lines as UTF-8 text, each ended by ``\\n``; bytes as they are."""
    if isinstance(lines, bytes):
        f.write(lines)
        return
    # A lone surrogate (text UTF-8 cannot carry, e.g. in a model's answer) is written as its
    # JSON escape \udXXX, which a JSON reader turns back into the same string.
    text = io.TextIOWrapper(f, encoding="utf-8", errors="backslashreplace", newline="\n")
    text.writelines(line + "\n" for line in lines)
    text.flush()
    text.detach()  # the file stays the caller's to close


def _system_link(link: Path) -> bool:
    """A link the system keeps (``/dev/stdout``, ``/dev/fd/1``), not one anyone could plant."""
    folder = os.path.realpath(link.parent)
    return folder == "/dev" or re.fullmatch(r"/proc/(self|\d+)/fd", folder) is not None


def _umask() -> int:
    """The process's umask (mkstemp makes files readable by their owner alone)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """Where promptc keeps its caches: ``$PROMPTC_CACHE_DIR``, else ``$XDG_CACHE_HOME/promptc``,
    else ``~/.cache/promptc`` (``~`` expanded in each)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "promptc"


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pauses the cyclic garbage collector: rendering allocates many small objects and no
    cycles. Measured on a build of 1,000,000 items (auto-demo, batch 8, gc.callbacks timing
    the collector): 7,269 collections, 54 of them full, took 2.85 s of its 35 s of CPU
    without the pause; 0.04 s with it (``bench/bench_scale.py`` sizes). Reading the data is
    not paused: a check of the same million items spends 0.04 s in the collector."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


# --------------------------------------------------------------------------------------------
# Lookalikes: the characters the parser reads as others (promptc.parse.normalise)
# --------------------------------------------------------------------------------------------

#: The Unicode spaces that read as a space (no-break, en, em, thin, ideographic …).
UNICODE_SPACES = (
    "\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a"
    "\u202f\u205f\u3000"
)

INVISIBLE_CHARS = "\u200b\u200c\u200d\u2060\ufeff\u00ad"

#: The characters normalising removes: zero-width spaces and joiners, the word joiner, a BOM
#: and the soft hyphen.
INVISIBLE = frozenset(INVISIBLE_CHARS)


_EXTRA_MAP = {
    "\u3010": "[",
    "\u3011": "]",
    "\ufe55": ":",
    "\u2236": ":",
    "\u2212": "-",
    # Unicode's line and paragraph separators and NEL end a line as \n does (str.splitlines
    # agrees): an answer followed by one ends there.
    "\u2028": "\n",
    "\u2029": "\n",
    "\x85": "\n",
}


SPACE = " \t\n\f\v"  # white space of the normalised text (\r is gone)


EDGE_NOISE = " \t\n\r\f\v" + INVISIBLE_CHARS


#: The one-to-one lookalikes, as a ``str.translate`` table: each becomes one ASCII character,
#: so that every offset of the normalised text is the same offset in the original.
ONE_TO_ONE: dict[int, str] = {
    **{code: chr(code - 0xFEE0) for code in range(0xFF01, 0xFF5F)},  # full-width ASCII
    **{ord(c): " " for c in UNICODE_SPACES},
    **{ord(c): rep for c, rep in _EXTRA_MAP.items()},
}


def read_as(text: str) -> str:
    """``text`` as the parser reads it (its lookalikes replaced, its invisible characters
    removed): a marker the model is told to write must read as itself."""
    return "".join(ch for ch in text.translate(ONE_TO_ONE) if ch not in INVISIBLE)


def unnameable(word: str) -> bool:
    """Whether a choice or alias holds what no answer line can carry as written: a control
    character (a NUL, a tab, a line break) or white space other than single spaces between
    words (an answer's white space is read as it is written, one space)."""
    return word != " ".join(word.split()) or any(unicodedata.category(x) == "Cc" for x in word)


def breaks_line(name: str) -> bool:
    """Whether a name (a spec's ``name``, which heads grammar files and constraints) holds a
    line break or a control character."""
    return any(unicodedata.category(ch) in ("Cc", "Zl", "Zp") for ch in name)


def recorded_path(path: str, spec_dir: str) -> str:
    """How a build names the file at ``path``: relative to the spec's folder, with ``/``
    separators, so that the build names no machine. A file outside the git repository the
    spec's folder lies in (outside the spec's folder, where it lies in none) is named by its
    file name alone: the climb from the spec to it depends on where each checkout was cloned,
    and would make two checkouts' builds of the same spec and data differ. The manifest's
    sha256 still says which data it was."""
    try:
        rel = os.path.relpath(path, spec_dir)
    except ValueError:  # another drive on Windows
        return os.path.basename(path)
    if rel == os.pardir or rel.startswith(os.pardir + os.sep):
        root = _repository_root(spec_dir)
        if root is None or os.path.relpath(path, root).startswith(os.pardir):
            return os.path.basename(path)
    return rel.replace(os.sep, "/")


def _repository_root(folder: str) -> str | None:
    """The nearest folder at or above ``folder`` that holds a ``.git`` (a folder, or the file
    of a worktree or submodule), or ``None``."""
    while True:
        if os.path.lexists(os.path.join(folder, ".git")):
            return folder
        parent = os.path.dirname(folder)
        if parent == folder:
            return None
        folder = parent
