"""Answer grammars: golden files, round trips through both parsers, and error messages.

Regenerate the golden grammars after an intended change with::

    python scripts/regen_goldens.py
"""

from __future__ import annotations

import dataclasses
import random
import re
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

import pytest
from grammar_reading import lark_items, parse_answer, regex_items, strict_items
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from promptc import ir, markers
from promptc.errors import GrammarError, OutputParseError
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.grammar.items import AnswerMismatch
from promptc.spec.answer_format import parse_answer_format, write_answer
from promptc.strategies import strategy
from promptc.values import value_type

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden_grammars"
KINDS: tuple[str, ...] = ("single", "few-shot", "batch", "auto-demo")


def make_task(
    name: str,
    fmt: str,
    outputs: Sequence[ir.OutputField],
    inputs: Sequence[str] = ("question",),
    kind: str = "batch",
) -> ir.Task:
    return ir.Task(
        name=name,
        description="",
        instruction="",
        inputs=tuple(ir.InputField(i) for i in inputs),
        outputs=tuple(outputs),
        answer_format=parse_answer_format(fmt),
        demos=(),
        data=None,
        items=(),
        strategy=ir.StrategySpec(strategy(kind), 8, ir.Selection()),
        model=ir.ModelConfig("m"),
        templates=(),
        spec=ir.SourceFile("spec.yaml", "0" * 64),
        spec_dir=".",
    )


MATH = make_task(
    "math",
    "{reasoning} The answer is {answer}.",
    [
        ir.OutputField("reasoning", value_type("text")),
        ir.OutputField("answer", value_type("number")),
    ],
)
SENTIMENT = make_task(
    "sentiment",
    "{sentiment}",
    [
        ir.OutputField(
            "sentiment",
            value_type("enum"),
            choices=("positive", "negative", "neutral"),
            aliases=(("pos", "positive"), ("neg", "negative"), ("mixed", "neutral")),
        )
    ],
    inputs=("review",),
)
BOOLEAN = make_task(
    "reading",
    "{answer}",
    [ir.OutputField("answer", value_type("boolean"))],
    inputs=("passage", "question"),
)
NLI = make_task(
    "nli",
    "{label}",
    [
        ir.OutputField(
            "label", value_type("enum"), choices=("entailment", "neutral", "contradiction")
        )
    ],
    inputs=("premise", "hypothesis"),
)
COUNT = make_task(
    "count",
    "Count: {count}; sure: {sure} ({why})",
    [
        ir.OutputField("count", value_type("integer")),
        ir.OutputField("sure", value_type("boolean")),
        ir.OutputField("why", value_type("text")),
    ],
)
CLAIM = make_task(
    "claim",
    "{claim} because {reason}",
    [ir.OutputField("claim", value_type("text")), ir.OutputField("reason", value_type("text"))],
)
TASKS = {t.name: t for t in (MATH, SENTIMENT, BOOLEAN, NLI, COUNT, CLAIM)}


# ---------------------------------------------------------------------------- golden grammars


def golden_cases() -> list[tuple[str, ir.Task, str, int]]:
    cases = []
    for name in ("math", "sentiment", "reading", "nli"):
        for kind in KINDS:
            cases.append((name, TASKS[name], kind, 1 if kind in ("single", "few-shot") else 3))
    return cases


def _all_golden_cases() -> list[tuple[str, ir.Task, str, int]]:
    # The example specs' grammars are golden files of their builds (tests/golden, see
    # tests/test_golden.py); these are the hand-made tasks' grammars at three items.
    return golden_cases()


def grammar_golden_files() -> dict[Path, str]:
    """Every golden grammar file, by its path under ``tests/golden_grammars`` (for the
    regeneration command, ``scripts/regen_goldens.py``)."""
    out: dict[Path, str] = {}
    for name, task, kind, n in _all_golden_cases():
        for file, text in build_grammar(task, n, kind).files().items():
            out[Path(name) / f"{kind}-{n}" / file] = text
    return out


@pytest.mark.parametrize(
    ("name", "task", "kind", "n"),
    _all_golden_cases(),
    ids=[f"{c[0]}-{c[2]}-{c[3]}" for c in _all_golden_cases()],
)
def test_golden_grammar_is_current(name: str, task: ir.Task, kind: str, n: int) -> None:
    folder = GOLDEN / name / f"{kind}-{n}"
    files = build_grammar(task, n, kind).files()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in sorted(folder.glob("answer.*"))}
    assert on_disk == files, (
        f"golden grammar {folder} is stale; regenerate: python scripts/regen_goldens.py "
        "(then review git diff)"
    )


