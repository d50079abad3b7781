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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from promptc.ir import InputField, Markers
from promptc.text import default_label

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


def marker(prefix: str, index: int) -> str:
    """``marker("A", 3)`` → ``"A[3]:"``. Indices are 1-based, as users read them."""
    return f"{prefix}{INDEX_OPEN}{index}{INDEX_CLOSE}{MARKER_END}"


def question_marker(index: int, m: Markers = DEFAULT) -> str:
    """``Q[3]:`` (with the task's question prefix)."""
    return marker(m.question, index)


def answer_marker(index: int, m: Markers = DEFAULT) -> str:
    """``A[3]:`` (with the task's answer prefix)."""
    return marker(m.answer, index)


def prefix_of(role: str, m: Markers = DEFAULT) -> str:
    """The task's prefix for a role (:data:`QUESTION_PREFIX` or :data:`ANSWER_PREFIX`)."""
    return m.question if role == QUESTION_PREFIX else m.answer


def question_block(
    fields: Sequence[InputField], values: Mapping[str, str], index: int, m: Markers = DEFAULT
) -> str:
    """How a batch shows item ``index``'s inputs: ``Q[i]: <question>``, or with indexed
    inputs one ``Label[i]: value`` line per input (``Premise[1]: …`` / ``Hypothesis[1]: …``)."""
    if m.inputs == "indexed":
        return FIELD_SEPARATOR.join(
            f"{marker(field_label(f), index)}{MARKER_SEPARATOR}{values[f.name]}" for f in fields
        )
    return f"{question_marker(index, m)}{MARKER_SEPARATOR}{question_text(fields, values)}"


#: The letters of an ``options`` input's options, in order: ``(a)`` to ``(z)``.
OPTION_LETTERS = "abcdefghijklmnopqrstuvwxyz"
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
    repeat, so the output parser compares against exactly this.
    """
    if len(fields) == 1:
        return values[fields[0].name]
    return FIELD_SEPARATOR.join(
        f"{field_label(f)}{LABEL_SEPARATOR}{values[f.name]}" for f in fields
    )
