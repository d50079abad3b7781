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
Every stage asks a field's type (``field.type.read(field, text)``, ``.write``, ``.coerce`` …).
"""

from __future__ import annotations

from promptc.values.options import (
    ANSWER_WITH,
    OPTION_LETTERS,
    OPTION_NOISE,
    AnswerWith,
    option_choices,
    option_text,
    resolve_labelled_option,
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
    agree,
    find_value_type,
    text_answers,
    value_type,
)

__all__ = [
    "ANSWER_WITH",
    "BOOLEAN",
    "ENUM",
    "INTEGER",
    "MAX_INTEGER_DIGITS",
    "NAMES",
    "NUMBER",
    "OPTION_LETTERS",
    "OPTION_NOISE",
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
    "agree",
    "find_value_type",
    "option_choices",
    "option_text",
    "resolve_labelled_option",
    "resolve_option",
    "text_answers",
    "value_type",
]