def test_no_orphan_goldens() -> None:
    expected = {f"{c[0]}/{c[2]}-{c[3]}" for c in _all_golden_cases()}
    on_disk = {f"{p.parent.name}/{p.name}" for p in GOLDEN.glob("*/*") if p.is_dir()}
    assert on_disk == expected


def test_exports_are_deterministic() -> None:
    a = build_grammar(MATH, 5, "auto-demo").files()
    b = build_grammar(MATH, 5, "auto-demo").files()
    assert a == b
    assert sorted(a) == [
        "answer.gbnf",
        "answer.lark",
        "answer.parse.regex",
        "answer.regex",
        "answer.schema.json",
    ]


# ---------------------------------------------------------------------------- canonical outputs


def canonical_output(
    task: ir.Task,
    kind: str,
    answers: Sequence[dict[str, ir.Value]],
    questions: Sequence[dict[str, str]] = (),
) -> str:
    """An output written with the writer's own constants, as a well-behaved model would."""
    bodies = [write_answer(task.answer_format, task.outputs, a).strip(ASCII_WS) for a in answers]
    if kind in ("single", "few-shot"):
        return bodies[0]
    lines = []
    for i, body in enumerate(bodies, start=1):
        if kind == "auto-demo":
            q = markers.question_text(task.inputs, questions[i - 1])
            lines.append(markers.question_marker(i) + markers.MARKER_SEPARATOR + q)
        lines.append(markers.answer_marker(i) + markers.MARKER_SEPARATOR + body)
    return markers.ITEM_SEPARATOR.join(lines)


ASCII_WS = " \t\n\r\x0b\x0c"


def one_line_text(min_size: int = 1) -> st.SearchStrategy[str]:
    alphabet = st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="\n\r\x85\u2028\u2029"
    )
    return (
        st.text(alphabet=alphabet, min_size=min_size, max_size=40)
        .map(lambda s: s.strip(ASCII_WS))
        .filter(lambda s: len(s) >= min_size)
    )


def value_strategy(field: ir.OutputField, multiline: bool) -> st.SearchStrategy[ir.Value]:
    if field.type.name == "number":
        return st.decimals(
            allow_nan=False, allow_infinity=False, min_value=-(10**9), max_value=10**9, places=3
        ).map(lambda d: d.normalize() if d != 0 else Decimal(0))
    if field.type.name == "integer":
        return st.integers(min_value=-(10**9), max_value=10**9)
    if field.type.name == "boolean":
        return st.booleans()
    if field.type.name == "enum":
        return st.sampled_from(field.choices)
    if multiline:
        return st.lists(one_line_text(), min_size=1, max_size=3).map("\n".join)
    return one_line_text()


def answers_strategy(
    task: ir.Task, n: int, multiline: bool
) -> st.SearchStrategy[list[dict[str, ir.Value]]]:
    fields = {f.name: value_strategy(f, multiline) for f in task.outputs}
    return st.lists(st.fixed_dictionaries(fields), min_size=n, max_size=n)


def questions_strategy(task: ir.Task, n: int) -> st.SearchStrategy[list[dict[str, str]]]:
    names = [f.name for f in task.inputs]
    # A question is shown without its surrounding white space (Unicode's, as str.strip
    # takes it: markers.question_text), and is never blank once so shown.
    text = one_line_text().filter(lambda s: s.strip() != "")
    return st.lists(st.fixed_dictionaries({name: text for name in names}), min_size=n, max_size=n)


def assert_parses_to(
    g: AnswerGrammar,
    output: str,
    answers: Sequence[dict[str, ir.Value]],
    questions: Sequence[dict[str, str]],
    task: ir.Task,
) -> None:
    fast = regex_items(g, output)
    slow = lark_items(g, output)
    assert fast == slow
    assert [item.index for item in fast] == list(range(1, len(answers) + 1))

    fields = {f.name: f for f in g.fields}
    for item, want in zip(fast, answers):
        assert dict(item.values) == {k: v for k, v in want.items() if k in fields}
        for name, span in item.field_spans.items():
            # The span holds exactly the text the value was read from, at its line:col.
            assert (
                fields[name].type.read(fields[name], output[span.start_offset : span.end_offset])
                == item.values[name]
            )
            line_start = output.rfind("\n", 0, span.start_offset) + 1
            assert (span.start.line, span.start.col) == (
                output.count("\n", 0, span.start_offset) + 1,
                span.start_offset - line_start + 1,
            )
        text = output[item.span.start_offset : item.span.end_offset]
        assert text.strip(ASCII_WS) == text
    if g.kind.repeats_questions:
        for item, q in zip(fast, questions):
            assert item.question == markers.question_text(task.inputs, q)


