"""The malformed-spec table: every file in tests/malformed/ is a spec with its exact diagnostics.

Each case ``tests/malformed/<name>.yaml`` ends with ``# expect: <diagnostic>`` comment lines, one
per diagnostic, in the order promptc prints them (``file:line:col: key.path: message (hint)``).
Files starting with ``_`` are helpers the cases refer to (bases to extend, data files).
"""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from promptc.errors import PromptcErrors
from promptc.ir import OutputField
from promptc.spec import schema_errors
from promptc.spec.lower import compile_spec
from promptc.spec.validate import MESSAGES
from promptc.values import value_type

MALFORMED = Path(__file__).parent / "malformed"
EXPECT = "# expect: "


def _cases() -> list[Path]:
    return sorted(p for p in MALFORMED.glob("*.yaml") if not p.name.startswith("_"))


def _expected(path: Path) -> list[str]:
    return [
        line[len(EXPECT) :]
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.startswith(EXPECT)
    ]


def test_the_table_is_large() -> None:
    assert len(_cases()) >= 30


@pytest.mark.parametrize("case", _cases(), ids=lambda p: p.stem)
def test_malformed_spec_diagnostics(case: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = _expected(case)
    assert expected, f"{case.name} has no '# expect:' lines"
    monkeypatch.chdir(MALFORMED)
    with pytest.raises(PromptcErrors) as info:
        compile_spec(case.name, max_errors=None)
    assert info.value.format().splitlines() == expected


def test_messages_table_has_no_trailing_periods() -> None:
    for code, message in {**MESSAGES, **schema_errors.MESSAGES}.items():
        assert not message.endswith("."), code


def test_every_diagnostic_code_is_documented() -> None:
    from promptc.spec import load, rows

    doc = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    codes = set(MESSAGES) | set(schema_errors.MESSAGES) | set(load.MESSAGES) | set(rows.MESSAGES)
    codes |= {"answer-format-syntax", "empty-answer-format", "think-in-format"}  # answer_format.py
    codes |= {"ambiguous-separator"}  # a warning of answer_format.py
    assert sorted(c for c in codes if f"`{c}`" not in doc) == []


def test_schema_is_draft_2020_12_with_a_description_for_every_key() -> None:
    from jsonschema import Draft202012Validator

    spec_schema = schema_errors.schema()
    Draft202012Validator.check_schema(spec_schema)
    assert spec_schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    undocumented: list[str] = []

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if "description" not in sub and "$ref" not in sub:
                    undocumented.append(f"{where}.{name}")
            for key, sub in node.items():
                if key not in ("if", "then"):  # conditions, not declarations
                    walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for i, sub in enumerate(node):
                walk(sub, f"{where}[{i}]")

    walk(spec_schema, "$")
    assert undocumented == []


def test_example_specs_are_valid() -> None:
    specs = sorted((Path(__file__).parent.parent / "specs").glob("*.yaml"))
    assert specs
    for spec in specs:
        compile_spec(spec)


def test_the_examples_in_the_spec_reference_are_valid(tmp_path: Path) -> None:
    import re

    from promptc.errors import ErrorCollector
    from promptc.spec.load import load_spec
    from promptc.spec.validate import validate

    doc = (Path(__file__).parent.parent / "docs" / "spec.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```yaml\n(.*?)```", doc, flags=re.DOTALL)
    full = next(b for b in blocks if b.startswith("promptc: 1"))
    variant = next(b for b in blocks if b.startswith("extends: gsm8k.yaml"))
    (tmp_path / "gsm8k.yaml").write_text(full, encoding="utf-8")
    (tmp_path / "variant.yaml").write_text(variant, encoding="utf-8")
    for name in ("gsm8k.yaml", "variant.yaml"):
        c = ErrorCollector()
        validate(load_spec(tmp_path / name), c)
        assert c.errors == [], name


def test_a_demo_answer_on_two_lines_is_refused_where_answers_take_one_line(tmp_path: Path) -> None:
    """A batch or Auto-Demo prompt would show the model a solved example its own parser reads
    as broken (a stray second line, or a marker on it); one-item strategies hold several lines."""
    specs = Path(__file__).parent.parent / "specs"
    text = (specs / "math.yaml").read_text(encoding="utf-8")
    old = "reasoning: 105 pages at 15 pages a day take 105 / 15 = 7 days."
    assert old in text
    shutil.copytree(specs / "data", tmp_path / "data")
    spec = tmp_path / "m.yaml"
    new = 'reasoning: "105 pages\\nA[2]: at 15 pages a day take 105 / 15 = 7 days."'
    spec.write_text(text.replace(old, new), encoding="utf-8")
    for kind in ("batch", "auto-demo"):
        with pytest.raises(PromptcErrors) as raised:
            compile_spec(spec, overrides={("strategy", "kind"): kind})
        (e,) = raised.value.errors
        assert (e.code, e.path) == ("demo-line-break", ("demos", 1, "reasoning"))
        assert e.message == (
            "demo value for output 'reasoning' holds a line break, but strategy "
            f"{kind} writes each answer on one line: the prompt would show the model an "
            "answer its parser reads as broken"
        )
    for kind in ("single", "few-shot"):
        compile_spec(spec, overrides={("strategy", "kind"): kind})


@pytest.mark.parametrize(
    ("line", "code", "message"),
    [
        (
            "  n: 3",
            "model-n",
            (
                "model.n 3 asks for 3 answers per request, but promptc keeps one answer per "
                "request: the others would be paid for and lost"
            ),
        ),
        (
            "  stream: true",
            "model-stream",
            "model.stream true asks for each answer in pieces, but promptc reads each answer whole",
        ),
        ("  n: 1", None, None),
        ("  stream: false", None, None),
    ],
)
def test_parameters_that_would_lose_answers_are_refused(
    tmp_path: Path, line: str, code: str | None, message: str | None
) -> None:
    """n > 1: the server bills every choice and promptc stored the first; stream: every
    request failed as 'not JSON'."""
    specs = Path(__file__).parent.parent / "specs"
    shutil.copytree(specs / "data", tmp_path / "data")
    text = (specs / "sentiment.yaml").read_text(encoding="utf-8")
    assert "  max_tokens: 256\n" in text
    spec = tmp_path / "s.yaml"
    spec.write_text(text.replace("  max_tokens: 256\n", f"  max_tokens: 256\n{line}\n"), "utf-8")
    if code is None:
        compile_spec(spec)
        return
    with pytest.raises(PromptcErrors) as raised:
        compile_spec(spec)
    (e,) = raised.value.errors
    assert (e.code, e.message) == (code, message)


def test_a_demo_longer_than_a_constrained_model_may_write_is_a_warning(tmp_path: Path) -> None:
    """The GBNF grammar bounds a one-line text value at 400 characters: a demo reasoning of
    521 asks for an answer a constrained model cannot write."""
    from promptc.api import spec_warnings

    specs = Path(__file__).parent.parent / "specs"
    text = (specs / "math.yaml").read_text(encoding="utf-8")
    old = "reasoning: 105 pages at 15 pages a day take 105 / 15 = 7 days."
    long = "First " + "we count again carefully, " * 19 + "so 105 / 15 = 7 days."
    shutil.copytree(specs / "data", tmp_path / "data")
    spec = tmp_path / "m.yaml"
    spec.write_text(text.replace(old, f"reasoning: {long}"), encoding="utf-8")
    task = compile_spec(spec, overrides={("strategy", "kind"): "batch"})
    (w,) = [w for w in spec_warnings(task) if w.code == "demo-past-gbnf-cap"]
    assert w.format() == (
        f"{spec}:17:5: demos[1].reasoning: warning: demo value for output 'reasoning' is 521 "
        "characters, but a model constrained by the GBNF grammar (run --grammar gbnf, "
        "vllm-batch bodies) writes at most 400 in an answer of strategy batch: it cannot "
        "answer as the demo shows (shorten it: the cap keeps a constrained model from "
        "writing on without end)"
    )
    # A one-item answer may hold 2,000 characters.
    single = compile_spec(spec, overrides={("strategy", "kind"): "few-shot"})
    assert [w for w in spec_warnings(single) if w.code == "demo-past-gbnf-cap"] == []


@pytest.mark.parametrize(
    ("fmt", "types", "warned"),
    [
        ("{w},{h}", ("integer", "integer"), True),
        ("{w},{h}", ("number", "text"), True),
        ("{w}.{h}", ("number", "number"), True),
        ("{w}.{h}", ("integer", "number"), False),  # an integer has no decimal point
        ("{w}, {h}", ("integer", "integer"), False),  # a number's comma has no space after
        ("{w};{h}", ("number", "number"), False),
        ("{w},{h}", ("text", "integer"), False),
        ("{w},{h}", ("integer", "boolean"), False),
    ],
)
def test_a_separator_a_number_may_read_as_its_own_is_a_warning(
    fmt: str, types: tuple[str, str], warned: bool
) -> None:
    """'{w},{h}' over two integers: '1,234,567' reads two ways (the parser takes 1,234 and
    567 without a word); check says so at the literal."""
    from promptc.spec.answer_format import ambiguity_warnings, parse_answer_format

    outputs = [OutputField(n, value_type(t)) for n, t in zip(("w", "h"), types)]
    found = ambiguity_warnings(parse_answer_format(fmt), outputs)
    assert [w.code for w in found] == (["ambiguous-separator"] if warned else [])
    if warned:
        assert found[0].location is not None and found[0].location.col == 4
        assert "'1" + fmt[3] + "234" + fmt[3] + "567' reads two ways" in found[0].message


def test_a_choice_no_answer_could_name_is_refused(tmp_path: Path) -> None:
    """A choice with outer white space (answers are read stripped) was valid, and no answer
    could ever be it."""
    specs = Path(__file__).parent.parent / "specs"
    shutil.copytree(specs / "data", tmp_path / "data")
    spec = tmp_path / "s.yaml"
    text = (specs / "sentiment.yaml").read_text(encoding="utf-8")
    spec.write_text(
        text.replace("[positive, negative, neutral]", "[positive, negative, 'neutral ']")
    )
    with pytest.raises(PromptcErrors) as raised:
        compile_spec(spec)
    (e,) = [x for x in raised.value.errors if x.code == "choice-space"]
    assert e.message == (
        "choice 'neutral ' starts or ends with white space, which no answer can name (answers "
        "are read without it)"
    )


def test_a_choice_or_alias_holding_what_no_answer_line_carries_is_refused(
    tmp_path: Path,
) -> None:
    """A tab, a second space or a NUL inside a choice passed check: the grammar then forced
    the model to write what the reader refused (or, for a NUL, build ended in exit 3)."""
    specs = Path(__file__).parent.parent / "specs"
    shutil.copytree(specs / "data", tmp_path / "data")
    spec = tmp_path / "s.yaml"
    text = (specs / "sentiment.yaml").read_text(encoding="utf-8")
    spec.write_text(
        text.replace(
            "[positive, negative, neutral]",
            '["posi\\ttive", "nega  tive", "neu\\0tral", "very good"]',
        ),
        encoding="utf-8",
    )
    with pytest.raises(PromptcErrors) as raised:
        compile_spec(spec)
    found = [(e.message) for e in raised.value.errors if e.code == "choice-character"]
    tail = "holds a control character or white space other than single spaces between words, "
    tail += "which no answer can name"
    assert found == [
        f"choice 'posi\\ttive' {tail}",
        f"choice 'nega  tive' {tail}",
        f"choice 'neu\\x00tral' {tail}",
    ]


def test_a_json_gold_number_in_exponent_form_is_read(tmp_path: Path) -> None:
    """2.5e-07 and 1e+20, as json.dumps writes them, are numbers: they were refused, quoted
    as '2.5E-7', a text the file does not hold."""
    (tmp_path / "g.jsonl").write_text(
        '{"id": "1", "q": "q", "n": 2.5e-07}\n{"id": "2", "q": "q", "n": 1e+20}\n',
        encoding="utf-8",
    )
    spec = tmp_path / "g.yaml"
    spec.write_text(
        "promptc: 1\nname: g\ninstruction: Answer.\ninputs:\n  q: {type: text}\n"
        "outputs:\n  n: {type: number}\ndata: {path: g.jsonl, id: id, fields: {q: q}, "
        "gold: {n: n}}\nstrategy: {kind: single}\nmodel: {name: m}\n",
        encoding="utf-8",
    )
    task = compile_spec(spec)
    assert [i.gold["n"] for i in task.items] == [Decimal("2.5E-7"), Decimal("1E+20")]
