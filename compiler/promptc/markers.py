"""The literal markers of the batch and Auto-Demo output formats, shared by writer and reader.

Templates write these markers into prompts (they receive this module's constants as the
``markers`` variable), the grammar generator builds its rules from them, and the output parser
recognises them: one definition, so that the three cannot drift apart.

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

from promptc.ir import InputField
from promptc.text import default_label

QUESTION_PREFIX = "Q"
ANSWER_PREFIX = "A"
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


def question_marker(index: int) -> str:
    return marker(QUESTION_PREFIX, index)


def answer_marker(index: int) -> str:
    return marker(ANSWER_PREFIX, index)


def field_label(field: InputField) -> str:
    return field.label or default_label(field.name)


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