# Every size 1–64 would build 64 LALR tables per task (~0.5 s each at 64): sample the range.
BATCH_SIZES = st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 16, 31, 64])


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_round_trip(task_name: str, kind: str, data: st.DataObject) -> None:
    task = TASKS[task_name]
    n = 1 if kind in ("single", "few-shot") else data.draw(BATCH_SIZES, label="n")
    g = build_grammar(task, n, kind)
    answers = data.draw(answers_strategy(task, n, g.blueprint.multiline), label="answers")
    if task is CLAIM:  # a claim that says "because" would end there: the documented rule
        assume(not any(re.search(r"\sbecause\s", str(a["claim"]), re.IGNORECASE) for a in answers))
    questions = (
        data.draw(questions_strategy(task, n), label="questions") if kind == "auto-demo" else []
    )
    output = canonical_output(task, kind, answers, questions)
    written = [markers.question_text(task.inputs, q) for q in questions]
    assert g.write_output(answers, written) == output  # the grammar's own writer agrees
    assert_parses_to(g, output, answers, questions, task)
    assert strict_items(g, output) == regex_items(g, output)


def test_reasoning_may_say_the_answer_is() -> None:
    """The LAST 'The answer is' followed by a number and the end of the answer wins."""
    g = build_grammar(MATH, 2, "batch")
    out = (
        "A[1]: First I thought the answer is 12. The answer is 14, no. The answer is 18.\n"
        "A[2]: So The answer is $1,234."
    )
    items = strict_items(g, out)
    assert items == lark_items(g, out)
    assert items[0].values == {
        "reasoning": "First I thought the answer is 12. The answer is 14, no.",
        "answer": Decimal(18),
    }
    assert items[1].values == {"reasoning": "So", "answer": Decimal(1234)}
    span = items[0].field_spans["answer"]
    assert (span.start.line, span.start.col, out[span.start_offset : span.end_offset]) == (
        1,
        77,
        "18",
    )


def test_slack_the_parser_allows() -> None:
    g = build_grammar(MATH, 2, "batch")
    out = "\n  A[1]:x   the ANSWER is 3.  \n\n   A[2]:\tY The answer is -2.5.\n\n"
    items = strict_items(g, out)
    assert items == lark_items(g, out)
    assert [i.values["answer"] for i in items] == [Decimal(3), Decimal("-2.5")]
    assert (items[1].span.start.line, items[1].span.start.col) == (4, 4)


def test_auto_demo_multi_line_question() -> None:
    g = build_grammar(NLI, 2, "auto-demo")
    out = (
        "Q[1]: Premise: A man sleeps.\nHypothesis: He is awake.\nA[1]: contradiction\n"
        "Q[2]: Premise: Rain.\nHypothesis: Wet.\nA[2]: Entailment"
    )
    items = strict_items(g, out)
    assert items == lark_items(g, out)
    assert items[0].question == "Premise: A man sleeps.\nHypothesis: He is awake."
    assert items[1].values == {"label": "entailment"}
    assert items[1].question_span is not None and items[1].question_span.start.line == 4


def test_single_answer_spans_lines() -> None:
    g = build_grammar(MATH, 1, "single")
    out = "Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.\nThe answer is 14."
    (item,) = strict_items(g, out)
    assert item.values == {
        "reasoning": "Step 1: 3 + 4 = 7.\nStep 2: 7 * 2 = 14.",
        "answer": Decimal(14),
    }
    assert item == lark_items(g, out)[0]


# ---------------------------------------------------------------------------- errors, word for word

