"""Output value types: one class each (:mod:`promptc.values.types`), in one table.

=========  ==============================  ===========================================
type       canonical form (writer)         accepted when reading (normalised to)
=========  ==============================  ===========================================
number     ``-1234.5`` (no exponent)       ``1,234``, ``$18``, ``-3.5``, ``18.`` → Decimal
integer    ``-12``                         ``1,234``, ``$18`` → int
boolean    ``yes`` / ``no``                yes/no/true/false, any case → bool
enum       the choice as declared          a choice or alias, any case → the choice
text       as is                           any text up to the next delimiter → str
=========  ==============================  ===========================================

What a *grammar* accepts as each type is defined by the fragments in ``grammars/``
(``number.lark`` …), spelled in every export's dialect by :mod:`promptc.values.dialects`; a
type's reader normalises any text its fragment accepts, and a little more (surrounding
spaces, a space after a sign or currency), for demos written by hand. The JSON form of a value
is what structured-output APIs return: numbers as JSON numbers, booleans as JSON booleans,
enum choices and text as strings.

Comparison with a gold answer (``promptc eval``; a prediction counts only when its item parsed
``ok``):

=========  ===================================================================================
type       correct when
=========  ===================================================================================
number     equal as exact decimals (``18`` = ``18.0`` = ``$18``), or within ``tolerance``
integer    equal integers
boolean    equal
enum       the same canonical choice (aliases were resolved when parsing)
text       equal after normalising: Unicode NFKC, case folded, runs of white space as one
           space, surrounding space and final ``.``/``!``/``?`` removed
=========  ===================================================================================

An enum whose choices are an item's options (``choices_from``) is :mod:`promptc.values.options`.

The functions below are the same as asking the field's type (``field.type.read(field, text)``)
for callers that hold a field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from promptc.values.options import (
    ANSWER_WITH,
    OPTION_LETTERS,
    AnswerWith,
    choices_regex,
    option_choices,
    option_text,
    option_text_regex,
    resolve_option,
)
from promptc.values.types import (
    BOOLEAN,
    ENUM,
    INTEGER,
    MAX_INTEGER_DIGITS,
    NAMES,
    NUMBER,
    TEXT,
    VALUE_TYPES,
    Boolean,
    Enum,
    Integer,
    Number,
    Text,
    Value,
    ValueOutOfBounds,
    ValueType,
    find_value_type,
    normalise_text,
    plain_decimal,
    text_answers,
    value_type,
)

if TYPE_CHECKING:
    from promptc.ir import OutputField

__all__ = [
    "ANSWER_WITH",
    "BOOLEAN",
    "ENUM",
    "INTEGER",
    "MAX_INTEGER_DIGITS",
    "NAMES",
    "NUMBER",
    "OPTION_LETTERS",
    "TEXT",
    "VALUE_TYPES",
    "AnswerWith",
    "Boolean",
    "Enum",
    "Integer",
    "Number",
    "Text",
    "Value",
    "ValueOutOfBounds",
    "ValueType",
    "choices_regex",
    "coerce_value",
    "expected",
    "find_value_type",
    "json_value",
    "normalise_text",
    "option_choices",
    "option_text",
    "option_text_regex",
    "plain_decimal",
    "read_value",
    "resolve_option",
    "text_answers",
    "value_reader",
    "value_type",
    "write_value",
]


def read_value(field: OutputField, text: str) -> Value:
    """A value as written by a model (or a spec's demo), normalised (:meth:`ValueType.read`).

    Raises:
        ValueError: The text is not a value of the field's type; the message says what was
            expected.
    """
    return field.type.read(field, text)


def value_reader(field: OutputField) -> Callable[[str], Value]:
    """A reader for one field, equal to ``read_value(field, ·)`` but faster on plain forms
    (:meth:`ValueType.reader`); the tests check it agrees with :func:`read_value` on
    everything the grammar fragments accept."""
    return field.type.reader(field)


def write_value(field: OutputField, value: Value) -> str:
    """The canonical text of a normalised value (:meth:`ValueType.write`)."""
    return field.type.write(field, value)


def coerce_value(field: OutputField, value: object) -> Value:
    """A value given in YAML or JSON, normalised (:meth:`ValueType.coerce`).

    Raises:
        ValueError: As :func:`read_value`.
    """
    return field.type.coerce(field, value)


def json_value(field: OutputField, value: Value) -> object:
    """The JSON form of a normalised value (:meth:`ValueType.json_value`)."""
    return field.type.json_value(field, value)


def expected(field: OutputField) -> str:
    """What a value of this field looks like, for error messages (:meth:`ValueType.expected`)."""
    return field.type.expected(field)
