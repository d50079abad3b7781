"""The grammar exports: GBNF in two engines, JSON Schema, regex, and a real model.

Each GBNF grammar meets two engines, each for what it alone can check:

- **xgrammar** (the structured-output backend of vLLM and SGLang) is fed whole outputs,
  character by character (``export_samples.xgrammar_accepts``), so "accepted" means that a
  model constrained by the grammar may write exactly that text and stop: every canonical output
  is accepted and read back by the parser; of mangled outputs, whatever is accepted the strict
  parser reads; the item count and order are forced; a pinned Auto-Demo grammar accepts exactly
  its own questions.
- **llama.cpp** itself, through the embedded server promptc ships (``llm`` tests, the
  session's ``llm_base_url``): every grammar those checks feed to xgrammar is parsed by
  llama.cpp's own GBNF parser (``llm_server.gbnf_error``: the server answers 400 for a grammar
  it cannot parse), and SmolLM2-135M constrained by the GBNF answers every item of a batch.
  Its server cannot be fed a given text, hence xgrammar for that.
"""

from __future__ import annotations

import json
import random
from decimal import Decimal
from pathlib import Path

import pytest
from export_samples import xgrammar_accepts
from grammar_reading import answer_json, strict_items
from llm_server import gbnf_error
from promptc import ir
from promptc.errors import OutputParseError
from promptc.grammar.answer import AnswerGrammar, build_grammar
from test_grammar import KINDS, TASKS, canonical_output

#: (GBNF, output text) pairs, each with what the grammar must say of the text.
Case = tuple[str, str]

SHAPES = [
    (name, kind, n)
    for name in sorted(TASKS)
    for kind in KINDS
    for n in ((1,) if kind in ("single", "few-shot") else (1, 3, 8, 64))
]


def accepts(cases: list[Case]) -> list[bool]:
    """Whether a model constrained by each GBNF may write exactly its text (xgrammar)."""
    return [xgrammar_accepts(gbnf, text) for gbnf, text in cases]


@pytest.mark.llm
@pytest.mark.parametrize(("name", "kind", "n"), SHAPES, ids=[f"{a}-{b}-{c}" for a, b, c in SHAPES])
def test_gbnf_is_taken_by_the_llama_server(llm_base_url: str, name: str, kind: str, n: int) -> None:
    assert gbnf_error(llm_base_url, build_grammar(TASKS[name], n, kind).gbnf) is None


def _random_value(field: ir.OutputField, rng: random.Random, multiline: bool) -> ir.Value:
    if field.type.name == "number":
        return Decimal(rng.randint(-(10**6), 10**6)) / Decimal(10 ** rng.randint(0, 3))
    if field.type.name == "integer":
        return rng.randint(-(10**6), 10**6)
    if field.type.name == "boolean":
        return rng.random() < 0.5
    if field.type.name == "enum":
        return rng.choice(field.choices)
    words = ["so", "the answer is 4.", "Step", "3 + 4 = 7,", "é", "naïve", "(x)", "A[2]:", "$5"]
    text = " ".join(rng.choice(words) for _ in range(rng.randint(1, 12)))
    return text.replace(" Step", "\nStep") if multiline else text


def _random_output(
    name: str, kind: str, n: int, rng: random.Random
) -> tuple[str, list[dict[str, ir.Value]]]:
    task = TASKS[name]
    g = build_grammar(task, n, kind)
    answers = [
        {f.name: _random_value(f, rng, g.blueprint.multiline) for f in task.outputs}
        for _ in range(n)
    ]
    questions = [
        {f.name: f"{f.name} {rng.randint(1, 99)} is here?" for f in task.inputs} for _ in range(n)
    ]
    return canonical_output(task, kind, answers, questions), answers


def _canonical_cases() -> tuple[list[Case], list[tuple[AnswerGrammar, list[dict[str, ir.Value]]]]]:
    """Three canonical outputs of every shape up to 8 items, with the grammar and answers."""
    rng = random.Random(7)
    cases, expect = [], []
    for name, kind, n in SHAPES:
        if n == 64:
            continue
        g = build_grammar(TASKS[name], n, kind)
        for _ in range(3):
            out, answers = _random_output(name, kind, n, rng)
            cases.append((g.gbnf, out))
            expect.append((g, answers))
    return cases, expect