ERRORS = [
    (
        "math",
        "batch",
        2,
        "A[1]: x The answer is five.\nA[2]: y The answer is 3.",
        "<output>:1:23: expected answer: a number such as 18, -3.5 or 1,234, found 'five.'",
    ),
    (
        "math",
        "batch",
        2,
        "A[1]: x The answer is 5.\nA[3]: y The answer is 3.",
        "<output>:2:1: expected 'A[2]:', found 'A[3]: y The answer is 3.'",
    ),
    (
        "math",
        "batch",
        2,
        "A[1]: x The answer is 5.",
        "<output>:1:25: expected a new line and 'A[2]:', found end of output",
    ),
    (
        "math",
        "batch",
        2,
        "A[1]: x The answer is 5\nA[2]: y The answer is 3.",
        "<output>:1:24: expected '.', found end of the answer",
    ),
    (
        "math",
        "batch",
        2,
        "A[1]: x The answer is 5.\nA[2]: y The answer is 3.\nA[3]: z",
        "<output>:3:1: expected end of output, found 'A[3]: z'",
    ),
    (
        "math",
        "batch",
        1,
        "Sure! Here are the answers:\nA[1]: x The answer is 5.",
        "<output>:1:1: expected 'A[1]:', found 'Sure! Here are the answers:'",
    ),
    (
        "math",
        "batch",
        1,
        "A[1]: I am not sure.",
        "<output>:1:21: expected 'The answer is', found end of the answer",
    ),
    (
        "math",
        "single",
        1,
        "x The answer is -3.5",
        "<output>:1:21: expected '.', found end of the answer",
    ),
    (
        "sentiment",
        "batch",
        2,
        "A[1]: positive\nA[2]: meh",
        "<output>:2:7: expected sentiment: one of 'positive', 'negative', 'neutral', found 'meh'",
    ),
    (
        "reading",
        "auto-demo",
        1,
        "Q[1]: Passage: p\nQuestion: q\nA[1]: maybe",
        "<output>:3:7: expected answer: yes or no (or true/false), found 'maybe'",
    ),
    (
        "nli",
        "auto-demo",
        2,
        "Q[1]: Premise: p\nHypothesis: h\nA[1]: neutral\nA[2]: neutral",
        "<output>:4:1: expected 'Q[2]:', found 'A[2]: neutral'",
    ),
    (
        "count",
        "batch",
        1,
        "A[1]: Count: 3; sure: yes",
        "<output>:1:26: expected '(', found end of the answer",
    ),
]


@pytest.mark.parametrize(("task", "kind", "n", "output", "message"), ERRORS, ids=range(len(ERRORS)))
def test_strict_error_messages(task: str, kind: str, n: int, output: str, message: str) -> None:
    g = build_grammar(TASKS[task], n, kind)
    with pytest.raises(OutputParseError) as info:
        strict_items(g, output)
    assert info.value.format() == message
    with pytest.raises(OutputParseError):
        regex_items(g, output)


ANSWER_ERRORS = [
    (
        "math",
        "I think The answer is five.",
        22,
        ["answer: a number such as 18, -3.5 or 1,234"],
        "'five.'",
    ),
    ("math", "hello", 5, ["'The answer is'"], "end of the answer"),
    ("math", "x The answer is 18. extra", 19, ["end of the answer"], "' extra'"),
    ("sentiment", "great", 0, ["sentiment: one of 'positive', 'negative', 'neutral'"], "'great'"),
]


@pytest.mark.parametrize(("task", "body", "offset", "expected", "found"), ANSWER_ERRORS)
def test_parse_answer_mismatch(
    task: str, body: str, offset: int, expected: list[str], found: str
) -> None:
    g = build_grammar(TASKS[task], 3, "batch")
    with pytest.raises(AnswerMismatch) as info:
        parse_answer(g, body)
    assert (info.value.offset, info.value.expected, info.value.found) == (offset, expected, found)
    assert isinstance(info.value, ValueError)


def test_parse_answer_reads_aliases_and_case() -> None:
    g = build_grammar(SENTIMENT, 3, "batch")
    assert parse_answer(g, " POS ") == {"sentiment": "positive"}
    assert parse_answer(g, "Mixed") == {"sentiment": "neutral"}
    m = build_grammar(MATH, 1, "batch")
    assert parse_answer(m, "a. The answer is $1,234.") == {
        "reasoning": "a.",
        "answer": Decimal(1234),
    }


