"""Output value types: how each is written canonically and read back, normalised.

=========  ==============================  ==========================================
type       canonical form (writer)         accepted when reading (normalised to)
=========  ==============================  ==========================================
number     ``-1234.5`` (no exponent)       ``1,234``, ``$18``, ``-3.5``, ``18.`` → Decimal
integer    ``-12``                         ``1,234``, ``$18`` → int
boolean    ``yes`` / ``no``                yes/no/true/false, any case → bool
enum       the choice as declared          a choice or alias, any case → the choice
text       as is                           any text up to the next delimiter → str
=========  ==============================  ==========================================

An enum whose choices are an item's options (``choices_from``) with ``answer_with: text`` or
``either`` is read in two steps: the grammar reads the answer as written (any one-line text,
:func:`read_value` returns it stripped), and :func:`resolve_option` then names the option of
*that item* it is — the letter, which is the value reported.

What a *grammar* accepts as each type is defined by the fragments in ``grammars/``
(``number.lark`` …); :func:`read_value` normalises any text those fragments accept, and a
little more (surrounding spaces, a space after a sign or currency), for demos written by hand.
The JSON form of a value (:func:`json_value`, :func:`json_schema`) is what structured-output
APIs return: numbers as JSON numbers, booleans as JSON booleans, enum choices and text as
strings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from functools import cache

from promptc.ir import AnswerWith, OutputField, Value
from promptc.text import decimal_text

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


@cache
def _number_pattern() -> re.Pattern[str]:
    # Compiled on first use (half a millisecond): plain digits, the usual value, need none.
    return re.compile(
        r"^\s*(?P<sign>[-+−]?)\s*[$€£]?\s*(?P<digits>\d{1,3}(?:,\d{3})+|\d+)?(?P<frac>\.\d+)?"
        r"\.?\s*$"
    )


def text_answers(field: OutputField) -> bool:
    """Whether ``field`` is answered with an option's text (``answer_with: text | either``)."""
    return field.type == "enum" and bool(field.choices_from) and field.answer_with != "letter"


def option_text(option: str) -> str:
    """The text an answer gives for an option: the option with each white-space run as one
    space, stripped (``"  hunger  for sleep"`` → ``"hunger for sleep"``)."""
    return " ".join(option.split())


def option_choices(answer_with: AnswerWith, options: Sequence[str]) -> list[str]:
    """The exact answers an item with ``options`` admits: its letters (``a`` …), its option
    texts (:func:`option_text`), or both, letters first, each once."""
    from promptc.markers import OPTION_LETTERS

    out: list[str] = []
    if answer_with in ("letter", "either"):
        out.extend(OPTION_LETTERS[: len(options)])
    if answer_with in ("text", "either"):
        out.extend(option_text(o) for o in options)
    return list(dict.fromkeys(out))


def resolve_option(
    answer_with: AnswerWith, options: Sequence[str], answer: str, exact: bool
) -> list[str]:
    """The letters of the options of one item that ``answer`` names: one letter when it names
    exactly one, none when it names none of them, several when it is ambiguous.

    A letter (``letter``, ``either``) is read in any case, as enum choices are. An option's
    text (``text``, ``either``) must equal :func:`option_text` of the option: exactly when
    ``exact`` (strict parsing), else in any case and with any white space
    (``"Hunger  for\tsleep"``). Never a guess: an answer that equals two options' texts, or
    a letter and another option's text, names both.
    """
    from promptc.markers import OPTION_LETTERS

    letters = OPTION_LETTERS[: len(options)]
    found = answer.strip()
    hits: list[str] = []
    if answer_with in ("letter", "either") and len(found) == 1 and found.lower() in letters:
        hits.append(found.lower())
    if answer_with in ("text", "either"):
        want = found if exact else " ".join(found.split()).casefold()
        for letter, option in zip(letters, options):
            text = option_text(option)
            if (text if exact else text.casefold()) == want and letter not in hits:
                hits.append(letter)
    return sorted(hits)


