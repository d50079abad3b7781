"""The one exception tree of promptc.

Every error a user can cause is a :class:`PromptcError` that knows *where* it happened (a
:class:`Location`: file, 1-based line and column, or an item id and a position in a model's
output), *what* was expected, and, where it can, how to fix it. Each pipeline stage raises its
own subclass, so callers can tell a bad spec from a bad template from a bad model output.

Stages that can find many problems at once (validation above all) collect them in an
:class:`ErrorCollector` and raise them together as :class:`PromptcErrors`; the caller chooses
between stopping at the first error and collecting up to ``max_errors``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, order=True)
class Location:
    """A position in a source file. ``line`` and ``col`` are 1-based; 0 means unknown.

    Locations order by file, then line, then column.
    """

    file: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        if self.col <= 0:
            return f"{self.file}:{self.line}"
        return f"{self.file}:{self.line}:{self.col}"


class PromptcError(Exception):
    """Base of every error promptc reports to a user.

    Args:
        message: What is wrong and what was expected, as one sentence without a trailing period.
        location: Where it is wrong, if known.
        path: The key path inside the spec (``("strategy", "batch_size")``) or other document.
        hint: A suggested fix, printed after the message.
        code: A stable machine-readable identifier (``"unknown-key"``) for tools and tests.
    """

    stage = "promptc"

    def __init__(
        self,
        message: str,
        *,
        location: Location | None = None,
        path: Sequence[str | int] = (),
        hint: str | None = None,
        code: str = "error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.location = location
        self.path = tuple(path)
        self.hint = hint
        self.code = code

    @property
    def key_path(self) -> str:
        """The key path as written by users: ``strategy.selection.seed``, ``demos[2].answer``."""
        return format_path(self.path)

    def format(self) -> str:
        """One line, ``file:line:col: key.path: message (hint)``, as printed by the CLI."""
        parts = []
        if self.location is not None:
            parts.append(f"{self.location}: ")
        if self.path:
            parts.append(f"{self.key_path}: ")
        parts.append(self.message)
        if self.hint:
            parts.append(f" ({self.hint})")
        return one_line("".join(parts))

    def to_dict(self) -> dict[str, object]:
        """The diagnostic as JSON-ready data, for ``--format json``."""
        loc = self.location
        return {
            "stage": self.stage,
            "code": self.code,
            "file": loc.file if loc else None,
            "line": loc.line if loc else None,
            "col": loc.col if loc else None,
            "path": self.key_path or None,
            "message": self.message,
            "hint": self.hint,
        }

    def __str__(self) -> str:
        return self.format()


class LoadError(PromptcError):
    """The spec (or a file it extends) cannot be read or is not well-formed, safe YAML."""

    stage = "load"


class ValidationError(PromptcError):
    """The spec is well-formed YAML but breaks the schema or a semantic rule."""

    stage = "validate"


class DataError(PromptcError):
    """The data file named by ``data.path`` is missing, unreadable or lacks mapped fields."""

    stage = "data"


class TemplateError(PromptcError):
    """A Jinja template is malformed, uses an undeclared variable, or tries to escape its sandbox."""

    stage = "template"


class SelectionError(PromptcError):
    """Batch selection failed (e.g. a similarity method without its optional dependency)."""

    stage = "select"


class GrammarError(PromptcError):
    """The answer format cannot be turned into a grammar."""

    stage = "grammar"


class OutputParseError(PromptcError):
    """A model's output could not be parsed (strict mode) or its input file is malformed.

    Args:
        message: As for :class:`PromptcError`.
        offset: Where in the output the grammar stopped (0-based), when known.
        expected: What would have been accepted there, as readable tokens.
        found: What the output has there instead (an excerpt, or ``end of output``).
        **kwargs: ``location``, ``path``, ``hint`` and ``code``, as for :class:`PromptcError`.
    """

    stage = "parse"

    def __init__(
        self,
        message: str,
        *,
        offset: int | None = None,
        expected: Sequence[str] = (),
        found: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(message, **kwargs)
        self.offset = offset
        self.expected = tuple(expected)
        self.found = found


class BackendError(PromptcError):
    """An optional backend is missing or an API call failed; the message says what to install."""

    stage = "backend"


class UsageError(PromptcError):
    """The command line itself is wrong (exit code 2)."""

    stage = "usage"


class SpecWarning(PromptcError):
    """A spec that is valid but likely to lose answers (an output budget that may cut a
    request off): reported by ``check`` and ``plan`` with its location, never raised, and no
    reason for a non-zero exit status."""

    stage = "warning"

    def format(self) -> str:
        """As :meth:`PromptcError.format`, the message marked ``warning:``."""
        parts = [f"{self.location}: "] if self.location is not None else []
        if self.path:
            parts.append(f"{self.key_path}: ")
        parts.append(f"warning: {self.message}")
        if self.hint:
            parts.append(f" ({self.hint})")
        return one_line("".join(parts))


class PromptcErrors(PromptcError):
    """Several errors reported together, sorted by location.

    Args:
        errors: The collected errors (at least one).
        omitted: How many more errors were found but not kept (``max_errors``).
    """

    def __init__(self, errors: Sequence[PromptcError], omitted: int = 0) -> None:
        if not errors:
            raise ValueError("PromptcErrors needs at least one error")
        self.errors = tuple(sorted(errors, key=_sort_key))
        self.omitted = omitted
        first = self.errors[0]
        super().__init__(
            first.message,
            location=first.location,
            path=first.path,
            hint=first.hint,
            code=first.code,
        )
        self.stage = first.stage

    def format(self) -> str:
        lines = [e.format() for e in self.errors]
        if self.omitted:
            lines.append(f"… and {self.omitted} more")
        return "\n".join(lines)

    def __iter__(self) -> Iterator[PromptcError]:
        return iter(self.errors)

    def __len__(self) -> int:
        return len(self.errors)


def _sort_key(e: PromptcError) -> tuple[str, int, int, str]:
    loc = e.location
    if loc is None:
        return ("\uffff", 0, 0, e.message)
    return (loc.file, loc.line, loc.col, e.message)


def flatten(errors: Iterable[PromptcError]) -> list[PromptcError]:
    """Expands every :class:`PromptcErrors` into its members."""
    out: list[PromptcError] = []
    for e in errors:
        if isinstance(e, PromptcErrors):
            out.extend(e.errors)
        else:
            out.append(e)
    return out


class ErrorCollector:
    """Collects errors, or raises at the first one, as the caller chooses.

    Args:
        max_errors: Keep at most this many; count the rest. ``None`` keeps all.
        fail_fast: Raise at the first error instead of collecting.

    Attributes:
        errors: The errors kept, in the order added.
        omitted: How many more were added past ``max_errors``.
    """

    def __init__(self, max_errors: int | None = 50, fail_fast: bool = False) -> None:
        # At least one kept: a collector that kept none would pass a spec full of errors.
        self.max_errors = None if max_errors is None else max(1, max_errors)
        self.fail_fast = fail_fast
        self.errors: list[PromptcError] = []
        self.omitted = 0

    def add(self, error: PromptcError) -> None:
        for e in flatten([error]):
            if self.fail_fast:
                raise e
            if self.max_errors is not None and len(self.errors) >= self.max_errors:
                self.omitted += 1
            else:
                self.errors.append(e)

    def extend(self, errors: Iterable[PromptcError]) -> None:
        for e in errors:
            self.add(e)

    def __bool__(self) -> bool:
        return bool(self.errors)

    def raise_if_any(self) -> None:
        """Raises everything collected so far as one :class:`PromptcErrors`."""
        if self.errors:
            raise PromptcErrors(self.errors, self.omitted)


def one_line(text: str) -> str:
    """``text`` with every character that is not printable (line breaks, control characters,
    lone surrogates, U+2028) written as its escape: a diagnostic is one line of plain text,
    whatever the spec or output it quotes holds."""
    if text.isprintable():
        return text
    return "".join(
        c if c.isprintable() or c == " " else repr(c)[1:-1] if c != "\\" else c for c in text
    )


def format_path(path: Sequence[str | int]) -> str:
    """Renders a key path as users write it: ``demos[2].answer``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        elif (
            not part.isprintable()
            or part.strip() != part
            or not part
            or "." in part
            or "[" in part
            or ":" in part
        ):
            # A key no identifier spells (a line break, a control character, a dot, white
            # space at its ends) is shown quoted, so that the diagnostic stays one line that
            # says which key it is.
            out += f"[{part!r}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """A ``did you mean 'x'?`` hint for a misspelt name, or ``None`` if nothing is close."""
    import difflib

    matches = difflib.get_close_matches(word, sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean '{matches[0]}'?" if matches else None