def test_answer_regex_has_a_group_per_field() -> None:
    import re

    g = build_grammar(COUNT, 2, "batch")
    m = re.fullmatch(g.answer_regex, "Count: 1,200; sure: No (I counted twice)")
    assert m is not None
    assert m.groupdict() == {"count": "1,200", "sure": "No", "why": "I counted twice"}


GRAMMAR_ERRORS = [
    (
        "{answer} {nope}",
        (
            "spec.yaml:1:10: answer_format: answer_format names '{nope}', which is "
            "not an output; expected one of answer, reasoning"
        ),
    ),
    (
        "{answer} {answer}",
        (
            "spec.yaml:1:10: answer_format: answer_format uses '{answer}' twice; "
            "expected each output at most once"
        ),
    ),
    (
        "just text",
        (
            "spec.yaml:1:1: answer_format: answer_format has no {field} placeholder; "
            "expected at least one output in it"
        ),
    ),
]


@pytest.mark.parametrize(("fmt", "message"), GRAMMAR_ERRORS)
def test_grammar_errors(fmt: str, message: str) -> None:
    from promptc.errors import Location

    task = make_task("x", "{answer}", MATH.outputs)
    task = dataclasses.replace(
        task, answer_format=parse_answer_format(fmt, Location("spec.yaml", 1, 1))
    )
    with pytest.raises(GrammarError) as info:
        build_grammar(task, 2, "batch")
    assert info.value.format() == message


def test_item_count_must_fit_the_strategy() -> None:
    with pytest.raises(GrammarError, match="a single answer grammar needs exactly 1 item, not 3"):
        build_grammar(MATH, 3, "single")
    with pytest.raises(GrammarError, match="at least 1 item, not 0"):
        build_grammar(MATH, 0, "batch")


# ---------------------------------------------------------------------------- fuzz: paths agree

MUTATIONS = [
    "",
    " ",
    "\n",
    "A",
    "[",
    "]",
    ":",
    ".",
    "1",
    "The answer is ",
    "A[2]: ",
    "Q[1]: ",
    "é",
    "\t",
]


@pytest.mark.parametrize("task_name", ["math", "nli", "count"])
@pytest.mark.parametrize("kind", ["batch", "auto-demo", "single"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_regex_and_lark_agree_on_mangled_outputs(
    task_name: str, kind: str, data: st.DataObject
) -> None:
    task = TASKS[task_name]
    n = 1 if kind == "single" else data.draw(st.integers(1, 4))
    g = build_grammar(task, n, kind)
    answers = data.draw(answers_strategy(task, n, g.blueprint.multiline))
    questions = data.draw(questions_strategy(task, n)) if kind == "auto-demo" else []
    out = canonical_output(task, kind, answers, questions)
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(out)))
        cut = data.draw(st.integers(0, 3))
        out = out[:pos] + data.draw(st.sampled_from(MUTATIONS)) + out[pos + cut :]
    try:
        fast = regex_items(g, out)
    except OutputParseError:
        fast = None
    try:
        slow = lark_items(g, out)
    except OutputParseError as e:
        slow = None
        assert e.location is not None and e.location.line >= 1
    assert fast == slow


def test_no_catastrophic_backtracking() -> None:
    import time

    g = build_grammar(MATH, 8, "auto-demo")
    rng = random.Random(0)
    junk = "".join(rng.choice("A[1]: The answer is 5.\n Q ") for _ in range(20_000))
    start = time.perf_counter()
    for text in (junk, "A[1]: " + "x The answer is 5. " * 2000, "Q[1]: q\n" * 3000):
        with pytest.raises(OutputParseError):
            strict_items(g, text)
    assert time.perf_counter() - start < 10


def test_text_before_text_ends_at_the_first_delimiter() -> None:
    task = make_task(
        "summary",
        "{title}: {summary}",
        [
            ir.OutputField("title", value_type("text")),
            ir.OutputField("summary", value_type("text")),
        ],
    )
    g = build_grammar(task, 1, "batch")
    (item,) = strict_items(g, "A[1]: Budget: draft: v2")
    assert item.values == {"title": "Budget", "summary": "draft: v2"}
    assert item == lark_items(g, "A[1]: Budget: draft: v2")[0]


