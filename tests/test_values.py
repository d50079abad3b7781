"""Value types: canonical writing, normalised reading, and agreement with grammars/ fragments."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc.ir import OutputField
from promptc.values import (
    coerce_value,
    json_value,
    read_value,
    value_type,
    write_value,
)
from promptc.values.dialects import fragment_terminals

NUMBER = OutputField("n", value_type("number"))
INTEGER = OutputField("i", value_type("integer"))
BOOLEAN = OutputField("b", value_type("boolean"))
ENUM = OutputField(
    "label",
    value_type("enum"),
    choices=("positive", "negative", "very positive"),
    aliases=(("pos", "positive"),),
)
TEXT = OutputField("t", value_type("text"))

READ_TABLE = [
    (NUMBER, "18", Decimal(18)),
    (NUMBER, "-3.5", Decimal("-3.5")),
    (NUMBER, "1,234", Decimal(1234)),
    (NUMBER, "1,234,567.25", Decimal("1234567.25")),
    (NUMBER, "$18", Decimal(18)),
    (NUMBER, "-$18", Decimal(-18)),
    (NUMBER, "€2.50", Decimal("2.50")),
    (NUMBER, "18.", Decimal(18)),
    (NUMBER, ".5", Decimal("0.5")),
    (NUMBER, "\u22127", Decimal(-7)),
    (NUMBER, "0.1", Decimal("0.1")),  # exactly, not the float 0.1
    (INTEGER, "18", 18),
    (INTEGER, "1,234", 1234),
    (INTEGER, "$18", 18),
    (INTEGER, "18.0", 18),
    (INTEGER, "-3.", -3),
    (BOOLEAN, "yes", True),
    (BOOLEAN, "No", False),
    (BOOLEAN, "TRUE", True),
    (BOOLEAN, "false", False),
    (ENUM, "positive", "positive"),
    (ENUM, "NEGATIVE", "negative"),
    (ENUM, "Very Positive", "very positive"),
    (ENUM, "pos", "positive"),
    (TEXT, "anything at all", "anything at all"),
]


@pytest.mark.parametrize(("field", "text", "value"), READ_TABLE, ids=lambda x: str(x))
def test_read_value_normalises(field: OutputField, text: str, value: object) -> None:
    got = read_value(field, text)
    assert got == value and type(got) is type(value)


@pytest.mark.parametrize(("field", "text", "value"), READ_TABLE, ids=lambda x: str(x))
def test_fragment_accepts_what_read_value_reads(
    field: OutputField, text: str, value: object
) -> None:
    assert re.fullmatch(field.type.regex(field, False), text)


REJECT_TABLE = [
    (NUMBER, "abc", "expected a number such as 18, -3.5 or 1,234, found 'abc'"),
    (NUMBER, "", "expected a number such as 18, -3.5 or 1,234, found ''"),
    (INTEGER, "18.5", "expected an integer such as 18 or -3, found '18.5'"),
    (BOOLEAN, "maybe", "expected yes or no (or true/false), found 'maybe'"),
    (ENUM, "neutral", "expected one of 'positive', 'negative', 'very positive', found 'neutral'"),
]


@pytest.mark.parametrize(("field", "text", "message"), REJECT_TABLE, ids=lambda x: str(x))
def test_read_value_rejects_with_message(field: OutputField, text: str, message: str) -> None:
    with pytest.raises(ValueError) as info:
        read_value(field, text)
    assert str(info.value) == message
    if text:
        assert not re.fullmatch(field.type.regex(field, False), text)


WRITE_TABLE = [
    (NUMBER, Decimal("1234.50"), "1234.5"),
    (NUMBER, Decimal("-0"), "0"),
    (NUMBER, Decimal("1E+3"), "1000"),
    (NUMBER, Decimal(18), "18"),
    (INTEGER, -12, "-12"),
    (BOOLEAN, True, "yes"),
    (BOOLEAN, False, "no"),
    (ENUM, "very positive", "very positive"),
]


@pytest.mark.parametrize(("field", "value", "text"), WRITE_TABLE, ids=lambda x: str(x))
def test_write_value_is_canonical(field: OutputField, value: object, text: str) -> None:
    assert write_value(field, value) == text  # type: ignore[arg-type]


decimals = st.decimals(
    allow_nan=False, allow_infinity=False, min_value=-(10**12), max_value=10**12, places=4
)


@settings(max_examples=200, deadline=None)
@given(decimals)
def test_number_round_trip_through_its_fragment(value: Decimal) -> None:
    text = write_value(NUMBER, value)
    assert re.fullmatch(fragment_terminals("number.lark")["NUMBER"], text)
    assert read_value(NUMBER, text) == value


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(10**15), max_value=10**15), st.booleans(), st.booleans())
def test_integer_with_separators_and_currency(value: int, commas: bool, dollar: bool) -> None:
    digits = f"{abs(value):,}" if commas else str(abs(value))
    text = ("-" if value < 0 else "") + ("$" if dollar else "") + digits
    assert re.fullmatch(fragment_terminals("integer.lark")["INTEGER"], text)
    assert read_value(INTEGER, text) == value
    assert read_value(NUMBER, text) == Decimal(value)


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["yes", "no", "true", "false"]), st.lists(st.booleans(), min_size=5, max_size=5)
)
def test_boolean_any_case(word: str, upper: list[bool]) -> None:
    text = "".join(c.upper() if u else c for c, u in zip(word, upper))
    assert re.fullmatch(BOOLEAN.type.regex(BOOLEAN, False), text)
    assert read_value(BOOLEAN, text) is (word in ("yes", "true"))


def test_coerce_value_from_yaml() -> None:
    assert coerce_value(NUMBER, 18) == Decimal(18)
    assert coerce_value(NUMBER, 0.5) == Decimal("0.5")
    assert coerce_value(INTEGER, 3) == 3
    assert coerce_value(BOOLEAN, True) is True
    assert coerce_value(BOOLEAN, "Yes") is True
    assert coerce_value(ENUM, "POS") == "positive"
    with pytest.raises(ValueError, match="expected an integer"):
        coerce_value(INTEGER, 2.5)
    with pytest.raises(ValueError, match="expected a number"):
        coerce_value(NUMBER, True)


def test_json_forms() -> None:
    assert json_value(NUMBER, Decimal(18)) == 18
    assert json_value(NUMBER, Decimal("2.5")) == 2.5
    assert json_value(BOOLEAN, False) is False
    assert ENUM.type.json_schema(ENUM) == {
        "type": "string",
        "enum": ["positive", "negative", "very positive"],
    }
    assert TEXT.type.json_schema(TEXT) == {"type": "string"}  # no minLength: mlc-ai/xgrammar#800


@pytest.mark.parametrize("field", [NUMBER, INTEGER, BOOLEAN, ENUM, TEXT], ids=lambda f: f.type)
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_fast_reader_equals_read_value_on_what_the_grammar_admits(
    field: OutputField, data: st.DataObject
) -> None:
    from promptc.values import value_reader

    text = data.draw(st.from_regex(field.type.regex(field, False), fullmatch=True))
    got = value_reader(field)(text)
    want = read_value(field, text)
    assert got == want and type(got) is type(want)
    if isinstance(got, Decimal):
        assert str(got) == str(want)  # the same digits, not only the same number


def test_every_fragment_compiles_with_lark() -> None:
    expected = {
        "number.lark": {"NUMBER"},
        "integer.lark": {"INTEGER"},
        "boolean.lark": {"BOOLEAN"},
        "enum.lark": {"ENUM"},
        "text.lark": {
            "TEXT",
            "TEXT_WORDS",
            "TEXT_LAZY",
            "TEXT_MULTILINE",
            "TEXT_MULTILINE_WORDS",
            "TEXT_MULTILINE_LAZY",
        },
    }
    for file, names in expected.items():
        assert set(fragment_terminals(file)) == names
    # enum.lark's example has the generated shape: case-insensitive, longest choice first.
    assert re.fullmatch(fragment_terminals("enum.lark")["ENUM"], "Very Positive")
    assert ENUM.type.regex(ENUM, False) == fragment_terminals("enum.lark")["ENUM"]


def test_text_fragment_never_takes_outer_white_space() -> None:
    one_line = fragment_terminals("text.lark")["TEXT"]
    assert re.fullmatch(one_line, "a b")
    assert not re.fullmatch(one_line, " a")
    assert not re.fullmatch(one_line, "a ")
    assert not re.fullmatch(one_line, "a\nb")
    assert re.fullmatch(fragment_terminals("text.lark")["TEXT_MULTILINE"], "a\nb")


def test_a_number_past_640_digits_before_its_point_is_refused_on_every_path() -> None:
    """Its exact text in results.jsonl would not read back as JSON in Python (whose json reads
    a number's integer digits with int, limited to 4,300 digits by default)."""
    import pytest
    from promptc.ir import OutputField
    from promptc.values import MAX_INTEGER_DIGITS, ValueOutOfBounds, read_value, value_reader

    field = OutputField("answer", value_type("number"))
    assert read_value(field, "9" * MAX_INTEGER_DIGITS + ".5") is not None
    assert read_value(field, "0" * 2000 + "7") == 7
    for read in (lambda t: read_value(field, t), value_reader(field)):
        with pytest.raises(ValueOutOfBounds, match="at most 640 digits before its point"):
            read("1" * (MAX_INTEGER_DIGITS + 1))


@given(st.from_regex(r"[0-9]{1,30}", fullmatch=True), st.sampled_from(["", " ", "\t", " \n"]))
def test_plain_digits_read_as_the_number_pattern_reads_them(digits: str, pad: str) -> None:
    """Plain ASCII digits skip the number pattern: the same value, as Decimal and int."""
    number = OutputField("n", value_type("number"))
    integer = OutputField("k", value_type("integer"))
    assert (
        read_value(number, pad + digits + pad)
        == read_value(number, digits + ".")
        == Decimal(digits)
    )
    assert read_value(integer, pad + digits) == read_value(integer, "+" + digits) == int(digits)