def write_value(field: OutputField, value: Value) -> str:
    """The canonical text of a normalised value."""
    if field.type == "boolean":
        return CANONICAL_TRUE if value else CANONICAL_FALSE
    if field.type == "number":
        if isinstance(value, int) and not isinstance(value, bool):
            value = Decimal(value)  # an int is a number too (a demo's 18)
        assert isinstance(value, Decimal)
        return decimal_text(value)
    return str(value)


def expected(field: OutputField) -> str:
    """What a value of this field looks like, for error messages."""
    if field.type == "number":
        return "a number such as 18, -3.5 or 1,234"
    if field.type == "integer":
        return "an integer such as 18 or -3"
    if field.type == "boolean":
        return "yes or no (or true/false)"
    if text_answers(field):
        return (
            "the text of one of the item's options"
            if field.answer_with == "text"
            else "the letter or the text of one of the item's options"
        )
    if field.type == "enum":
        return "one of " + ", ".join(repr(c) for c in field.choices)
    return "text"


def read_value(field: OutputField, text: str) -> Value:
    """Normalises a value as written by a model (or a spec's demo).

    Raises:
        ValueError: The text is not a value of the field's type; the message says what was
            expected.
    """
    t = field.type
    if t == "text":
        return text
    s = text.strip()
    if t in ("number", "integer"):
        if s.isascii() and s.isdigit():  # what the pattern reads as its digits alone
            sign, digits, frac = "", s, ""
        else:
            m = _number_pattern().match(s)
            if not m or not (m.group("digits") or m.group("frac")):
                raise ValueError(f"expected {expected(field)}, found {text!r}")
            sign = "-" if m.group("sign") in ("-", "−") else ""
            digits = (m.group("digits") or "0").replace(",", "")
            frac = m.group("frac") or ""
        try:
            number = Decimal(sign + digits + frac)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid literals
            raise ValueError(f"expected {expected(field)}, found {text!r}") from None
        if t == "integer":
            if number != number.to_integral_value():
                raise ValueError(f"expected {expected(field)}, found {text!r}")
            return _bounded_int(number, text)
        whole = len(digits.lstrip("0"))
        if whole > MAX_INTEGER_DIGITS:
            raise ValueOutOfBounds(
                f"a number of at most {MAX_INTEGER_DIGITS} digits before its point",
                f"{whole:,} digits",
            )
        return number
    if t == "boolean":
        low = s.lower()
        if low in TRUE_WORDS:
            return True
        if low in FALSE_WORDS:
            return False
        raise ValueError(f"expected {expected(field)}, found {text!r}")
    if t == "enum" and text_answers(field):
        # Which option it names depends on the item: resolve_option decides, after reading.
        if not s or "\n" in s:
            raise ValueError(f"expected {expected(field)}, found {text!r}")
        return s
    if t == "enum":
        low = s.lower()
        for c in field.choices:
            if c.lower() == low:
                return c
        for alias, choice in field.aliases:
            if alias.lower() == low:
                return choice
        raise ValueError(f"expected {expected(field)}, found {text!r}")
    raise ValueError(f"unknown output type {t!r}")


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


def _bounded_int(number: Decimal, text: str) -> int:
    """``int(number)``, refused past :data:`MAX_INTEGER_DIGITS` digits."""
    digits = number.adjusted() + 1 if number else 1
    if digits > MAX_INTEGER_DIGITS:
        raise ValueOutOfBounds(
            f"an integer of at most {MAX_INTEGER_DIGITS} digits", f"{digits:,} digits"
        )
    return int(number)


def coerce_value(field: OutputField, value: object) -> Value:
    """Normalises a value given in YAML (a demo's output): native numbers and booleans, or text.

    Raises:
        ValueError: As :func:`read_value`.
    """
    if isinstance(value, bool):
        if field.type == "boolean":
            return value
        if field.type in ("text", "enum"):
            return read_value(field, CANONICAL_TRUE if value else CANONICAL_FALSE)
        raise ValueError(f"expected {expected(field)}, found {value!r}")
    if isinstance(value, (int, float)) and field.type in ("number", "integer"):
        number = Decimal(str(value))
        if field.type == "integer":
            if number != number.to_integral_value():
                raise ValueError(f"expected {expected(field)}, found {value!r}")
            return _bounded_int(number, str(value))
        return number
    if isinstance(value, (int, float)) and field.type in ("text", "enum"):
        return read_value(field, str(value))
    if isinstance(value, str):
        return read_value(field, value)
    raise ValueError(f"expected {expected(field)}, found {type(value).__name__} {value!r}")