def test_text_before_text_ends_at_the_first_spaced_delimiter() -> None:
    g = build_grammar(CLAIM, 1, "batch")
    out = "A[1]: It rains because clouds because physics"
    (item,) = strict_items(g, out)
    assert item.values == {"claim": "It rains", "reason": "clouds because physics"}
    assert item == lark_items(g, out)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_a_line_break_in_the_format(kind: str) -> None:
    task = make_task(
        "two-lines",
        "{reasoning}\nAnswer: {answer}",
        [
            ir.OutputField("reasoning", value_type("text")),
            ir.OutputField("answer", value_type("integer")),
        ],
    )
    n = 1 if kind in ("single", "few-shot") else 2
    g = build_grammar(task, n, kind)
    answers = [{"reasoning": "r one", "answer": 5}, {"reasoning": "r two", "answer": -7}][:n]
    out = g.write_output(answers, ["q1", "q2"][:n])
    assert out.count("\n") == {1: 1, 2: 3}[n] + (2 if kind == "auto-demo" else 0)
    items = strict_items(g, out)
    assert items == lark_items(g, out)
    assert [dict(i.values) for i in items] == answers


def test_enum_without_usable_choices() -> None:
    task = make_task("e", "{x}", [ir.OutputField("x", value_type("enum"), choices=("a", ""))])
    with pytest.raises(GrammarError, match="has no choices or an empty one"):
        build_grammar(task, 1, "batch")


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("kind", ["single", "batch", "auto-demo"])
@settings(max_examples=40, deadline=None)
@given(
    text=st.text(
        alphabet=st.sampled_from(list("AQ[]1:2 .\n\tyesnoThe answer is$,-é")), max_size=300
    )
)
def test_any_text_gives_items_or_a_parse_error(task_name: str, kind: str, text: str) -> None:
    g = build_grammar(TASKS[task_name], 1 if kind == "single" else 2, kind)
    try:
        strict_items(g, text)
    except OutputParseError as e:
        assert e.location is not None and e.location.line >= 1 and e.location.col >= 1
    try:
        parse_answer(g, text)
    except AnswerMismatch as e:
        assert 0 <= e.offset <= len(text) and e.expected


@pytest.mark.parametrize("task_name", sorted(TASKS))
@pytest.mark.parametrize("kind", ["single", "batch", "auto-demo"])
def test_long_garbage_is_refused_quickly(task_name: str, kind: str) -> None:
    import time

    g = build_grammar(TASKS[task_name], 1 if kind == "single" else 8, kind)
    rng = random.Random(1)
    pieces = ["A[1]: ", "Q[1]: ", "The answer is ", "5", ". ", "yes", " because ", "x", "\n", ": "]
    junk = "".join(rng.choice(pieces) for _ in range(10_000))
    start = time.perf_counter()
    for text in (junk, junk.replace("\n", " "), "A[1]: " + "word " * 20_000):
        # Free text swallows a lot (claim/reason is two text fields): what matters is that
        # every call ends soon, with items or promptc's own error.
        try:
            strict_items(g, text)
        except OutputParseError:
            pass
        try:
            parse_answer(g, text + "\x00")
        except AnswerMismatch:
            pass
    assert time.perf_counter() - start < 20


def test_two_text_fields_refuse_an_endless_line() -> None:
    """Where one free text ends and the next begins costs time quadratic in the line."""
    import time

    task = make_task(
        "claim2",
        "{claim} because {reason}.",
        [ir.OutputField("claim", value_type("text")), ir.OutputField("reason", value_type("text"))],
    )
    g = build_grammar(task, 2, "batch")
    line = "A[2]: x" + " because y" * 8000
    start = time.perf_counter()
    with pytest.raises(OutputParseError) as info:
        strict_items(g, "A[1]: a because b.\n" + line)
    assert info.value.format() == (
        "<output>:2:1: expected an answer of at most 20,000 characters, found 80,007 characters"
    )
    with pytest.raises(AnswerMismatch):
        parse_answer(g, line)
    assert time.perf_counter() - start < 1
    assert strict_items(g, "A[1]: a because b.\nA[2]: c because d because e.")[1].values == {
        "claim": "c",
        "reason": "d because e",
    }


