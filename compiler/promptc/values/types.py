"""The output value types: one class each, in one table.

Everything promptc does differently per output type is asked of its object here — its form in
the answer grammar and every export of it, how a value is read, written, given in YAML, sent
as JSON, compared with a gold answer, counted by plan and described to the model — so that no
other module compares type names. The names below are the only place they are spelled
(besides the spec schema, the fragments in ``grammars/`` and the docs). An output field
(:class:`promptc.ir.OutputField`) carries its type's object; methods take the field, whose
``choices`` and ``aliases`` an ``enum`` reads.

Adding a type: a subclass below and its entry in :data:`VALUE_TYPES`, its fragment in
``grammars/``, its name in the spec schema's output ``type`` enum, and its golden files.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import TYPE_CHECKING, ClassVar, Literal

from promptc.errors import GrammarError
from promptc.text import decimal_text
from promptc.values.dialects import (
    GBNF,
    GBNF_NOT_WS,
    PORTABLE,
    PORTABLE_NOT_WS,
    escape,
    fragment_terminals,
    lark_string,
    lark_terminals,
)
from promptc.values.options import ANSWER_WITH, OPTION_LETTERS, option_text_regex

if TYPE_CHECKING:
    from promptc.ir import OutputField, Task

#: A normalised output value: ``number`` → Decimal, ``integer`` → int, ``boolean`` → bool,
#: ``enum`` → the canonical choice, ``text`` → str.
Value = str | Decimal | int | bool

#: How a free-text value is read when another free-text field follows it
#: (``grammars/text.lark``): its own (longest) reading, or the shortest a word or a character
#: at a time.
Reading = Literal["", "words", "chars"]

TRUE_WORDS = ("yes", "true")
FALSE_WORDS = ("no", "false")
CANONICAL_TRUE = "yes"
CANONICAL_FALSE = "no"

#: The most digits an ``integer`` value may have. Python refuses to convert longer integers
#: to and from text (quadratic work); 640 is the least limit it can be set to
#: (``PYTHONINTMAXSTRDIGITS``), so what promptc accepts never depends on the environment. A
#: longer answer is malformed, not an internal error. A ``number`` is a Decimal, bounded the
#: same way before its point: its exact text in results.jsonl must read back as JSON in any
#: Python (whose json reads the digits of a number's integer part with ``int``).
MAX_INTEGER_DIGITS = 640


class ValueOutOfBounds(ValueError):
    """A value of the right form past a documented bound (:data:`MAX_INTEGER_DIGITS`).

    Attributes:
        expected: What would have been accepted (``"an integer of at most 640 digits"``).
        found: What was there (``"5,001 digits"``).
    """

    def __init__(self, expected: str, found: str) -> None:
        self.expected = expected
        self.found = found
        super().__init__(f"expected {expected}, found {found}")


class ValueType:
    """What one output type means to every stage. Instances are singletons (the values of
    :data:`VALUE_TYPES`), compared by identity; ``str()`` is the name, as specs, build files
    and templates spell it."""

    #: The name in specs (``outputs.<name>.type``), ``task.json`` and templates.
    name: ClassVar[str]
    #: Its lark fragment in ``grammars/`` and the terminal there that reads one value.
    fragment: ClassVar[str]
    terminal: ClassVar[str]
    #: Free text: a value ends where the rest of the answer matches (a lookahead, not a form
    #: of its own), and it is read as written, white space inside kept.
    free_text: ClassVar[bool] = False
    #: The field declares ``choices`` (and ``aliases``, ``choices_from``).
    takes_choices: ClassVar[bool] = False
    #: A lenient reading lets a percent sign or a unit word stand after a value that literal
    #: text follows (``18%``, ``18 dollars``): the value is the number.
    takes_unit: ClassVar[bool] = False
    #: In GBNF, one rule named after the type serves every field of it (its form does not
    #: depend on the field).
    gbnf_shared: ClassVar[bool] = True
    #: The JSON Schema ``type`` of a value in its JSON form.
    json_type: ClassVar[str] = "string"

    def declare(self, field: OutputField, decl: Mapping[str, object]) -> OutputField | None:
        """The field a spec declares (``outputs.<name>``), with what the type reads of the
        declaration beyond its ``type`` and ``description``; ``None`` when that is of the
        wrong shape (validation says why).

        Args:
            field: The field with its name, type, description and location.
            decl: The declaration as the spec holds it.
        """
        return field

    # ---------------------------------------------------------------- the grammar and exports

    def regex(self, field: OutputField, multiline: bool, reading: Reading = "") -> str:
        """The Python regex of one value as the parser reads it (no lookahead), compiled by
        lark from the type's fragment.

        Args:
            field: The output.
            multiline: The answer may span lines (``single``, ``few-shot``).
            reading: Free text only: its shortest reading, when another free-text field
                follows (:data:`Reading`).
        """
        return fragment_terminals(self.fragment)[self.terminal]

    def gbnf(self, field: OutputField, multiline: bool, max_chars: int) -> str:
        """The GBNF expression of one value as a constrained model may write it.

        Args:
            field: The output.
            multiline: The answer may span lines.
            max_chars: The longest free text a constrained model may write.
        """
        return GBNF.spell(self.regex(field, multiline))

    def portable_regex(self, field: OutputField, multiline: bool) -> str:
        """One value in the portable regex dialect (``answer.regex``), as a constrained model
        may write it."""
        return PORTABLE.spell(self.regex(field, multiline))

    def json_schema(self, field: OutputField) -> dict[str, object]:
        """The JSON Schema (Draft 2020-12) of one value of ``field`` in its JSON form."""
        schema: dict[str, object] = {"type": self.json_type}
        if field.description:
            schema["description"] = field.description
        return schema

    # ---------------------------------------------------------------- values

    def read(self, field: OutputField, text: str) -> Value:
        """Normalises a value as written by a model (or a spec's demo).

        Raises:
            ValueError: The text is not a value of the field's type; the message says what was
                expected.
        """
        raise NotImplementedError

    def write(self, field: OutputField, value: Value) -> str:
        """The canonical text of a normalised value."""
        return str(value)

    def json_value(self, field: OutputField, value: Value) -> object:
        """The JSON form of a normalised value, what structured-output APIs return."""
        return value

    def coerce(self, field: OutputField, value: object) -> Value:
        """Normalises a value given in YAML or JSON (a demo's output, a gold answer, a JSON
        answer): text is read, a native number or boolean taken as :meth:`coerce_scalar` says.

        Raises:
            ValueError: As :meth:`read`.
        """
        if isinstance(value, str):
            return self.read(field, value)
        if isinstance(value, (bool, int, float)):
            return self.coerce_scalar(field, value)
        raise ValueError(f"expected {self.expected(field)}, found {type(value).__name__} {value!r}")

    def coerce_scalar(self, field: OutputField, value: float) -> Value:
        """A native boolean or number given for a value (to the type checker, a ``bool`` or an
        ``int`` is a ``float``): by default read as the text YAML read it from (``yes``,
        ``18``)."""
        if isinstance(value, bool):
            return self.read(field, CANONICAL_TRUE if value else CANONICAL_FALSE)
        return self.read(field, str(value))

    def expected(self, field: OutputField) -> str:
        """What a value of this field looks like, for error messages."""
        raise NotImplementedError

    def meaning(self, field: OutputField) -> str:
        """What a value is, as templates tell the model (``<answer> is a number``)."""
        raise NotImplementedError

    # ---------------------------------------------------------------- eval and plan

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        """Whether a prediction equals the gold answer under the type's comparison rule.

        Args:
            tolerance: Absolute tolerance for ``number`` outputs.
        """
        return predicted == gold

    def tokens(self, field: OutputField, count: Callable[[str], int], task: Task) -> float:
        """Tokens of one value as plan estimates them. By default the mean of the gold answers
        written canonically (of the demos' when there is no gold); one token when there is
        neither. Never a bound: the grammar admits longer spellings of every type (``YES``
        takes more tokens than ``yes``)."""
        return _mean_tokens(self, field, count, _gold(field, task), _demos(field, task))

    # ---------------------------------------------------------------- the object itself

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<value type {self.name}>"

    def __reduce__(self) -> tuple[Callable[[str], ValueType], tuple[str]]:
        # Singletons: a copy or a pickle is the same object (``copy``, ``multiprocessing``).
        return value_type, (self.name,)


def _gold(field: OutputField, task: Task) -> Iterator[Value]:
    return (i.gold[field.name] for i in task.items if field.name in i.gold)


def _demos(field: OutputField, task: Task) -> Iterator[Value]:
    return (d.outputs[field.name] for d in task.demos if field.name in d.outputs)


def _mean_tokens(
    vt: ValueType, field: OutputField, count: Callable[[str], int], *sources: Iterator[Value]
) -> float:
    """The mean tokens of the values of the first source that has any (one token if none
    has): summed as the items stream by, so that memory does not grow with the data."""
    for source in sources:
        n, total = 0, 0
        for value in source:
            n, total = n + 1, total + count(vt.write(field, value))
        if n:
            return total / n
    return 1.0


def agree(fields: Sequence[OutputField], a: Mapping[str, Value], b: Mapping[str, Value]) -> bool:
    """Whether two answers of one item say the same: each value by its type's comparison (a
    text as eval compares it: NFKC, case, white space, a final period). A free text beside a
    value of another type (the reasoning before a number) does not decide: a model restating
    its answer, or answering it again in another voting round, rarely repeats its reasoning
    word for word. Without ``fields``, the values as they are."""
    if not fields:
        return a == b
    decisive = [f for f in fields if not f.type.free_text] or list(fields)
    return all(
        f.name in a and f.name in b and f.type.matches(f, a[f.name], b[f.name], None)
        for f in decisive
    )


# ---------------------------------------------------------------- text


_SPACE = re.compile(r"\s+")

#: The choices a message lists, of an enum's (up to 1,000): the rest are counted.
_LISTED = 20


def normalise_text(text: str) -> str:
    """Text as compared: NFKC, case folded, white space collapsed, final punctuation dropped
    (unless it is all the text: ``?`` is not ``!``)."""
    t = _SPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return t.rstrip(".!?").rstrip() or t


class Text(ValueType):
    """Free text up to the next delimiter of the answer format, read and written as is."""

    name = "text"
    fragment = "text.lark"
    terminal = "TEXT"
    free_text = True
    # Its JSON Schema has no minLength: xgrammar (mlc-ai/xgrammar#800) then rejects valid
    # strings holding \n or \"; the JSON reader reports an empty text value as malformed.

    _READINGS: ClassVar[dict[str, str]] = {"": "", "words": "_WORDS", "chars": "_LAZY"}

    def regex(self, field: OutputField, multiline: bool, reading: Reading = "") -> str:
        terminal = ("TEXT_MULTILINE" if multiline else "TEXT") + self._READINGS[reading]
        return fragment_terminals(self.fragment)[terminal]

    def gbnf(self, field: OutputField, multiline: bool, max_chars: int) -> str:
        # GBNF has no lookahead: a text is bounded here (and only here), so that a constrained
        # model cannot run on forever; the model ends it by writing the literal that follows.
        char = "[^\\x00]" if multiline else "[^\\n]"
        return f"{GBNF_NOT_WS} ({char}{{0,{max_chars - 2}}} {GBNF_NOT_WS})?"

    def portable_regex(self, field: OutputField, multiline: bool) -> str:
        # Unbounded: the length of an output is bounded by max_tokens.
        char = "(?:[^\\n]|\\n)" if multiline else "[^\\n]"
        return f"{PORTABLE_NOT_WS}(?:{char}*{PORTABLE_NOT_WS})?"

    def read(self, field: OutputField, text: str) -> Value:
        return text

    def expected(self, field: OutputField) -> str:
        return "text"

    def meaning(self, field: OutputField) -> str:
        return "free text"

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        return normalise_text(str(predicted)) == normalise_text(str(gold))

    def tokens(self, field: OutputField, count: Callable[[str], int], task: Task) -> float:
        # A gold text is often a short label where the model writes sentences: the demos,
        # written as the model is asked to write, come first.
        return _mean_tokens(self, field, count, _demos(field, task), _gold(field, task))


# ---------------------------------------------------------------- number and integer


@cache
def _number_pattern() -> re.Pattern[str]:
    # Compiled on first use (half a millisecond): plain digits, the usual value, need none.
    return re.compile(
        r"^\s*(?P<sign>[-+−]?)\s*[$€£]?\s*(?P<digits>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?"
        r"\.?\s*$"
    )


def _read_decimal(vt: ValueType, field: OutputField, text: str) -> tuple[Decimal, str]:
    """The exact Decimal of a number as written (``$1,234.50``), and its digits before the
    point; read leniently (spaces, a space after a sign or currency) for demos by hand."""
    s = text.strip()
    if s.isascii() and s.isdigit():  # what the pattern reads as its digits alone
        sign, digits, frac = "", s, ""
    else:
        m = _number_pattern().match(s)
        if not m or not (m.group("digits") or m.group("frac")):
            raise ValueError(f"expected {vt.expected(field)}, found {text!r}")
        sign = "-" if m.group("sign") in ("-", "−") else ""
        digits = (m.group("digits") or "0").replace(",", "")
        frac = m.group("frac") or ""
    try:
        return Decimal(sign + digits + frac), digits
    except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
        raise ValueError(f"expected {vt.expected(field)}, found {text!r}") from None


def _bounded_int(number: Decimal) -> int:
    """``int(number)``, refused past :data:`MAX_INTEGER_DIGITS` digits."""
    digits = number.adjusted() + 1 if number else 1
    if digits > MAX_INTEGER_DIGITS:
        raise ValueOutOfBounds(
            f"an integer of at most {MAX_INTEGER_DIGITS} digits", f"{digits:,} digits"
        )
    return int(number)


def _as_decimal(v: Value) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, Decimal)):
        return Decimal(v)
    try:
        return Decimal(str(v))
    except ArithmeticError:
        return None


class Number(ValueType):
    """A decimal (``18``, ``-3.5``, ``1,234``, ``$18``), read to an exact Decimal and written
    without separators, currency or exponent."""

    name = "number"
    fragment = "number.lark"
    terminal = "NUMBER"
    takes_unit = True
    json_type = "number"

    def read(self, field: OutputField, text: str) -> Value:
        number, digits = _read_decimal(self, field, text)
        whole = len(digits.lstrip("0"))
        if whole > MAX_INTEGER_DIGITS:
            raise ValueOutOfBounds(
                f"a number of at most {MAX_INTEGER_DIGITS} digits before its point",
                f"{whole:,} digits",
            )
        return number

    def write(self, field: OutputField, value: Value) -> str:
        if isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)  # an int is a number too (a demo's 18)
        assert isinstance(value, Decimal)
        return decimal_text(value)

    def json_value(self, field: OutputField, value: Value) -> object:
        # A JSON number: an int where it is one (and exact in a float's mantissa), else a float.
        assert isinstance(value, Decimal)
        if value == value.to_integral_value() and abs(value) < 10**15:
            return int(value)
        return float(value)

    def coerce_scalar(self, field: OutputField, value: float) -> Value:
        if not isinstance(value, bool):
            return Decimal(str(value))
        raise ValueError(f"expected {self.expected(field)}, found {value!r}")

    def expected(self, field: OutputField) -> str:
        return "a number such as 18, -3.5 or 1,234"

    def meaning(self, field: OutputField) -> str:
        return "a number"

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        # Equal as exact decimals (18 = 18.0 = $18), or within the tolerance.
        p, g = _as_decimal(predicted), _as_decimal(gold)
        if p is None or g is None:
            return False
        return abs(p - g) <= tolerance if tolerance is not None else p == g


class Integer(ValueType):
    """A whole number, in the forms of a ``number`` (``1,234``, ``$18``, ``18.0``), read to
    an int and written as ``-1234``."""

    name = "integer"
    fragment = "integer.lark"
    terminal = "INTEGER"
    takes_unit = True
    json_type = "integer"

    def read(self, field: OutputField, text: str) -> Value:
        number, _ = _read_decimal(self, field, text)
        if number != number.to_integral_value():
            raise ValueError(f"expected {self.expected(field)}, found {text!r}")
        return _bounded_int(number)

    def coerce_scalar(self, field: OutputField, value: float) -> Value:
        number = None if isinstance(value, bool) else Decimal(str(value))
        if number is None or number != number.to_integral_value():
            raise ValueError(f"expected {self.expected(field)}, found {value!r}")
        return _bounded_int(number)

    def expected(self, field: OutputField) -> str:
        return "an integer such as 18 or -3"

    def meaning(self, field: OutputField) -> str:
        return "a whole number"

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        return (
            isinstance(predicted, int)
            and isinstance(gold, int)
            and not isinstance(predicted, bool)
            and predicted == gold
        )


# ---------------------------------------------------------------- boolean and enum


class Boolean(ValueType):
    """yes / no / true / false in any case, read to a bool and written ``yes`` or ``no``."""

    name = "boolean"
    fragment = "boolean.lark"
    terminal = "BOOLEAN"
    json_type = "boolean"

    def portable_regex(self, field: OutputField, multiline: bool) -> str:
        # Constrained output is canonical: yes or no.
        return "(?:" + "|".join(escape(w) for w in (CANONICAL_TRUE, CANONICAL_FALSE)) + ")"

    def read(self, field: OutputField, text: str) -> Value:
        low = text.strip().lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"expected {self.expected(field)}, found {text!r}")

    def write(self, field: OutputField, value: Value) -> str:
        return CANONICAL_TRUE if value else CANONICAL_FALSE

    def coerce_scalar(self, field: OutputField, value: float) -> Value:
        if isinstance(value, bool):
            return value
        raise ValueError(f"expected {self.expected(field)}, found {type(value).__name__} {value!r}")

    def expected(self, field: OutputField) -> str:
        return "yes or no (or true/false)"

    def meaning(self, field: OutputField) -> str:
        return "yes or no"

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        return isinstance(predicted, bool) and predicted is gold

    def tokens(self, field: OutputField, count: Callable[[str], int], task: Task) -> float:
        return float(max(count(CANONICAL_TRUE), count(CANONICAL_FALSE)))


def text_answers(field: OutputField) -> bool:
    """Whether ``field`` is answered with an option's text (``answer_with: text | either``)."""
    return field.type.takes_choices and bool(field.choices_from) and field.answer_with != "letter"


class Enum(ValueType):
    """One of the field's ``choices`` or ``aliases`` in any case, read to the choice as
    declared. With ``choices_from`` the choices are an item's options, one letter each; with
    text answers (:func:`text_answers`) the grammar reads any one-line text, which
    :func:`promptc.values.resolve_option` then names the option of that item it is."""

    name = "enum"
    fragment = "enum.lark"
    terminal = "ENUM"
    takes_choices = True
    gbnf_shared = False

    def declare(self, field: OutputField, decl: Mapping[str, object]) -> OutputField | None:
        """Its ``choices`` as declared, ``aliases`` mapped to the choice they name (in any
        case; an alias of no choice is dropped, validation reports it), or with
        ``choices_from`` and no ``choices`` every letter an options input may have (lowering
        narrows them to the data's), and ``answer_with``."""
        choices_from = decl.get("choices_from")
        answer_with = decl.get("answer_with") if choices_from else None
        field = replace(
            field,
            choices_from=choices_from if isinstance(choices_from, str) else "",
            answer_with=next((a for a in ANSWER_WITH if a == answer_with), "letter"),
        )
        if isinstance(choices_from, str) and choices_from and "choices" not in decl:
            return replace(field, choices=tuple(OPTION_LETTERS))
        raw = decl.get("choices")
        if not isinstance(raw, list) or not raw or not all(isinstance(c, str) for c in raw):
            return None
        by_lower = {c.lower(): c for c in raw}
        raw_aliases = decl.get("aliases")
        aliases = [
            (str(alias), by_lower[target.lower()])
            for alias, target in (raw_aliases.items() if isinstance(raw_aliases, Mapping) else ())
            if isinstance(target, str) and target.lower() in by_lower
        ]
        return replace(field, choices=tuple(raw), aliases=tuple(aliases))

    def regex(self, field: OutputField, multiline: bool, reading: Reading = "") -> str:
        if text_answers(field):
            return option_text_regex(field.option_chars)
        if not field.choices or "" in field.choices or any(a == "" for a, _ in field.aliases):
            raise GrammarError(
                f"enum output '{field.name}' has no choices or an empty one; expected a list "
                "of non-empty choices",
                location=field.location,
                code="enum-without-choices",
            )
        # The terminal of enum.lark's shape for this field: longest first, then alphabetically.
        words = set(field.choices) | {a for a, _ in field.aliases}
        ordered = sorted(words, key=lambda w: (-len(w), w.lower(), w))
        alternatives = " | ".join(lark_string(w) + "i" for w in ordered)
        return lark_terminals(f"ENUM: {alternatives}\n", self.fragment, {"ENUM"})["ENUM"]

    def portable_regex(self, field: OutputField, multiline: bool) -> str:
        if text_answers(field):
            # The shared grammar's any one-line text; a request's own spells its options.
            return super().portable_regex(field, multiline)
        # Constrained output is canonical: a choice as declared (aliases are for reading).
        return "(?:" + "|".join(escape(c) for c in field.choices) + ")"

    def json_schema(self, field: OutputField) -> dict[str, object]:
        if text_answers(field):
            # The item's options decide: a request's own schema lists them.
            return super().json_schema(field)
        schema: dict[str, object] = {"type": "string", "enum": list(field.choices)}
        schema.update(super().json_schema(field))  # its description
        return schema

    def read(self, field: OutputField, text: str) -> Value:
        s = text.strip()
        if text_answers(field):
            # Which option it names depends on the item: resolve_option decides, after reading.
            if not s or "\n" in s:
                raise ValueError(f"expected {self.expected(field)}, found {text!r}")
            return s
        low = s.lower()
        for c in field.choices:
            if c.lower() == low:
                return c
        for alias, choice in field.aliases:
            if alias.lower() == low:
                return choice
        raise ValueError(f"expected {self.expected(field)}, found {text!r}")

    def expected(self, field: OutputField) -> str:
        if text_answers(field):
            return (
                "the text of one of the item's options"
                if field.answer_with == "text"
                else "the letter or the text of one of the item's options"
            )
        shown = ", ".join(repr(c) for c in field.choices[:_LISTED])
        more = len(field.choices) - _LISTED
        return f"one of {shown}" + (f" and {more} more" if more > 0 else "")

    def meaning(self, field: OutputField) -> str:
        if field.answer_with == "text" and field.choices_from:  # its choices are the letters
            return "the text of one of the item's options"
        return "one of: " + ", ".join(field.choices)

    def matches(
        self, field: OutputField, predicted: Value, gold: Value, tolerance: Decimal | None
    ) -> bool:
        # The same canonical choice (aliases were resolved when parsing).
        return str(predicted).casefold() == str(gold).casefold()

    def tokens(self, field: OutputField, count: Callable[[str], int], task: Task) -> float:
        return float(max(count(c) for c in field.choices))


# ---------------------------------------------------------------- the table

TEXT = Text()
NUMBER = Number()
INTEGER = Integer()
BOOLEAN = Boolean()
ENUM = Enum()

#: Every output type by name, in the order promptc lists them (the spec schema, messages).
VALUE_TYPES: dict[str, ValueType] = {t.name: t for t in (TEXT, NUMBER, INTEGER, BOOLEAN, ENUM)}
#: The names, in that order.
NAMES: tuple[str, ...] = tuple(VALUE_TYPES)


def find_value_type(name: object) -> ValueType | None:
    """The type of a name, or ``None`` when ``name`` names none (any value: a spec's)."""
    return VALUE_TYPES.get(name) if isinstance(name, str) else None


def value_type(name: str | ValueType) -> ValueType:
    """The type of a name (a type is returned as it is).

    Raises:
        KeyError: No type has that name; the message lists those that do.
    """
    if isinstance(name, ValueType):
        return name
    try:
        return VALUE_TYPES[name]
    except (KeyError, TypeError):
        raise KeyError(
            f"unknown output type {name!r}; expected one of {', '.join(NAMES)}"
        ) from None
