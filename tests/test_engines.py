"""Every export of every example spec and strategy, in the engines that constrain decoding.

``answer.gbnf``, ``answer.schema.json`` and the portable ``answer.regex`` are compiled by
xgrammar (the structured-output backend of vLLM and SGLang); the regex and the schema also by
outlines-core. Each must accept the canonical outputs written from the spec's own
demonstrations (text with line breaks and quotes included, for the JSON form) and reject
outputs that break the format. The Python parse regex is not for engines: it is checked to be
refused by them, so that the two files cannot be confused.
"""

from __future__ import annotations

import json
from pathlib import Path

import outlines_core
import pytest
import xgrammar
from export_samples import (
    CASES,
    SPECS,
    CharVocabulary,
    demo_answers,
    grammar_of,
    invalid_outputs,
    task_of,
    valid_output,
    xgrammar_accepts,
)
from grammar_reading import answer_json
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.grammar.items import ParsedItem, Span
from promptc.ir import Task


def _json_valid(task: Task, g: AnswerGrammar) -> list[str]:
    answers, questions = demo_answers(task, g.n_items)
    items = [
        ParsedItem(i, dict(a), Span(0, 0, None), {}, questions[i - 1])  # type: ignore[arg-type]
        for i, a in enumerate(answers, 1)
    ]
    out = [json.dumps(answer_json(g, items))]
    if any(f.type.name == "text" for f in g.fields):
        # mlc-ai/xgrammar#800: strings holding \n or \" were rejected under minLength.
        tricky = [
            {k: ('a "quoted"\nline' if _is_text(g, k) else v) for k, v in a.items()}
            for a in answers
        ]
        items = [
            ParsedItem(i, t, Span(0, 0, None), {}, questions[i - 1])  # type: ignore[arg-type]
            for i, t in enumerate(tricky, 1)
        ]
        out.append(json.dumps(answer_json(g, items)))
    return out


def _is_text(g: AnswerGrammar, name: str) -> bool:
    return any(f.name == name and f.type.name == "text" for f in g.fields)


def _json_invalid(task: Task, g: AnswerGrammar) -> list[str]:
    good = json.loads(_json_valid(task, g)[0])
    bad = ["{}", json.dumps(good) + " extra"]
    if not g.kind.one_item:
        bad.append(json.dumps({"answers": good["answers"][:-1]}))
    return bad


def _ids(cases: list[tuple[Path, str]]) -> list[str]:
    return [f"{s.stem}-{k}" for s, k in cases]


@pytest.mark.parametrize(("spec", "kind"), CASES, ids=_ids(CASES))
def test_gbnf_in_xgrammar(spec: Path, kind: str) -> None:
    task, g = grammar_of(spec, kind)
    grammar = xgrammar.Grammar.from_ebnf(g.gbnf)
    for text in [valid_output(task, g)]:
        assert xgrammar_accepts(grammar, text), text
    for text in invalid_outputs(task, g):
        assert not xgrammar_accepts(grammar, text), text
    if kind == "auto-demo":
        _, questions = demo_answers(task, g.n_items)
        pinned = xgrammar.Grammar.from_ebnf(g.gbnf_for(questions))
        assert xgrammar_accepts(pinned, valid_output(task, g))
        other = list(reversed(questions))
        if other != questions:
            assert not xgrammar_accepts(
                xgrammar.Grammar.from_ebnf(g.gbnf_for(other)), valid_output(task, g)
            )


@pytest.mark.parametrize(("spec", "kind"), CASES, ids=_ids(CASES))
def test_portable_regex_in_xgrammar_and_outlines(spec: Path, kind: str) -> None:
    task, g = grammar_of(spec, kind)
    valid, invalid = [valid_output(task, g)], invalid_outputs(task, g)
    grammar = xgrammar.Grammar.from_regex(g.portable_regex)
    chars = CharVocabulary(valid + invalid)
    index = outlines_core.Index(g.portable_regex, chars.vocab)
    for text in valid:
        assert xgrammar_accepts(grammar, text), text
        assert chars.accepts(index, text), text
    for text in invalid:
        assert not xgrammar_accepts(grammar, text), text
        assert not chars.accepts(index, text), text
    if kind == "auto-demo":
        _, questions = demo_answers(task, g.n_items)
        pinned = g.portable_regex_for(questions)
        assert xgrammar_accepts(xgrammar.Grammar.from_regex(pinned), valid[0])
        assert chars.accepts(outlines_core.Index(pinned, chars.vocab), valid[0])


@pytest.mark.parametrize(("spec", "kind"), CASES, ids=_ids(CASES))
def test_json_schema_in_xgrammar_and_outlines(spec: Path, kind: str) -> None:
    task, g = grammar_of(spec, kind)
    schema = json.dumps(g.json_schema)
    assert "minLength" not in schema
    grammar = xgrammar.Grammar.from_json_schema(schema)
    valid, invalid = _json_valid(task, g), _json_invalid(task, g)
    regex = outlines_core.json_schema.build_regex_from_schema(schema)
    chars = CharVocabulary(valid + invalid)
    index = outlines_core.Index(regex, chars.vocab)
    for text in valid:
        assert xgrammar_accepts(grammar, text), text
        assert chars.accepts(index, text), text
    for text in invalid:
        assert not xgrammar_accepts(grammar, text), text


def test_the_parse_regex_is_not_for_engines() -> None:
    """The Python regex (named groups, lookaheads, atomic groups) is refused by xgrammar's
    regex front end: it is for parsing only, under a name that says so."""
    _, g = grammar_of(SPECS[0], "batch")
    assert g.parse_regex is not None and "(?P<" in g.parse_regex
    with pytest.raises(Exception):  # noqa: B017 - xgrammar's own error type
        xgrammar.Grammar.from_regex(g.parse_regex)
    assert set(g.files()) >= {"answer.regex", "answer.parse.regex"}
    for construct in ("(?P<", "(?=", "(?!", "(?>", "(?i:", "\\Z"):
        assert construct not in g.portable_regex


def test_each_item_of_a_request_admits_its_own_options() -> None:
    """CommonsenseQA: c01 has five options, c02 four; the request's GBNF (as ``run`` sends it)
    admits (e) for the first and not for the second."""
    from promptc.grammar.answer import item_choices

    task = task_of(next(s for s in SPECS if s.stem == "commonsense-qa"), "batch")
    g = build_grammar(task, 2, "batch")
    choices = item_choices(task, ["c01", "c02"])
    assert choices == [{"answer": list("abcde")}, {"answer": list("abcd")}]
    grammar = xgrammar.Grammar.from_ebnf(g.gbnf_for(item_choices=choices))
    ok = "A[1]: Sun. So the answer is (e).\nA[2]: Shoes. So the answer is (d)."
    assert xgrammar_accepts(grammar, ok)
    assert not xgrammar_accepts(grammar, ok.replace("(d)", "(e)"))
    assert xgrammar_accepts(xgrammar.Grammar.from_ebnf(g.gbnf), ok.replace("(d)", "(e)"))