def test_gbnf_accepts_every_canonical_output_and_the_parser_reads_it() -> None:
    cases, expect = _canonical_cases()
    assert accepts(cases) == [True] * len(cases)
    for (_, out), (g, answers) in zip(cases, expect):
        items = strict_items(g, out)
        assert [dict(i.values) for i in items] == [
            {k: v for k, v in a.items() if k in {f.name for f in g.fields}} for a in answers
        ]


def _mangled_cases() -> tuple[list[Case], list[AnswerGrammar]]:
    """Canonical outputs of up to 3 items with an edit a model might make, and their grammar."""
    rng = random.Random(11)
    cases, grammars = [], []
    edits = ["", " ", "\n", "A[2]: ", "Q[2]: ", ".", "5", "yes", "The answer is ", "neutral"]
    for name, kind, n in SHAPES:
        if n > 3:
            continue
        g = build_grammar(TASKS[name], n, kind)
        for _ in range(6):
            out, _ = _random_output(name, kind, n, rng)
            pos = rng.randint(0, len(out))
            out = out[:pos] + rng.choice(edits) + out[pos + rng.randint(0, 2) :]
            cases.append((g.gbnf, out))
            grammars.append(g)
    return cases, grammars


def test_what_the_gbnf_accepts_the_parser_reads() -> None:
    """Mangled outputs: whenever the GBNF lets a model write one, the strict parser reads it."""
    cases, grammars = _mangled_cases()
    accepted = accepts(cases)
    assert any(accepted) and not all(accepted)
    for ok, g, (_, out) in zip(accepted, grammars, cases):
        if ok:
            strict_items(g, out)  # must not raise


def _count_and_order_cases() -> list[Case]:
    g = build_grammar(TASKS["sentiment"], 3, "batch")
    texts = [
        "A[1]: positive\nA[2]: negative\nA[3]: neutral",
        "A[1]: positive\nA[2]: negative",  # one missing
        "A[1]: positive\nA[3]: negative\nA[2]: neutral",  # out of order
        "A[1]: positive\nA[2]: negative\nA[3]: neutral\nA[4]: neutral",  # one too many
        "A[1]: positive\nA[2]: great\nA[3]: neutral",  # not a choice
    ]
    return [(g.gbnf, t) for t in texts]


def test_gbnf_forces_item_count_and_order() -> None:
    assert accepts(_count_and_order_cases()) == [True, False, False, False, False]


# ---------------------------------------------------------------------------- JSON Schema


@pytest.mark.parametrize(("name", "kind", "n"), SHAPES, ids=[f"{a}-{b}-{c}" for a, b, c in SHAPES])
def test_json_schema_is_valid_and_accepts_parsed_answers(name: str, kind: str, n: int) -> None:
    from jsonschema import Draft202012Validator

    g = build_grammar(TASKS[name], n, kind)
    Draft202012Validator.check_schema(g.json_schema)
    validator = Draft202012Validator(g.json_schema)
    rng = random.Random(n)
    for _ in range(3):
        out, _ = _random_output(name, kind, n, rng)
        doc = answer_json(g, strict_items(g, out))
        assert list(validator.iter_errors(doc)) == []
    if kind in ("batch", "auto-demo"):
        short = {"answers": doc["answers"][:-1]}  # type: ignore[index]
        assert not validator.is_valid(short)
        if n > 1:
            swapped = {"answers": [doc["answers"][1], doc["answers"][0], *doc["answers"][2:]]}  # type: ignore[index]
            assert not validator.is_valid(swapped)
    else:
        assert not validator.is_valid({**doc, "extra": 1})


def test_schema_file_text() -> None:
    files = build_grammar(TASKS["sentiment"], 2, "batch").files("req")
    text = files["req.schema.json"]
    assert text.endswith("}\n") and json.loads(text)["properties"]["answers"]["minItems"] == 2
    assert text == json.dumps(json.loads(text), indent=2) + "\n"


def test_schema_lists_fields_in_answer_format_order() -> None:
    """Constrained decoders emit properties in schema order: reasoning before the answer."""
    g = build_grammar(TASKS["math"], 2, "batch")
    first = g.json_schema["properties"]["answers"]["prefixItems"][0]  # type: ignore[index]
    assert list(first["properties"]) == ["index", "reasoning", "answer"]
    text = g.files()["answer.schema.json"]
    assert text.index('"reasoning"') < text.index('"answer": {')


