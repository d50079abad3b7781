"""Properties of parse_output: round trips, the grammar's regex = its lark export = the recover
scanner, no input raises or hangs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

import pytest
from grammar_reading import lark_items, regex_items
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from parse_paths import scanner
from promptc import markers
from promptc.ir import Markers, OutputField, Request, Task, Value
from promptc.parse.normalise import normalise_lookalikes
from promptc.parse.output import parse_output
from promptc.parse.results import STATUSES, ItemResult
from promptc.parse.scan import iter_markers, marker_pattern
from promptc.parse.shape import request_shape
from promptc.parse.strict import item_results
from promptc.values import value_type
from test_parse_output import QUESTIONS, canonical, make_request, make_task

_THINK_TAG = re.compile(r"</?think>", re.IGNORECASE)  # as parse/output.py finds them
_MARKER = marker_pattern(markers.QUESTION_PREFIX, markers.ANSWER_PREFIX)

# Zero-width characters at the edges of an answer are dropped in recover mode, as noise.
INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"
KINDS: tuple[str, ...] = ("single", "few-shot", "batch", "auto-demo")
SENTIMENT = OutputField(
    "label",
    value_type("enum"),
    choices=("positive", "negative", "very positive"),
    aliases=(("pos", "positive"),),
)

# One output shape per value type, and formats mixing literals with several fields.
SHAPES: dict[str, tuple[tuple[OutputField, ...], str]] = {
    "number": ((OutputField("answer", value_type("number")),), "{answer}"),
    "integer": ((OutputField("answer", value_type("integer")),), "{answer}"),
    "boolean": ((OutputField("answer", value_type("boolean")),), "{answer}"),
    "enum": ((SENTIMENT,), "{label}"),
    "text": ((OutputField("answer", value_type("text")),), "{answer}"),
    "math": (
        (OutputField("reasoning", value_type("text")), OutputField("answer", value_type("number"))),
        "{reasoning} The answer is {answer}.",
    ),
    "label-confidence": (
        (
            SENTIMENT,
            OutputField("confidence", value_type("integer")),
            OutputField("why", value_type("text")),
        ),
        "Label: {label}; confidence {confidence}% because {why}",
    ),
}

_TASKS: dict[tuple[str, str, int], tuple[Task, Request]] = {}


def task_for(shape: str, kind: str, n: int) -> tuple[Task, Request]:
    key = (shape, kind, n)
    if key not in _TASKS:
        outputs, fmt = SHAPES[shape]
        n = 1 if kind in ("single", "few-shot") else n
        task = make_task(kind, n, outputs, fmt)
        _TASKS[key] = (task, make_request(task))
    return _TASKS[key]


# A text value as a canonical answer holds it: no line breaks in batch/auto-demo, no white
# space at its ends, nothing that reads as a marker, no thinking tag (docs/parsing.md: what a
# `</think>` closes, or an opening `<think>` that never closes, is a reasoning model's thinking).
TEXT_CHARS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\n\r")


def one_line_text() -> st.SearchStrategy[str]:
    return (
        st.text(TEXT_CHARS, min_size=1, max_size=30)
        .map(str.strip)
        .filter(
            lambda t: (
                t != ""
                and _MARKER.search(normalise_lookalikes(t)[0]) is None
                and not t[-1].isspace()
                and not t[0].isspace()
                and t.strip(INVISIBLE) == t
                and _THINK_TAG.search(t) is None
            )
        )
    )


def value_for(field: OutputField) -> st.SearchStrategy[Value]:
    if field.type.name == "number":
        return st.decimals(
            allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9
        ).map(lambda d: d.normalize())
    if field.type.name == "integer":
        return st.integers(-(10**12), 10**12)
    if field.type.name == "boolean":
        return st.booleans()
    if field.type.name == "enum":
        return st.sampled_from(field.choices)
    return one_line_text()


@st.composite
def answers(draw: st.DrawFn, shape: str, n: int) -> list[dict[str, Value]]:
    outputs, _ = SHAPES[shape]
    return [{f.name: draw(value_for(f)) for f in outputs} for _ in range(n)]


@st.composite
def valid_cases(
    draw: st.DrawFn, max_n: int = 64
) -> tuple[Task, Request, list[dict[str, Value]], str]:
    shape = draw(st.sampled_from(sorted(SHAPES)))
    kind = draw(st.sampled_from(KINDS))
    n = 1 if kind in ("single", "few-shot") else draw(st.integers(1, max_n))
    task, req = task_for(shape, kind, n)
    values = draw(answers(shape, n))
    out = canonical(task, req, values)
    return task, req, values, out


def _normal(values: dict[str, Value]) -> dict[str, Value]:
    # Decimals compare by value; keep types apart (True is not 1).
    return {k: (type(v).__name__, v) for k, v in values.items()}  # type: ignore[misc]


def check_sane(results: Sequence[ItemResult], n: int) -> None:
    assert len(results) >= n
    assert [r.index for r in results[:n]] == list(range(1, n + 1))
    for r in results:
        assert r.status in STATUSES
        if r.status == "extra":
            assert r.item_id is None and not 1 <= r.index <= n
        assert isinstance(r.to_json(), str)


# ---------------------------------------------------------------------------- round trip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(valid_cases())
def test_round_trip_every_type_strategy_and_size(
    case: tuple[Task, Request, list[dict[str, Value]], str],
) -> None:
    task, req, values, out = case
    for mode in ("recover", "strict"):
        results = parse_output(task, req, out, mode=mode)  # type: ignore[arg-type]
        assert [r.status for r in results] == ["ok"] * len(values), [r.message for r in results]
        assert [_normal(dict(r.values)) for r in results] == [_normal(v) for v in values]


@pytest.mark.parametrize("n", [1, 2, 8, 64])
@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_round_trip_sizes(kind: str, n: int) -> None:
    task, req = task_for("math", kind, n)
    values: list[dict[str, Value]] = [
        {"reasoning": f"Step {i}: the answer is {i}. Check.", "answer": Decimal(i) / 4}
        for i in range(n)
    ]
    results = parse_output(task, req, canonical(task, req, values))
    assert [r.values for r in results] == values


# ---------------------------------------------------------------------------- fast = lark = slow


@st.composite
def slack(draw: st.DrawFn, out: str, kind: str) -> str:
    """The canonical output with layout the grammar also accepts: spaces after markers and at
    line ends, blank lines between lines, white space around the output."""
    if kind in ("batch", "auto-demo"):
        lines = out.split("\n")
        new = []
        for line in lines:
            m = _MARKER.match(line)
            if m is not None and draw(st.booleans()):
                line = line[: m.end()] + " " * draw(st.integers(0, 3)) + line[m.end() :]
            if draw(st.booleans()):
                line += draw(st.sampled_from([" ", "\t", "  "]))
            new.append(line)
        sep = [draw(st.sampled_from(["\n", "\n\n", "\n \n"])) for _ in new]
        out = "".join(line + s for line, s in zip(new, sep))[: -len(sep[-1])]
    return (
        draw(st.sampled_from(["", "\n", "  \n"])) + out + draw(st.sampled_from(["", "\n", "\n\n"]))
    )


def styled_value(draw: st.DrawFn, field: OutputField, value: Value) -> str:
    """A value written in any form the grammar accepts, not only the canonical one."""
    text = field.type.write(field, value)
    if field.type.name in ("number", "integer"):
        sign, digits = ("-", text[1:]) if text.startswith("-") else ("", text)
        whole, _, frac = digits.partition(".")
        if draw(st.booleans()) and len(whole) > 3:
            head = len(whole) % 3 or 3
            whole = ",".join(
                [whole[:head]] + [whole[i : i + 3] for i in range(head, len(whole), 3)]
            )
        sign = draw(st.sampled_from([sign, sign or "+", "−" if sign else ""]))
        money = draw(st.sampled_from(["", "", "$", "€"]))
        tail = (
            draw(st.sampled_from(["", "", "."])) if field.type.name == "number" or not frac else ""
        )
        frac = (
            frac + "0" * draw(st.integers(0, 2))
            if frac or field.type.name == "number" and draw(st.booleans())
            else frac
        )
        return sign + money + whole + ("." + frac if frac else "") + tail
    if field.type.name in ("boolean", "enum"):
        alias = text
        if field.type.name == "boolean":
            alias = draw(st.sampled_from(["yes", "true"] if value else ["no", "false"]))
        elif field.aliases and draw(st.booleans()):
            alias = next((a for a, c in field.aliases if c == value), text)
        return draw(st.sampled_from([alias, alias.upper(), alias.title()]))
    return text


@st.composite
def styled_cases(draw: st.DrawFn, max_n: int) -> tuple[Task, Request, str]:
    """Valid outputs with values in every accepted form and literals in any case."""
    from promptc.ir import Literal_

    shape = draw(st.sampled_from(sorted(SHAPES)))
    kind = draw(st.sampled_from(KINDS))
    n = 1 if kind in ("single", "few-shot") else draw(st.integers(1, max_n))
    task, req = task_for(shape, kind, n)
    by_name = {f.name: f for f in task.outputs}
    lines = []
    for i, values in enumerate(draw(answers(shape, n)), 1):
        body = ""
        for seg in task.answer_format.segments:
            if isinstance(seg, Literal_):
                body += draw(st.sampled_from([seg.text, seg.text.upper(), seg.text.lower()]))
            else:
                body += styled_value(draw, by_name[seg.field], values[seg.field])
        if kind in ("single", "few-shot"):
            return task, req, body
        if kind == "auto-demo":
            item = task.items[i - 1]
            lines.append(
                markers.question_marker(i) + " " + markers.question_text(task.inputs, item.inputs)
            )
        lines.append(markers.answer_marker(i) + " " + body)
    return task, req, "\n".join(lines)


def typed(results: Sequence[ItemResult]) -> list[object]:
    return [(r, [(k, type(v).__name__, str(v)) for k, v in r.values.items()]) for r in results]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_regex_lark_and_scanner_agree(data: st.DataObject) -> None:
    task, req, out = data.draw(
        st.one_of(valid_cases(max_n=12).map(lambda c: (c[0], c[1], c[3])), styled_cases(max_n=12))
    )
    out = data.draw(slack(out, task.strategy.kind))
    # The grammar's own parsers read no lookalikes (test_parse_lookalikes.py covers them).
    assume(normalise_lookalikes(out)[0] == out)
    from promptc.parse.output import grammar_for

    shape = request_shape(task, req)
    g = grammar_for(task, len(shape.item_ids), shape.kind)
    fast = item_results(shape, g, regex_items(g, out))
    lark = item_results(shape, g, lark_items(g, out))
    slow = scanner(task, req, out)
    assert typed(fast) == typed(lark)
    assert typed(fast) == typed(slow), (fast, slow)
    assert typed(parse_output(task, req, out)) == typed(fast)
    assert [r.status for r in fast] == ["ok"] * len(fast)


# ---------------------------------------------------------------------------- never raise


LOOKALIKES = [
    "Ａ",
    "［",
    "］",
    "：",
    "\u00a0",
    "\u200b",
    "\r\n",
    "\r",
    "【",
    "】",
    "∶",
    "−",
    "\u3000",
    "\ufeff",
]
NOISE = [
    "A[",
    "A[1]:",
    "Q[1]:",
    "A[2]: ",
    "**",
    "__",
    "```",
    "\n",
    " The answer is ",
    ".",
    "#",
    "-",
    "$",
    "1,234",
    "yes",
    "positive",
    "A[0]:",
    "A[99999999]:",
    "[",
    "]",
    ":",
]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[Task, Request, str]:
    task, req, _, out = draw(valid_cases(max_n=8))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(
            st.sampled_from(["delete", "insert", "dup-line", "swap-lines", "truncate", "lookalike"])
        )
        pos = draw(st.integers(0, len(out)))
        if op == "delete":
            out = out[:pos] + out[pos + draw(st.integers(1, 20)) :]
        elif op == "insert":
            piece = draw(st.one_of(st.sampled_from(NOISE), st.text(max_size=10)))
            out = out[:pos] + piece + out[pos:]
        elif op == "lookalike":
            out = out[:pos] + draw(st.sampled_from(LOOKALIKES)) + out[pos + 1 :]
        elif op == "truncate":
            out = out[:pos]
        else:
            lines = out.split("\n")
            i = draw(st.integers(0, len(lines) - 1))
            j = draw(st.integers(0, len(lines) - 1))
            if op == "dup-line":
                lines.insert(j, lines[i])
            else:
                lines[i], lines[j] = lines[j], lines[i]
            out = "\n".join(lines)
    return task, req, out


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_outputs_never_raise(case: tuple[Task, Request, str]) -> None:
    task, req, out = case
    n = len(req.batch.item_ids)
    for mode in ("recover", "strict"):
        check_sane(parse_output(task, req, out, mode=mode), n)  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(sorted(SHAPES)), st.sampled_from(KINDS), st.text(max_size=300))
def test_random_text_never_raises(shape: str, kind: str, out: str) -> None:
    task, req = task_for(shape, kind, 3)
    n = len(req.batch.item_ids)
    for mode in ("recover", "strict"):
        check_sane(parse_output(task, req, out, mode=mode), n)  # type: ignore[arg-type]


ADVERSARIAL = {
    "answer-marker-100k": "A[1]: " * 17_000,
    "question-answer-markers": "Q[1]: A[1]: " * 9_000,
    "long-line": "x" * 200_000,
    "long-line-spaces": "a " * 100_000,
    "literal-repeated": " The answer is" * 10_000,
    "literal-and-numbers": "The answer is 1 " * 10_000,
    "brackets": "A[" * 60_000,
    "digits-in-marker": "A[" + "9" * 100_000 + "]: 1",
    "emphasis": "**" * 60_000,
    "fences": "```\n" * 30_000,
    "newlines": "\n" * 200_000,
    "many-lines-no-marker": "chatter line\n" * 20_000,
    "markers-then-long-body": "A[1]: " + "y" * 100_000 + "\nA[2]: " + "z " * 50_000,
    "lookalikes": "Ａ［１］：\u00a0" * 20_000,
    "many-indices": "".join(f"A[{i}]: {i}\n" for i in range(1, 20_000)),
    "q-long": "Q[1]: " + "What is it? " * 20_000 + "\nA[1]: ok",
    # Runs of blank lines inside a repeated question and an answer (a lookahead from each line
    # break of the run made them quadratic in Auto-Demo: 24,000 lines took 7 s).
    "blank-lines-in-question": "Q[1]: x\n" + " \n" * 50_000 + "y\nA[1]: 3",
    "blank-lines-in-answer": "Q[1]: x\nA[1]: So" + " \n" * 50_000 + "so. The answer is 3.",
}


@pytest.mark.parametrize("shape", ["math", "number", "text"])
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", list(ADVERSARIAL), ids=list(ADVERSARIAL))
def test_adversarial_inputs_are_parsed(name: str, kind: str, shape: str) -> None:
    """Sane results for each; the time bound docs/parsing.md promises is checked against a
    fixed budget by bench/bench_bounds.py (a timed test would fail on a loaded machine)."""
    task, req = task_for(shape, kind, 4)
    out = ADVERSARIAL[name]
    for mode in ("recover", "strict"):
        results = parse_output(task, req, out, mode=mode)  # type: ignore[arg-type]
        check_sane(results, len(req.batch.item_ids))


def test_multi_line_questions_of_multi_field_inputs_align() -> None:
    from promptc.ir import InputField

    task = make_task(
        "auto-demo",
        3,
        SHAPES["enum"][0],
        "{label}",
        inputs=(InputField("premise"), InputField("hypothesis", label="Claim")),
    )
    req = make_request(task)
    out = canonical(
        task, req, [{"label": "positive"}, {"label": "negative"}, {"label": "very positive"}]
    )
    assert "\nClaim: hypothesis of 2\n" in out
    assert [r.status for r in parse_output(task, req, out)] == ["ok"] * 3
    assert [r.status for r in scanner(task, req, out)] == ["ok"] * 3
    swapped = out.replace("hypothesis of 2", "hypothesis of 3")
    assert [r.status for r in parse_output(task, req, swapped)] == ["ok", "ok", "ok"]
    other = out.replace(QUESTIONS[1], "A different premise altogether, about cats.")
    assert [r.status for r in parse_output(task, req, other)] == ["ok", "misaligned", "ok"]


# ---------------------------------------------------------------------------- the scanner

MARKERISH = list("AaQqPp[]:*_ \t\n0129x#-") + ["A[", "Q[", "]:", "**", "Premise", "Answer"]


@settings(max_examples=400, deadline=None)
@given(
    st.lists(st.sampled_from(MARKERISH), max_size=80).map("".join),
    st.sampled_from([("Q", "A"), ("Premise", "Answer"), ("Q", "Question")]),
)
def test_the_scanner_finds_every_match_of_the_marker_pattern(
    text: str, prefixes: tuple[str, str]
) -> None:
    """Looking for markers around each ``[`` finds what the pattern's own ``finditer`` does."""
    mk = Markers(question=prefixes[0], answer=prefixes[1])
    got = [(m.start, m.end, m.index) for m in iter_markers(text, mk)]
    pattern = marker_pattern(mk.question, mk.answer)
    want = [
        (m.start() if m.group("open") else m.start("prefix"), m.end(), int(m.group("index")))
        for m in pattern.finditer(text)
    ]
    assert got == want


@pytest.mark.parametrize("kind", ["single", "few-shot"])
@pytest.mark.parametrize(
    "out",
    [
        "Let me think.\n" + "\n" * 100_000 + "x",
        "So" + " " * 100_000 + "x",
        " The answer is" * 10_000,
        "The answer is 1 " * 10_000,
    ],
    ids=["nl", "sp", "literal", "literal-numbers"],
)
def test_a_run_of_white_space_in_a_one_item_answer_is_read_in_linear_work(
    kind: str, out: str
) -> None:
    """A model padding to max_tokens with white space: the diagnosis of the failed reading
    rescanned the run from each of its positions (80 KB of newlines took 19 s); the answer's
    literal said 10,000 times, without the final period: the diagnosis searched the rest of
    the output for the period from each place a number was tried (11 s). Sane results in
    both modes; the time is bench/bench_bounds.py's to measure."""
    task, req = task_for("math", kind, 1)
    for mode in ("recover", "strict"):
        results = parse_output(task, req, out, mode=mode)  # type: ignore[arg-type]
        check_sane(results, len(req.batch.item_ids))


@pytest.mark.parametrize("shape", sorted(SHAPES))
@pytest.mark.parametrize("out", ["o", "x y", "5 apples", "**", "A[1]: o"])
def test_a_malformed_answer_of_a_format_ending_with_its_value_is_diagnosed(
    shape: str, out: str
) -> None:
    """A format whose last part is a value (``{answer}``): where the diagnosis looked for the
    literals after it ending the answer, the empty tail matched at the end of the output, and
    a search from past the end found it again without end (a hypothesis example ran out of
    memory)."""
    for kind in ("single", "batch"):
        task, req = task_for(shape, kind, 1)
        for mode in ("recover", "strict"):
            results = parse_output(task, req, out, mode=mode)  # type: ignore[arg-type]
            check_sane(results, len(req.batch.item_ids))


def test_a_cut_output_whose_last_line_is_a_word_and_spaces_is_read_in_linear_work() -> None:
    """At a ``length`` cut, the last line is looked at for the start of a marker (``A[4``):
    a word, then a run of spaces the pattern could split two ways, was backtracked over
    quadratically (8,000 spaces took 0.9 s, 100,000 about two minutes). The time is
    bench/bench_bounds.py's to measure."""
    task, req = task_for("math", "batch", 2)
    out = "A[1]: 1 + 1. The answer is 2.\nA" + " " * 100_000 + "x"
    for mode in ("recover", "strict"):
        results = parse_output(task, req, out, mode=mode, finish_reason="length")  # type: ignore[arg-type]
        check_sane(results, len(req.batch.item_ids))
