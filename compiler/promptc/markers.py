"""The literal markers of the batch and Auto-Demo output formats, shared by writer and reader.

Templates write these markers into prompts (they receive them as the ``markers`` variable),
the grammar generator builds its rules from them, and the output parser recognises them: one
definition, so that the three cannot drift apart. The prefixes are the spec's (``markers:``,
an :class:`~promptc.ir.Markers` on the task); ``Q`` and ``A`` are the defaults, and the
functions below take the task's markers as their last argument.

A batch answer is written, one item a line::

    A[1]: <answer>
    A[2]: <answer>

An Auto-Demo answer repeats each question before its answer::

    Q[1]: <question>
    A[1]: <answer>
    Q[2]: <question>
    A[2]: <answer>

With indexed inputs (``markers: {inputs: indexed}``) it repeats each input under its own
label, and the first input's label takes the question marker's place
(:func:`shown_markers`)::

    Premise[1]: <premise>
    Hypothesis[1]: <hypothesis>
    Answer[1]: <answer>

Either way the question an answer repeated is read back (:func:`read_question`) as the text
:func:`question_text` writes, which is what the parser compares with the item's own.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache

from promptc.ir import InputField, Markers
from promptc.text import default_label, read_as

# How options are shown (markers) and named in answers (values): one definition, in values.
from promptc.values import OPTION_LETTERS as OPTION_LETTERS  # noqa: PLC0414

#: The default prefixes; also the roles of a found marker (question, answer) in the parser.
QUESTION_PREFIX = "Q"
ANSWER_PREFIX = "A"
#: The markers of a spec that sets none.
DEFAULT = Markers()
INDEX_OPEN = "["
INDEX_CLOSE = "]"
MARKER_END = ":"
#: What follows a marker before its content.
MARKER_SEPARATOR = " "
#: What separates one item (or one Q/A line) from the next.
ITEM_SEPARATOR = "\n"
#: How the fields of a multi-field input are joined when shown as one question.
FIELD_SEPARATOR = "\n"
#: Between a field's label and its value, e.g. ``Premise: A man sleeps.``
LABEL_SEPARATOR = ": "


def marker(prefix: str, index: int | str) -> str:
    """``marker("A", 3)`` → ``"A[3]:"``. Indices are 1-based, as users read them; ``"i"``
    writes the general form (``A[i]:``) messages and prompts describe."""
    return f"{prefix}{INDEX_OPEN}{index}{INDEX_CLOSE}{MARKER_END}"


def question_marker(index: int | str, m: Markers = DEFAULT) -> str:
    """``Q[3]:`` (with the task's question prefix)."""
    return marker(m.question, index)


def answer_marker(index: int, m: Markers = DEFAULT) -> str:
    """``A[3]:`` (with the task's answer prefix)."""
    return marker(m.answer, index)


def question_block(
    fields: Sequence[InputField],
    values: Mapping[str, str],
    index: int | str,
    m: Markers = DEFAULT,
) -> str:
    """How a batch shows item ``index``'s inputs: ``Q[i]: <question>``, or with indexed
    inputs one ``Label[i]: value`` line per input (``Premise[1]: …`` / ``Hypothesis[1]: …``)."""
    if m.inputs == "indexed":
        return FIELD_SEPARATOR.join(
            f"{marker(field_label(f), index)}{MARKER_SEPARATOR}{values[f.name].strip()}"
            for f in fields
        )
    return f"{question_marker(index, m)}{MARKER_SEPARATOR}{question_text(fields, values)}"


#: How many options an ``options`` input may have.
MAX_OPTIONS = len(OPTION_LETTERS)
#: The label of an ``options`` input that sets none.
OPTIONS_LABEL = "Answer Choices"


def options_text(options: Sequence[str]) -> str:
    """``["shirt pocket", "inkwell"]`` → ``(a) shirt pocket (b) inkwell``: how an ``options``
    input is shown, one line."""
    return " ".join(f"({OPTION_LETTERS[k]}) {o}" for k, o in enumerate(options))


def field_label(field: InputField) -> str:
    if field.label:
        return field.label
    return OPTIONS_LABEL if field.type == "options" else default_label(field.name)


def question_text(fields: Sequence[InputField], values: Mapping[str, str]) -> str:
    """An item's inputs as one question: the bare value for one field, labelled lines for more.

    This is the text a prompt shows after ``Q[i]:`` and the text an Auto-Demo answer must
    repeat, so the output parser compares against exactly this. A value's surrounding white
    space (``"Slow service.\n"``, common in scraped data) is no part of it: a prompt cannot
    show it after a marker, and no grammar should make the model write it.
    """
    if len(fields) == 1:
        return values[fields[0].name].strip()
    return FIELD_SEPARATOR.join(
        f"{field_label(f)}{LABEL_SEPARATOR}{values[f.name].strip()}" for f in fields
    )


def question_prefixes(fields: Sequence[InputField], m: Markers = DEFAULT) -> tuple[str, ...]:
    """The prefixes of the markers that open the lines of an item's question, in order: the
    question prefix (``("Q",)``), or with indexed inputs each input's label
    (``("Premise", "Hypothesis")``)."""
    if m.inputs == "indexed" and fields:
        return tuple(field_label(f) for f in fields)
    return (m.question,)


def shown_markers(fields: Sequence[InputField], m: Markers = DEFAULT) -> Markers:
    """The markers as a prompt and an Auto-Demo answer show them: with indexed inputs the
    question's marker is its first input's (``Premise[i]:``), as it is the first line of every
    question; otherwise the task's markers themselves."""
    first = question_prefixes(fields, m)[0]
    return m if first == m.question else replace(m, question=first)


def split_question(question: str, prefixes: Sequence[str]) -> list[str]:
    """The input values of a question as :func:`question_text` writes it (``Premise: …`` /
    ``Hypothesis: …`` lines), one per prefix (the inputs' labels); one prefix: the question.

    A value holding a line that starts like a later label (``\nHypothesis: ``) is split at the
    first such line; :func:`question_lines` and :func:`read_question` still round-trip it.

    Raises:
        ValueError: The question is not in that form.
    """
    if len(prefixes) <= 1:
        return [question]
    head = prefixes[0] + LABEL_SEPARATOR
    if not question.startswith(head):
        raise ValueError(f"the question does not start with {head!r}")
    values: list[str] = []
    pos = len(head)
    for label in prefixes[1:]:
        sep = FIELD_SEPARATOR + label + LABEL_SEPARATOR
        at = question.find(sep, pos)
        if at < 0:
            raise ValueError(f"the question has no line starting with {label + LABEL_SEPARATOR!r}")
        values.append(question[pos:at])
        pos = at + len(sep)
    values.append(question[pos:])
    return values


def question_lines(question: str, index: int, prefixes: Sequence[str]) -> str:
    """What an Auto-Demo answer writes for item ``index``'s question, markers included:
    ``Q[3]: <question>``, or with indexed inputs (one prefix per input) one
    ``Label[3]: value`` line per input.

    Args:
        question: The question as :func:`question_text` writes it.
        index: The item's 1-based index.
        prefixes: :func:`question_prefixes` of the task.

    Raises:
        ValueError: Several prefixes and a question not in :func:`question_text`'s form.
    """
    values = split_question(question, prefixes)
    return FIELD_SEPARATOR.join(
        f"{marker(p, index)}{MARKER_SEPARATOR}{v}" for p, v in zip(prefixes, values)
    )


@lru_cache(maxsize=32)
def _later_markers(prefixes: tuple[str, ...]) -> re.Pattern[str]:
    """A later input's marker (``Hypothesis[3]:``) at a line start, with markdown emphasis and
    the spaces after it. Anchored at line starts, so that a scan is linear in the text."""
    names = "|".join(re.escape(p) for p in sorted(prefixes[1:], key=len, reverse=True))
    ws = "[ \\t]{0,3}"
    return re.compile(
        f"(?m)^[ \\t]*[*_#>]{{0,3}}{ws}(?P<label>{names}){ws}{re.escape(INDEX_OPEN)}{ws}"
        f"(?P<index>[0-9]{{1,9}}){ws}{re.escape(INDEX_CLOSE)}[*_]{{0,3}}{ws}"
        f"{re.escape(MARKER_END)}[*_]{{0,3}}[ \\t]*",
        re.IGNORECASE,
    )


def later_input(text: str, start: int, end: int, prefixes: Sequence[str]) -> int | None:
    """Where the first line of ``text[start:end]`` that starts with a later input's marker
    (``Hypothesis[3]:``) starts, or ``None`` (always, with one prefix)."""
    if len(prefixes) <= 1:
        return None
    m = _later_markers(tuple(prefixes)).search(text, start, end)
    return None if m is None else m.start()


_WS = " \t\n\r\f\v"


def read_question(
    written: str, prefixes: Sequence[str], index: int | None = None
) -> tuple[str, str | None]:
    """The question an Auto-Demo answer repeated, as :func:`question_text` writes it, from the
    text after its first marker; and the first later marker with another index than
    ``index`` (``"Hypothesis[2]"`` in item 1's question), or ``None``.

    One prefix: ``written`` itself. Indexed inputs: ``v1\nHypothesis[3]: v2`` →
    ``Premise: v1\nHypothesis: v2`` (each later input's marker at the start of a line, in
    any case and markdown emphasis, becomes its label; the blank lines and spaces around it
    become one line break).
    """
    if len(prefixes) <= 1:
        return written, None
    canonical = {p.casefold(): p for p in prefixes[1:]}
    wrong: str | None = None
    pieces = [prefixes[0], LABEL_SEPARATOR]
    pos = 0
    for m in _later_markers(tuple(prefixes)).finditer(written):
        name = canonical.get(m.group("label").casefold(), m.group("label"))
        if index is not None and wrong is None and int(m.group("index")) != index:
            wrong = marker(name, int(m.group("index")))[: -len(MARKER_END)]
        pieces += [written[pos : m.start()].rstrip(_WS), FIELD_SEPARATOR, name, LABEL_SEPARATOR]
        pos = m.end()
    pieces.append(written[pos:])
    return "".join(pieces), wrong


def marker_problem(prefix: str) -> str | None:
    """Why ``prefix`` cannot be a marker prefix (``Q`` of ``Q[i]:``), or ``None``."""
    if prefix != prefix.strip():
        return "has white space at an end"
    for ch, name in (("[", "a '['"), ("]", "a ']'"), (":", "a ':'"), ("\n", "a line break")):
        if ch in prefix:
            return f"holds {name}"
    if read_as(prefix) != prefix:  # the model writes it so, the parser finds it otherwise
        odd = next(ch for ch in prefix if read_as(ch) != ch)
        return f"holds {odd!r} (U+{ord(odd):04X}), which the parser reads as {read_as(odd)!r}"
    return None


def marker_clash(a: str, b: str) -> str | None:
    """Why markers with prefixes ``a`` and ``b`` cannot both be used, or ``None``.

    The scanner reads markers in any case, so they must differ in more than case; neither
    marker (``A[``) may be a prefix of the other (``Answer Choices[`` is fine: the bracket
    decides), and neither may end the other after a space (``Choices[1]:`` would be found
    inside ``Answer Choices[1]:``).
    """
    x, y = a.casefold(), b.casefold()
    if x == y:
        return "are the same (markers are read in any case)"
    for (p, q), (pa, qa) in (((x, y), (a, b)), ((y, x), (b, a))):
        if (q + "[").startswith(p + "["):
            return "are prefixes of each other"
        if q.endswith((" " + p, "\t" + p)):
            return f"overlap: {pa!r} ends {qa!r}"
    return None