def test_an_answer_holding_too_many_separators_for_its_text_fields_is_refused_at_once() -> None:
    """With k text fields, matching backtracks through every way the separators an answer
    holds can be shared among them (``comb(m, k - 1)``): 4 fields and 200 separators took
    27 s for 601 characters. Such an answer is refused before it is matched, in both modes;
    an answer whose separators stand between its fields alone is read up to 20,000
    characters."""
    import time

    from promptc.parse.output import parse_output

    names = "abcd"
    task = make_task(
        "four",
        " | ".join("{" + n + "}" for n in names) + " = {n}.",
        [ir.OutputField(n, value_type("text")) for n in names]
        + [ir.OutputField("n", value_type("number"))],
    )
    request = {"id": "r1", "kind": "batch", "item_ids": ["x1", "x2"]}
    g = build_grammar(task, 2, "batch")
    line = "A[1]: " + " | " * 400 + "x"
    start = time.perf_counter()
    with pytest.raises(OutputParseError) as info:
        strict_items(g, line + "\nA[2]: a | b | c | d = 5.")
    assert info.value.format() == (
        "<output>:1:1: expected an answer whose 4 text fields hold fewer '|', found 400 of "
        "them in 1,207 characters"
    )
    first, second = parse_output(task, request, line + "\nA[2]: a | b | c | d = 5.")
    assert (first.status, second.status) == ("malformed", "ok")
    assert first.expected == ("an answer whose 4 text fields hold fewer '|'",)
    assert time.perf_counter() - start < 1
    long = "A[1]: " + " | ".join(["word " * 900] * 4) + " = 7."
    (ok, _) = parse_output(task, request, long + "\nA[2]: a | b | c | d = 5.")
    assert (ok.status, ok.values["n"]) == ("ok", 7)


def _with_slack(output: str, kind: str, rng: random.Random) -> str:
    """What a careless but well-meaning model adds: spaces, blank lines, another case."""
    lines = output.split("\n")
    out = []
    for line in lines:
        for marker in ("A[", "Q["):
            if line.startswith(marker):
                head, _, rest = line.partition(": ")
                line = head + ":" + rng.choice(["", " ", "  ", "\t"]) + rest
        line = line.replace(" The answer is ", rng.choice([" the answer is ", "  The ANSWER  is "]))
        out.append(rng.choice(["", "  "]) + line + rng.choice(["", " ", "\t"]))
        if kind != "single" and rng.random() < 0.3:
            out.append("")
    return rng.choice(["", "\n", "  \n"]) + "\n".join(out) + rng.choice(["", "\n", "\n\n  "])


@pytest.mark.parametrize("task_name", ["math", "sentiment", "count"])
@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_slack_keeps_the_values(task_name: str, kind: str, data: st.DataObject) -> None:
    task = TASKS[task_name]
    n = data.draw(st.integers(1, 6))
    g = build_grammar(task, n, kind)
    alphabet = st.characters(min_codepoint=0x21, max_codepoint=0x7E)
    words = st.text(alphabet=alphabet, min_size=1, max_size=8)
    text = st.lists(words, min_size=1, max_size=5).map(" ".join)
    fields = {
        f.name: (text if f.type.name == "text" else value_strategy(f, False)) for f in task.outputs
    }
    answers = data.draw(st.lists(st.fixed_dictionaries(fields), min_size=n, max_size=n))
    inputs = {f.name: text for f in task.inputs}
    questions = data.draw(st.lists(st.fixed_dictionaries(inputs), min_size=n, max_size=n))
    clean = canonical_output(task, kind, answers, questions)
    messy = _with_slack(clean, kind, random.Random(data.draw(st.integers(0, 2**32))))
    got = strict_items(g, messy)
    assert got == lark_items(g, messy)
    want = strict_items(g, clean)
    assert [dict(i.values) for i in got] == [dict(i.values) for i in want]


def test_a_decorated_marker_is_not_question_text() -> None:
    """'**A[2]:**' ends the question (and is then reported), it is not swallowed by it."""
    g = build_grammar(MATH, 2, "auto-demo")
    out = "Q[1]: q1\nA[1]: a The answer is 1.\nQ[2]: q2\n**A[2]:** b The answer is 2."
    with pytest.raises(OutputParseError) as info:
        strict_items(g, out)
    assert info.value.format() == (
        "<output>:4:1: expected 'A[2]:', found '**A[2]:** b The answer is 2.'"
    )
    missing = "Q[1]: q1\nQ[2]: q2\nA[2]: b The answer is 2."
    with pytest.raises(OutputParseError) as info:
        strict_items(g, missing)
    assert info.value.format() == "<output>:2:1: expected 'A[1]:', found 'Q[2]: q2'"
