"""Every engine export of every example spec and strategy, in llguidance: vLLM's ``guidance``
structured-output backend.

``answer.schema.json`` (as vLLM compiles it, white space flexible, and compact), the portable
``answer.regex`` and ``answer.gbnf`` (through llguidance's GBNF front end), with each
Auto-Demo request's pinned forms, must compile and accept the canonical outputs written from
the spec's own demonstrations, and reject outputs that break the format. Outputs are fed
byte by byte through a byte-level tokenizer built here (no tokenizer is downloaded):
accepted means every byte was allowed and the matcher may stop there. ``answer.lark`` is a
parsing grammar for Python's lark (lookaheads in its terminals) and is checked to be refused,
as the parse regex is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import ClassVar

import pytest
from export_samples import (
    CASES,
    IDS,
    SPECS,
    demo_answers,
    grammar_of,
    invalid_outputs,
    task_of,
    valid_output,
)
from llguidance import LLMatcher, LLTokenizer, TokenizerWrapper, grammar_from
from promptc import markers
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.grammar.items import ParsedItem, Span
from promptc.ir import Task, Value


class ByteTokenizer:
    """A tokenizer of one token per byte (0–255) and an end-of-sequence token, in the shape
    ``llguidance.TokenizerWrapper`` reads."""

    eos_token_id = 256
    bos_token_id = None
    # llguidance spells special tokens with a leading 0xFF byte.
    tokens: ClassVar[list[bytes]] = [bytes([b]) for b in range(256)] + [b"\xff<eos>"]
    special_token_ids: ClassVar[list[int]] = [256]

    def __call__(self, text: str | bytes) -> list[int]:
        return list(text if isinstance(text, bytes) else text.encode("utf-8"))


TOKENIZER = LLTokenizer(TokenizerWrapper(ByteTokenizer()))


def matcher(grammar: str) -> LLMatcher:
    m = LLMatcher(TOKENIZER, grammar, log_level=0)
    assert not m.is_error(), m.get_error()
    return m


def accepts(grammar: str, text: str) -> bool:
    """Whether the grammar allows every byte of ``text`` and then the end of the output."""
    m = matcher(grammar)
    if not m.consume_tokens(list(text.encode("utf-8"))) or m.is_error():
        return False
    return bool(m.is_accepting()) and bool(m.consume_token(ByteTokenizer.eos_token_id))


def json_texts(task: Task, g: AnswerGrammar, compact: bool) -> tuple[list[str], list[str]]:
    """Valid JSON answers (one with a text value holding a line break and quotes) and invalid
    ones (empty, extra text after it, an item short)."""
    answers, questions = demo_answers(task, g.n_items)
    separators = (",", ":") if compact else (", ", ": ")

    def dump(values: list[Mapping[str, Value]]) -> str:
        items = [
            ParsedItem(i, dict(a), Span(0, 0, None), {}, questions[i - 1])  # type: ignore[arg-type]
            for i, a in enumerate(values, 1)
        ]
        return json.dumps(g.to_json(items), separators=separators)

    texts = {f.name for f in g.fields if f.type.name == "text"}
    tricky = [{k: ('a "quoted"\nline' if k in texts else v) for k, v in a.items()} for a in answers]
    valid = [dump(answers)] + ([dump(tricky)] if texts else [])
    good = json.loads(valid[0])
    invalid = ["{}", valid[0] + " extra"]
    if not g.kind.one_item:
        invalid.append(json.dumps({"answers": good["answers"][:-1]}, separators=separators))
    return valid, invalid


@pytest.mark.parametrize(("spec", "kind"), CASES, ids=IDS)
def test_json_schema_in_guidance(spec: Path, kind: str) -> None:
    task, g = grammar_of(spec, kind)
    schema = json.dumps(g.json_schema)
    # vLLM's guidance backend: white space flexible unless any white space is disabled.
    for flexible in (True, False):
        grammar = LLMatcher.grammar_from_json_schema(
            schema, defaults={"whitespace_flexible": flexible}
        )
        valid, invalid = json_texts(task, g, compact=not flexible)
        for text in valid:
            assert accepts(grammar, text), text
        for text in invalid:
            assert not accepts(grammar, text), text
        if kind == "auto-demo":  # each request's own questions pinned, as run sends it
            _, questions = demo_answers(task, g.n_items)
            pinned = LLMatcher.grammar_from_json_schema(
                json.dumps(g.json_schema_for(questions)),
                defaults={"whitespace_flexible": flexible},
            )
            assert accepts(pinned, valid[0])
            other = list(reversed(questions))
            if other != questions:
                wrong = LLMatcher.grammar_from_json_schema(
                    json.dumps(g.json_schema_for(other)),
                    defaults={"whitespace_flexible": flexible},
                )
                assert not accepts(wrong, valid[0])


#: Each engine export read by llguidance: its grammar kind, the shared text, the pinned text.
FORMS = {
    "regex": (lambda g: g.portable_regex, lambda g, q: g.portable_regex_for(q)),
    "gbnf": (lambda g: g.gbnf, lambda g, q: g.gbnf_for(q)),
}


@pytest.mark.parametrize("form", sorted(FORMS))
@pytest.mark.parametrize(("spec", "kind"), CASES, ids=IDS)
def test_engine_exports_in_guidance(spec: Path, kind: str, form: str) -> None:
    """The portable regex and the GBNF: the valid output accepted, every broken one refused;
    in Auto-Demo, the form pinned to the questions accepts them and refuses others."""
    shared, pinned = FORMS[form]
    task, g = grammar_of(spec, kind)
    grammar = grammar_from(form, shared(g))
    assert accepts(grammar, valid_output(task, g))
    for text in invalid_outputs(task, g):
        assert not accepts(grammar, text), text
    if kind == "auto-demo":
        _, questions = demo_answers(task, g.n_items)
        assert accepts(grammar_from(form, pinned(g, questions)), valid_output(task, g))
        other = list(reversed(questions))
        if other != questions:
            assert not accepts(grammar_from(form, pinned(g, other)), valid_output(task, g))


def test_each_item_of_a_request_admits_its_own_options_in_guidance() -> None:
    """CommonsenseQA: the request's GBNF (as ``run`` sends it) admits (e) for the item with
    five options and not for the one with four."""
    from promptc.grammar.answer import item_choices

    task = task_of(next(s for s in SPECS if s.stem == "commonsense-qa"), "batch")
    g = build_grammar(task, 2, "batch")
    grammar = grammar_from("gbnf", g.gbnf_for(item_choices=item_choices(task, ["c01", "c02"])))
    ok = "A[1]: Sun. So the answer is (e).\nA[2]: Shoes. So the answer is (d)."
    assert accepts(grammar, ok)
    assert not accepts(grammar, ok.replace("(d)", "(e)"))


def test_the_parsing_grammars_are_not_for_engines() -> None:
    """``answer.lark`` and ``answer.parse.regex`` carry lookaheads for Python's parsers:
    llguidance refuses them, so that they cannot pass for the engine exports."""
    _, g = grammar_of(SPECS[0], "batch")
    assert g.parse_regex is not None
    for grammar in (grammar_from("lark", g.lark), grammar_from("regex", g.parse_regex)):
        m = LLMatcher(TOKENIZER, grammar, log_level=0)
        assert m.is_error()


def test_the_byte_tokenizer_is_what_the_tests_think() -> None:
    """Acceptance is judged on bytes: a prefix is not accepted, the text is, one byte more
    is not, and non-ASCII text is bytes too."""
    grammar = grammar_from("regex", "A\\[1\\]: (?:yes|no|é)")
    assert accepts(grammar, "A[1]: yes") and accepts(grammar, "A[1]: é")
    assert not accepts(grammar, "A[1]: ye") and not accepts(grammar, "A[1]: yes!")


@pytest.mark.parametrize("stem", ["nli", "mnli"])
def test_pinned_questions_with_quotes_and_line_breaks_in_guidance(stem: str) -> None:
    """The pinned Auto-Demo forms spell each question as literal text, escapes included:
    quotes, backslashes, tabs, line breaks inside a value, non-ASCII (``mnli``: one line per
    input, indexed)."""
    task, g = grammar_of(next(s for s in SPECS if s.stem == stem), "auto-demo")
    answers, _ = demo_answers(task, g.n_items)
    values = ['Say "hi" \\ bye', "a\tb é\nsecond line"]
    labels = [markers.field_label(f) for f in task.inputs]
    question = "\n".join(f"{lab}: {v}" for lab, v in zip(labels, values))
    questions = [question] * g.n_items
    text = g.write_output(answers, questions)
    for pinned in (
        grammar_from("gbnf", g.gbnf_for(questions)),
        grammar_from("regex", g.portable_regex_for(questions)),
    ):
        assert accepts(pinned, text)
        assert not accepts(pinned, text.replace("bye", "by", 1))