def test_regex_file_is_the_fast_path() -> None:
    import re

    g = build_grammar(TASKS["math"], 2, "auto-demo")
    pattern = re.compile(g.files()["answer.parse.regex"].rstrip("\n"))
    out, _ = _random_output("math", "auto-demo", 2, random.Random(3))
    assert pattern.fullmatch(out)
    assert not pattern.fullmatch(out + "\nA[3]: x The answer is 1.")


# ---------------------------------------------------------------------------- the real model


def _rendered_requests(spec: str, kind: str, size: int) -> tuple[ir.Task, list[ir.Request]]:
    from promptc.render.renderer import render
    from promptc.select.methods import select
    from promptc.spec.lower import compile_spec

    root = Path(__file__).resolve().parents[1]
    task = compile_spec(
        root / "specs" / spec,
        overrides={("strategy", "kind"): kind, ("strategy", "batch_size"): size},
    )
    requests = [r for r in render(task, select(task)) if len(r.batch.item_ids) == size]
    return task, requests


@pytest.mark.llm
@pytest.mark.parametrize(("spec", "kind"), [("sentiment.yaml", "batch"), ("nli.yaml", "auto-demo")])
def test_smollm2_constrained_by_the_gbnf_answers_every_item(
    llm_base_url: str, spec: str, kind: str
) -> None:
    """SmolLM2-135M under the exported GBNF: a batch of 8 and an Auto-Demo of 8 all parse."""
    import openai

    task, requests = _rendered_requests(spec, kind, 8)
    assert requests, "the example spec has no full request of 8 items"
    g = build_grammar(task, 8, kind)
    assert gbnf_error(llm_base_url, g.gbnf) is None
    client = openai.OpenAI(base_url=llm_base_url, api_key="unused")
    for request in requests[:1]:
        reply = client.chat.completions.create(
            model="smollm2",
            messages=[{"role": m.role, "content": m.content} for m in request.messages],
            temperature=0,
            max_tokens=1500,
            extra_body={"grammar": g.gbnf},
        )
        text = reply.choices[0].message.content or ""
        try:
            items = strict_items(g, text)
        except OutputParseError as e:  # pragma: no cover - the failure is the report
            pytest.fail(f"{e.format()}\n--- output ---\n{text}")
        assert [i.index for i in items] == list(range(1, 9))
        if kind == "auto-demo":
            assert all(i.question for i in items)


# ---------------------------------------------------------------------------- pinned questions

#: Questions a pinned Auto-Demo grammar must spell exactly: quotes, backslashes, line breaks
#: (multi-field questions are joined with "\n"), tabs, other control characters, non-ASCII.
TRICKY_QUESTIONS = [
    'Is "2" > 1? She said: "yes"',
    'C:\\temp\\new \\n is not a line break; \\" neither',
    "premise: a\nhypothesis: b\n\nthird line after a blank one",
    "tab\there, bell \x07, escape \x1b[0m, delete \x7f, carriage\rreturn",
    "naïve café – 数学 ∑ 🙂 \u00a0no-break",
    "# not a comment ::= root | [^x] (y)* {2}",
]


def _pinned_cases(
    name: str, n: int, rng: random.Random
) -> tuple[ir.Task, list[str], list[dict[str, ir.Value]]]:
    from promptc import markers

    task = TASKS[name]
    pool = [
        *TRICKY_QUESTIONS,
        markers.question_text(
            task.inputs,
            {
                f.name: TRICKY_QUESTIONS[k % len(TRICKY_QUESTIONS)]
                for k, f in enumerate(task.inputs)
            },
        ),
    ]
    start = rng.randint(0, 99)
    questions = [pool[(start + i) % len(pool)] for i in range(n)]  # n >= 7: every one
    answers = [{f.name: _random_value(f, rng, False) for f in task.outputs} for _ in range(n)]
    return task, questions, answers