def json_value(field: OutputField, value: Value) -> object:
    """The JSON form of a normalised value (a Decimal becomes an int or a float)."""
    if field.type == "number":
        assert isinstance(value, Decimal)
        if value == value.to_integral_value() and abs(value) < 10**15:
            return int(value)
        return float(value)
    return value


def json_schema(field: OutputField) -> dict[str, object]:
    """The JSON Schema (Draft 2020-12) of one value of ``field`` in its JSON form."""
    schema: dict[str, object]
    if field.type == "number":
        schema = {"type": "number"}
    elif field.type == "integer":
        schema = {"type": "integer"}
    elif field.type == "boolean":
        schema = {"type": "boolean"}
    elif text_answers(field):
        # The item's options decide; the request's own schema lists them (grammars/ folder).
        schema = {"type": "string"}
    elif field.type == "enum":
        schema = {"type": "string", "enum": list(field.choices)}
    else:
        # No minLength: xgrammar (mlc-ai/xgrammar#800) then rejects valid strings holding
        # \n or \"; the JSON reader reports an empty text value as malformed instead.
        schema = {"type": "string"}
    if field.description:
        schema["description"] = field.description
    return schema


def plain_decimal(text: str) -> bool:
    """Whether ``Decimal(text)``, where it reads ``text`` at all, reads it as :func:`read_value`
    reads a number: ASCII, at most :data:`MAX_INTEGER_DIGITS` long, without thousands
    separators, currency or underscores, and finite (every text ``Decimal`` reads as infinite
    or NaN, ``inf``, ``Infinity``, ``NaN``, ``sNaN`` in any case, has an ``n``). Texts joined
    pass only if each of them would: a number column is checked at once."""
    return (
        text.isascii()
        and len(text) <= MAX_INTEGER_DIGITS
        and "," not in text
        and "$" not in text
        and "_" not in text
        and "n" not in text
        and "N" not in text
    )


def value_reader(field: OutputField) -> Callable[[str], Value]:
    """A reader for one field, equal to ``read_value(field, ·)`` but faster on plain forms.

    The fast forms are those ``Decimal``/``int`` read as :func:`read_value` would (``18``,
    ``-3.5``, ``18.``), and the exact words of a boolean or enum in any case; anything else
    (``1,234``, ``$18``, the unicode minus …) goes through :func:`read_value`. The answer
    parser calls this for every value, so it matters; the tests check it agrees with
    :func:`read_value` on everything the grammar fragments accept.
    """
    t = field.type
    if t == "text":
        return str
    if text_answers(field):
        return lambda text: read_value(field, text)
    if t == "number":

        def read_number(text: str) -> Value:
            if plain_decimal(text):
                try:
                    return Decimal(text)
                except InvalidOperation:
                    pass
            return read_value(field, text)

        return read_number
    if t == "integer":

        def read_integer(text: str) -> Value:
            if text.isascii() and text.lstrip("+-").isdigit() and len(text) <= MAX_INTEGER_DIGITS:
                return int(text)
            return read_value(field, text)

        return read_integer
    words: dict[str, Value] = {}
    if t == "boolean":
        words.update({w: True for w in TRUE_WORDS})
        words.update({w: False for w in FALSE_WORDS})
    elif t == "enum":
        for alias, choice in reversed(field.aliases):
            words[alias.lower()] = choice
        for c in reversed(field.choices):
            words[c.lower()] = c

    def read_word(text: str) -> Value:
        hit = words.get(text.lower())
        return hit if hit is not None else read_value(field, text)

    return read_word