def test_gbnf_for_spells_each_question_as_one_literal() -> None:
    g = build_grammar(TASKS["nli"], 2, "auto-demo")
    gbnf = g.gbnf_for(['Say "hi" \\ bye', "premise: a\nhypothesis: b\tc \x01 é"])
    lines = gbnf.splitlines()
    assert lines[3] == 'item-1 ::= "Q[1]: " "Say \\"hi\\" \\\\ bye" "\\n" "A[1]: " answer'
    assert lines[4] == (
        'item-2 ::= "Q[2]: " "premise: a\\nhypothesis: b\\tc \\x01 é" "\\n" "A[2]: " answer'
    )
    assert "question" not in gbnf.replace("# Answer grammar", "")
    # Everything else is the shared grammar's.
    rest = [x for x in g.gbnf.splitlines() if not x.startswith(("item-", "question"))]
    assert [x for x in lines if not x.startswith("item-")] == rest


def test_gbnf_for_other_kinds_and_wrong_counts() -> None:
    for kind, n in (("single", 1), ("few-shot", 1), ("batch", 3)):
        g = build_grammar(TASKS["math"], n, kind)  # type: ignore[arg-type]
        assert g.gbnf_for([]) == g.gbnf
    g = build_grammar(TASKS["math"], 2, "auto-demo")
    with pytest.raises(ValueError, match=r"^expected 2 question\(s\), got 1$"):
        g.gbnf_for(["one"])
    with pytest.raises(ValueError, match=r"^expected 2 question\(s\), got 3$"):
        g.gbnf_for(["one", "two", "three"])
    with pytest.raises(ValueError, match=r"^expected 2 question\(s\), got a string$"):
        g.gbnf_for("ab")
    assert g.gbnf == build_grammar(TASKS["math"], 2, "auto-demo").gbnf  # shared one unchanged


@pytest.mark.llm
@pytest.mark.parametrize("name", sorted(TASKS))
def test_pinned_gbnf_is_taken_by_the_llama_server(llm_base_url: str, name: str) -> None:
    rng = random.Random(len(name))
    for n in (1, 3, 8):
        task, questions, _ = _pinned_cases(name, n, rng)
        gbnf = build_grammar(task, n, "auto-demo").gbnf_for(questions)
        assert gbnf_error(llm_base_url, gbnf) is None, gbnf


def _pinned_acceptance_cases() -> tuple[list[Case], list[bool]]:
    """Pinned Auto-Demo grammars with outputs of their own questions (accepted) and of other
    ones (refused), and the shared grammar, which admits any question."""
    from promptc import markers

    rng = random.Random(5)
    cases, expect = [], []
    for name in sorted(TASKS):
        for n in (1, 3, 7):
            task, questions, answers = _pinned_cases(name, n, rng)
            g = build_grammar(task, n, "auto-demo")
            pinned = g.gbnf_for(questions)
            out = g.write_output(answers, questions)
            other = list(questions)
            other[-1] = other[-1] + "?"
            swapped = list(reversed(questions))
            own = [
                markers.question_text(task.inputs, {f.name: "What is 2 + 2?" for f in task.inputs})
            ] * n
            cases += [
                (pinned, out),  # the canonical output of its own questions
                (pinned, g.write_output(answers, other)),  # a question changed
                (pinned, g.write_output(answers, own)),  # questions of the model's own
                (g.gbnf, g.write_output(answers, own)),  # which the shared grammar admits
            ]
            expect += [True, False, False, True]
            if swapped != questions:
                cases.append((pinned, g.write_output(answers, swapped)))
                expect.append(False)
    return cases, expect


def test_pinned_gbnf_accepts_exactly_its_own_questions() -> None:
    cases, expect = _pinned_acceptance_cases()
    assert accepts(cases) == expect


@pytest.mark.llm
def test_every_grammar_fed_to_xgrammar_is_taken_by_the_llama_server(llm_base_url: str) -> None:
    """xgrammar's verdicts above are about grammars that llama.cpp itself takes as written."""
    grammars = {
        gbnf
        for cases in (
            _canonical_cases()[0],
            _mangled_cases()[0],
            _count_and_order_cases(),
            _pinned_acceptance_cases()[0],
        )
        for gbnf, _ in cases
    }
    assert len(grammars) > 50  # every shape up to 8 items, every pinned grammar
    assert {g: gbnf_error(llm_base_url, g) for g in sorted(grammars)} == dict.fromkeys(
        sorted(grammars)
    )
