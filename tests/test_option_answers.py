"""Options answered by letter or by text (``answer_with``), and each request's own grammar.

Round trips: a build's requests, answered as a model would (letters, option texts, other
cases), parse ``ok`` with each item's letter; the text of another item's option and a text
two options share are ``malformed``, never a guess. Each request's own exports
(``grammars/<id>.*``) admit exactly its items' letters and/or texts: compiled and checked in
xgrammar and outlines-core (as ``tests/test_engines.py`` does for the shared exports), in lark
and in Python's ``re``; the ``vllm-batch`` body carries the very GBNF of ``grammars/<id>.gbnf``.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Literal

import lark
import outlines_core
import pytest
import xgrammar
from export_samples import CharVocabulary
from hypothesis import given, settings
from hypothesis import strategies as st
from promptc.build import assemble, build
from promptc.errors import PromptcErrors
from promptc.ir import Request, Task
from promptc.markers import OPTION_LETTERS
from promptc.parse.output import parse_output
from promptc.spec.lower import compile_spec
from promptc.values import option_choices, option_text, resolve_option
from xgrammar.testing import _is_grammar_accept_string

SPECS = Path(__file__).resolve().parents[1] / "specs"
TEXT_SPEC = SPECS / "commonsense-qa-text.yaml"
LETTER_SPEC = SPECS / "commonsense-qa.yaml"

SPEC = """\
promptc: 1
name: colours
instruction: Pick the option.
inputs:
  question: {{type: text}}
  choices: {{type: options}}
outputs:
  answer: {{type: enum, choices_from: choices, answer_with: {answer_with}}}
answer_format: "The answer is {{answer}}."
demos:
  - {{question: Sky?, choices: [blue, green], answer: {demo}}}
data: {{path: data.jsonl, id: qid}}
strategy: {{kind: {kind}, batch_size: 3}}
model: {{name: m}}
"""
ROWS = [
    {"qid": "q1", "question": "Grass?", "choices": ["red", "green", "light  blue"]},
    {"qid": "q2", "question": "Snow?", "choices": ["white", "Black"]},
    # "c" is the text of option (a) and the letter of option (c): ambiguous under either.
    {"qid": "q3", "question": "Letter?", "choices": ["c", "Same", "same"]},
]


def _spec(
    tmp_path: Path, answer_with: str = "either", kind: str = "batch", demo: str = "a"
) -> Task:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8"
    )
    path = tmp_path / "spec.yaml"
    path.write_text(SPEC.format(answer_with=answer_with, kind=kind, demo=demo), encoding="utf-8")
    return compile_spec(path)


def _answers(task: Task, request: Request, texts: list[str]) -> str:
    return "\n".join(f"A[{i}]: The answer is {t}." for i, t in enumerate(texts, 1))


def _parse(
    task: Task, request: Request, output: str, mode: str = "recover"
) -> list[tuple[str, object]]:
    return [
        (r.status, r.values.get("answer"))
        for r in parse_output(task, request, output, mode=mode)  # type: ignore[arg-type]
    ]


# ------------------------------------------------------------------------------ round trips


@pytest.mark.parametrize("mode", ["recover", "strict"])
def test_published_layout_round_trip_letters_and_texts(mode: str) -> None:
    task = compile_spec(TEXT_SPEC)
    result = assemble(task)
    by_id = {it.id: it for it in task.items}
    for request in result.requests:
        items = [by_id[i] for i in request.batch.item_ids]
        for k in range(max(len(it.options["choices"]) for it in items)):
            picks = [k % len(it.options["choices"]) for it in items]
            want = [("ok", OPTION_LETTERS[p]) for p in picks]
            letters = [OPTION_LETTERS[p] for p in picks]
            texts = [option_text(it.options["choices"][p]) for it, p in zip(items, picks)]
            for said in (letters, texts):
                body = "\n".join(
                    f"A[{i}]: Because. So the answer is {s}." for i, s in enumerate(said, 1)
                )
                assert _parse(task, request, body, mode) == want, body


def test_text_is_read_in_any_case_and_spacing_only_when_recovering(tmp_path: Path) -> None:
    task = _spec(tmp_path, "text")
    request = assemble(task).requests[0]
    out = _answers(task, request, ["LIGHT blue", "black", "Same"])
    # "Same" is option (b) written exactly, and "same" (c) is another: the exact one, in
    # both modes (the request's own grammar offers both).
    assert _parse(task, request, out) == [("ok", "c"), ("ok", "b"), ("ok", "b")]
    strict = _parse(task, request, out, "strict")
    assert strict == [("malformed", None), ("malformed", None), ("ok", "b")]
    exact = _answers(task, request, ["light blue", "Black", "c"])
    assert _parse(task, request, exact, "strict") == [("ok", "c"), ("ok", "b"), ("ok", "a")]


def test_lookalikes_are_read_as_the_option_they_spell_when_recovering(tmp_path: Path) -> None:
    # Full-width letters, a zero-width space and a soft hyphen, as parsing.md normalises
    # them for any answer: the option they spell (by its text, or a full-width letter).
    task = _spec(tmp_path, "either")
    request = assemble(task).requests[0]
    out = _answers(task, request, ["ｌｉｇｈｔ blue", "ｂ", "Letter"])
    assert _parse(task, request, out) == [("ok", "c"), ("ok", "b"), ("malformed", None)]
    hidden = _answers(task, request, ["lig\u00adht blue", "bla\u200bck", "Letter"])
    assert _parse(task, request, hidden)[:2] == [("ok", "c"), ("ok", "b")]
    assert _parse(task, request, out, "strict")[0] == ("malformed", None)


def test_emphasis_and_a_sentences_end_around_an_option_are_no_part_of_it(tmp_path: Path) -> None:
    """``**light blue**``, ``light blue.``, ``*b*!``: the option they name, when recovering; in
    strict mode the text must be the option's exactly."""
    task = _spec(tmp_path, "either")
    request = assemble(task).requests[0]
    out = _answers(task, request, ["**LIGHT blue**", "black.", "`a`!"])
    assert _parse(task, request, out) == [("ok", "c"), ("ok", "b"), ("ok", "a")]
    assert _parse(task, request, out, "strict")[0] == ("malformed", None)


def test_a_letter_as_the_prompt_shows_it_and_its_own_text_name_the_option(tmp_path: Path) -> None:
    """The prompt shows ``(a) red (b) green``: with ``answer_with: either`` an answer copying
    that form, ``(b)``, ``(b) green``, ``b) green``, ``B. green`` or ``b green``, names the
    option when recovering; a letter past the last option, or a letter and a text that is
    not its option's, names none or both and is ``malformed``."""
    task = _spec(tmp_path, "either")
    request = assemble(task).requests[0]
    for said in (["(c)", "(B)", "(a)."], ["(c) light  blue", "B. Black", "a) c"]):
        out = _answers(task, request, said)
        assert _parse(task, request, out) == [("ok", "c"), ("ok", "b"), ("ok", "a")], said
        assert _parse(task, request, out, "strict")[0] == ("malformed", None)
    for said, want in (
        (["b) **green**", "a white", "B. Same"], ["b", "a", "b"]),
        (["C.", "b)", "(c) same"], ["c", "b", "c"]),
    ):
        got = _parse(task, request, _answers(task, request, said))
        assert got == [("ok", w) for w in want], said
    wrong = _answers(task, request, ["(b) light blue", "(c) white", "a red"])
    results = parse_output(task, request, wrong)
    assert [r.status for r in results] == ["malformed"] * 3
    assert [r.message for r in results] == [
        "answer '(b) light blue' names more than one of item q1's options (b and c)",
        "answer '(c) white' is not the letter or text of one of item q2's 2 options",
        "answer 'a red' is not the letter or text of one of item q3's 3 options",
    ]
    # Letters alone are refused where options are answered by their text.
    text_only = _spec(tmp_path, "text")
    request = assemble(text_only).requests[0]
    out = _answers(text_only, request, ["(b)", "b)", "Same"])
    assert _parse(text_only, request, out) == [
        ("malformed", None),
        ("malformed", None),
        ("ok", "b"),
    ]


def test_another_items_option_and_ambiguous_texts_are_malformed(tmp_path: Path) -> None:
    task = _spec(tmp_path, "either")
    request = assemble(task).requests[0]
    out = _answers(task, request, ["white", "c", "c"])
    results = parse_output(task, request, out)
    assert [r.status for r in results] == ["malformed", "malformed", "malformed"]
    assert results[0].message == (
        "answer 'white' is not the letter or text of one of item q1's 3 options"
    )
    assert "'red'" in results[0].expected[0] and "'white'" not in results[0].expected[0]
    assert (
        results[1].message == "answer 'c' is not the letter or text of one of item q2's 2 options"
    )
    assert results[2].message == "answer 'c' names more than one of item q3's options (a and c)"
    # "SAME" spells neither "Same" nor "same" exactly: both are named.
    same = parse_output(task, request, _answers(task, request, ["b", "a", "SAME"]))
    assert [r.status for r in same] == ["ok", "ok", "malformed"]
    assert same[2].message.endswith("names more than one of item q3's options (b and c)")
    exact = parse_output(task, request, _answers(task, request, ["b", "a", "same"]), mode="strict")
    assert [(r.status, r.values.get("answer")) for r in exact] == [
        ("ok", "b"),
        ("ok", "a"),
        ("ok", "c"),
    ]


def test_letters_only_refuse_texts(tmp_path: Path) -> None:
    task = _spec(tmp_path, "letter")
    request = assemble(task).requests[0]
    assert [s for s, _ in _parse(task, request, _answers(task, request, ["red", "b", "C"]))] == [
        "malformed",
        "ok",
        "ok",
    ]


def test_json_answers_are_resolved_per_item(tmp_path: Path) -> None:
    task = _spec(tmp_path, "text")
    request = assemble(task).requests[0]
    out = json.dumps(
        {
            "answers": [
                {"index": 1, "answer": "green"},
                {"index": 2, "answer": "white"},
                {"index": 3, "answer": "red"},
            ]
        }
    )
    assert _parse(task, request, out) == [("ok", "b"), ("ok", "a"), ("malformed", None)]


def test_demos_show_the_text_with_text_answers(tmp_path: Path) -> None:
    text = _spec(tmp_path, "text", kind="few-shot", demo="b")
    assert text.demos[0].outputs["answer"] == "green"
    shown = [m.content for m in assemble(text).requests[0].messages]
    assert any("The answer is green." in m for m in shown)
    either = _spec(tmp_path, "either", kind="few-shot", demo="Green")
    assert either.demos[0].outputs["answer"] == "green"
    letter = _spec(tmp_path, "letter", kind="few-shot", demo="b")
    assert letter.demos[0].outputs["answer"] == "b"
    # The instruction says what to write: the option's text, not its letter.
    system = shown[0]
    assert "is the text of one of the item's options" in system and "one of: a, b" not in system
    told = assemble(letter).requests[0].messages[0].content
    assert "one of: a, b" in told


# ------------------------------------------------------------------------------ validation


def test_answer_with_needs_choices_from(tmp_path: Path) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "promptc: 1\nname: s\ninstruction: i\ninputs: {q: {type: text}}\n"
        "outputs:\n  a: {type: enum, choices: [x, y], answer_with: text}\nmodel: {name: m}\n",
        encoding="utf-8",
    )
    with pytest.raises(PromptcErrors) as e:
        compile_spec(spec)
    (err,) = e.value.errors
    assert err.code == "answer-with"
    assert (err.location.line, err.location.col) == (6, 36)


def test_demo_answer_must_name_one_of_its_options(tmp_path: Path) -> None:
    with pytest.raises(PromptcErrors) as e:
        _spec(tmp_path, "text", demo="white")
    (err,) = e.value.errors
    assert err.code == "demo-option-answer"
    assert err.location.line == 11
    assert "expected one of 'a', 'b', 'blue', 'green'" in str(err)


# ------------------------------------------------------------------------------ exports


def _cases(task: Task, request: Request) -> tuple[list[list[str]], list[list[str]]]:
    """Per item, what canonical answers say: ones the request's own grammar must admit, and
    ones it must refuse."""
    by_id = {it.id: it for it in task.items}
    items = [by_id[i] for i in request.batch.item_ids]
    field = next(f for f in task.outputs if f.choices_from)
    good, bad = [], []
    for k in range(max(len(it.options["choices"]) for it in items)):
        picks = [min(k, len(it.options["choices"]) - 1) for it in items]
        if field.answer_with != "text":
            good.append([OPTION_LETTERS[p] for p in picks])
        if field.answer_with != "letter":
            good.append([option_text(it.options["choices"][p]) for it, p in zip(items, picks)])
    # A letter past the first item's options; another item's option text; no such text.
    first = items[0].options["choices"]
    rest = [OPTION_LETTERS[0]] * (len(items) - 1)
    if field.answer_with != "text":
        bad.append([OPTION_LETTERS[len(first)]] + rest)
    else:
        rest = [option_text(it.options["choices"][0]) for it in items[1:]]
    others = {option_text(o) for it in task.items for o in it.options["choices"]}
    foreign = sorted(others - {option_text(o) for o in first} - set(OPTION_LETTERS))
    if field.answer_with != "letter" and foreign:
        bad.append([foreign[0]] + rest)
    bad.append(["nothing-like-it"] + rest)
    return good, bad


def _text_form(task: Task, request: Request, said: list[str]) -> str:
    from promptc import markers

    by_id = {it.id: it for it in task.items}
    lines = []
    for i, (item_id, s) in enumerate(zip(request.batch.item_ids, said), 1):
        if request.kind.repeats_questions:
            lines.append(f"Q[{i}]: " + markers.question_text(task.inputs, by_id[item_id].inputs))
        body = task.answer_format.source.replace("{reasoning}", "Because.").replace("{answer}", s)
        lines.append(f"A[{i}]: {body}")
    return "\n".join(lines)


def _json_form(task: Task, request: Request, said: list[str]) -> str:
    from promptc import markers

    by_id = {it.id: it for it in task.items}
    answers = []
    for i, (item_id, s) in enumerate(zip(request.batch.item_ids, said), 1):
        entry: dict[str, object] = {"index": i}
        if request.kind.repeats_questions:
            entry["question"] = markers.question_text(task.inputs, by_id[item_id].inputs)
        if any(f.name == "reasoning" for f in task.outputs):
            entry["reasoning"] = "Because."
        entry["answer"] = s
        answers.append(entry)
    return json.dumps({"answers": answers})


def _export_cases() -> list[tuple[str, str]]:
    return [
        ("text-spec", "either"),
        ("letter-spec", "letter"),
        ("tmp", "text"),
        ("tmp", "either"),
        ("tmp-auto", "text"),
    ]


@pytest.mark.parametrize(("where", "answer_with"), _export_cases(), ids=lambda x: x)
def test_each_request_grammar_admits_exactly_its_items_choices(
    tmp_path: Path, where: str, answer_with: str
) -> None:
    if where == "text-spec":
        task = compile_spec(TEXT_SPEC)
    elif where == "letter-spec":
        task = compile_spec(LETTER_SPEC)
    else:
        task = _spec(tmp_path, answer_with, kind="auto-demo" if where == "tmp-auto" else "batch")
    result = assemble(task)
    for request in result.requests:
        own = {
            s: result.files[f"grammars/{request.id}{s}"]
            for s in (".gbnf", ".regex", ".schema.json", ".lark", ".parse.regex")
        }
        good, bad = _cases(task, request)
        assert good and bad
        gbnf = xgrammar.Grammar.from_ebnf(own[".gbnf"])
        portable = own[".regex"].rstrip("\n")
        xg_regex = xgrammar.Grammar.from_regex(portable)
        chars = CharVocabulary([_text_form(task, request, x) for x in good + bad])
        oc_regex = outlines_core.Index(portable, chars.vocab)
        schema = own[".schema.json"]
        xg_json = xgrammar.Grammar.from_json_schema(schema)
        oc_json = outlines_core.Index(
            outlines_core.json_schema.build_regex_from_schema(schema), CharVocabulary([]).vocab
        )
        parser = lark.Lark(own[".lark"], parser="lalr", lexer="contextual")
        python = re.compile(own[".parse.regex"].rstrip("\n"))
        field = next(f for f in task.outputs if f.choices_from)
        by_id = {it.id: it for it in task.items}
        for said, ok in [(t, True) for t in good] + [(t, False) for t in bad]:
            text = _text_form(task, request, said)
            assert bool(_is_grammar_accept_string(gbnf, text)) is ok, (request.id, text)
            assert bool(_is_grammar_accept_string(xg_regex, text)) is ok, (request.id, text)
            assert chars.accepts(oc_regex, text) is ok, (request.id, text)
            assert (python.fullmatch(text) is not None) is ok, (request.id, text)
            try:
                parser.parse(text)
                parsed = True
            except lark.UnexpectedInput:
                parsed = False
            assert parsed is ok, (request.id, text)
            as_json = _json_form(task, request, said)
            assert bool(_is_grammar_accept_string(xg_json, as_json)) is ok, (request.id, as_json)
            assert CharVocabulary([]).accepts(oc_json, as_json) is ok if as_json.isascii() else True
            # The parser, on the shared grammar, agrees with the request's own — except that
            # an answer naming two options of its item (admitted: it is one of its choices)
            # is malformed rather than a guess.
            named = [
                resolve_option(field.answer_with, by_id[i].options["choices"], s, exact=True)
                for i, s in zip(request.batch.item_ids, said)
            ]
            clear = all(len(n) == 1 for n in named)
            results = parse_output(task, request, text, mode="strict")
            assert ({r.status for r in results} == {"ok"}) is (ok and clear), (request.id, text)
            if ok and clear:
                assert [r.values["answer"] for r in results] == [n[0] for n in named]


def test_shared_exports_are_the_union_and_untouched_without_choices_from() -> None:
    task = compile_spec(TEXT_SPEC)
    files = assemble(task).files
    assert "grammars/r0001.gbnf" in files
    # Shared: any one line up to twice the longest option (a demo's "refrigerator", 12).
    assert "([^\\n]{0,22} " in files["answer.gbnf"]
    sentiment = assemble(compile_spec(SPECS / "sentiment.yaml")).files
    assert not any(n.startswith("grammars/") for n in sentiment)


def test_vllm_bodies_carry_each_requests_own_gbnf(tmp_path: Path) -> None:
    task = compile_spec(TEXT_SPEC)
    build(task, tmp_path / "b", target="vllm-batch")
    manifest = json.loads((tmp_path / "b" / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["grammar"]["per_request"]["folder"] == "grammars"
    lines = (tmp_path / "b" / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    entries = (tmp_path / "b" / "batches.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == len(entries)
    for line, entry in zip(lines, map(json.loads, entries)):
        record = json.loads(line)
        own = (tmp_path / "b" / "grammars" / f"{record['custom_id']}.gbnf").read_text(
            encoding="utf-8"
        )
        assert record["body"]["structured_outputs"] == {"grammar": own}
        assert f"grammars/{record['custom_id']}.gbnf" in entry["grammar_files"]


def test_rebuild_without_choices_from_removes_the_folder(tmp_path: Path) -> None:
    out = tmp_path / "b"
    build(compile_spec(TEXT_SPEC), out)
    assert sorted(p.name for p in (out / "grammars").iterdir())[:2] == ["r0001.gbnf", "r0001.lark"]
    (out / ".grammars.tmp").mkdir()
    (out / ".grammars.tmp" / "r0009.gbnf").write_text("left over", encoding="utf-8")
    shutil.copy(SPECS / "sentiment.yaml", tmp_path / "sentiment.yaml")
    shutil.copytree(SPECS / "data", tmp_path / "data")
    build(compile_spec(tmp_path / "sentiment.yaml"), out)
    assert not (out / "grammars").exists()
    assert not (out / ".grammars.tmp").exists()


def test_run_sends_each_requests_own_grammar(tmp_path: Path) -> None:
    from promptc.build import read_requests
    from promptc.run.bodies import request_body

    task = compile_spec(TEXT_SPEC)
    out = tmp_path / "b"
    build(task, out)
    for request in read_requests(out):
        own = out / "grammars" / request.id
        body = request_body(request, out, "json_schema")
        schema = body["response_format"]["json_schema"]["schema"]
        assert schema == json.loads(own.with_suffix(".schema.json").read_text(encoding="utf-8"))
        gbnf = request_body(request, out, "gbnf", task=task)["grammar"]
        assert gbnf == own.with_suffix(".gbnf").read_text(encoding="utf-8")


def _options_spec(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.jsonl").open("w", encoding="utf-8") as f:
        for i in range(n):
            options = [f"option {i} {k}" for k in range(2 + i % 4)]
            f.write(json.dumps({"qid": f"q{i}", "question": f"Which {i}?", "choices": options}))
            f.write("\n")
    spec = folder / "spec.yaml"
    spec.write_text(
        SPEC.replace("demos:\n  - {{question: Sky?, choices: [blue, green], answer: {demo}}}\n", "")
        .format(answer_with="either", kind="batch")
        .replace("batch_size: 3", "batch_size: 8"),
        encoding="utf-8",
    )
    return spec


def test_request_grammars_do_not_grow_memory_with_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peak Python allocations while the requests and their own grammars are made, for 800
    and 2,400 items: each request's five grammar files are written and dropped as they are
    made, so the peak grows by the data's offsets alone (the files grow, the memory not)."""
    import tracemalloc

    from promptc.build import files, produce
    from promptc.render import renderer
    from promptc.spec.data import ItemTable

    monkeypatch.setattr(files, "BUFFER_BYTES", 16 << 10)
    monkeypatch.setattr(ItemTable, "CACHE", 16)
    monkeypatch.setattr(renderer, "GROUP_REQUESTS", 16)
    after_requests: list[int] = []
    task_text = produce.task_text

    def spy(task: Task) -> str:
        after_requests.append(tracemalloc.get_traced_memory()[1])  # the peak so far
        return task_text(task)

    monkeypatch.setattr(produce, "task_text", spy)
    build(compile_spec(_options_spec(tmp_path / "warm", 16)), tmp_path / "warm" / "out")
    for n in (800, 2_400):
        task = compile_spec(_options_spec(tmp_path / str(n), n))
        tracemalloc.start()
        build(task, tmp_path / str(n) / "out")
        tracemalloc.stop()
        assert len(list((tmp_path / str(n) / "out" / "grammars").iterdir())) == 5 * (n // 8)
    per_item = (after_requests[2] - after_requests[1]) / 1_600
    print(f"{per_item:.1f} bytes per item")
    assert per_item < 64, f"{per_item:.0f} bytes per item"


_OPTION = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12
).filter(lambda s: s.strip() != "")


@settings(max_examples=150, deadline=None)
@given(
    options=st.lists(_OPTION, min_size=1, max_size=6),
    answer_with=st.sampled_from(["letter", "text", "either"]),
    exact=st.booleans(),
)
def test_an_option_is_named_only_by_its_own_letter_or_text(
    options: list[str], answer_with: Literal["letter", "text", "either"], exact: bool
) -> None:
    letters = OPTION_LETTERS[: len(options)]
    for k, option in enumerate(options):
        said = option_text(option) if answer_with != "letter" else letters[k]
        hits = resolve_option(answer_with, options, said, exact)
        assert letters[k] in hits
        for h in hits:  # any other option named is one the answer names too
            j = letters.index(h)
            same_text = (
                option_text(options[j]) == said
                if exact
                else option_text(options[j]).casefold() == " ".join(said.split()).casefold()
            )
            assert h == letters[k] or same_text or (answer_with == "either" and h == said.lower())
        assert option_choices(answer_with, options).count(said) == 1
    foreign = "\u2603" * 13  # longer than any option: names none
    assert resolve_option(answer_with, options, foreign, exact) == []


@pytest.mark.parametrize(
    ("answer_with", "golds", "want"),
    [
        # A gold is read as a demo's answer: the letter, or the text in any case.
        ("either", ["green", "a", "b"], ["b", "a", "b"]),
        ("text", ["LIGHT blue", "Black", "a"], ["c", "b", "a"]),
        ("letter", ["b", "B", "a"], ["b", "b", "a"]),
    ],
)
def test_gold_names_an_option_of_its_own_row(
    tmp_path: Path, answer_with: str, golds: list[str], want: list[str]
) -> None:
    task = _gold_spec(tmp_path, answer_with, golds)
    assert [it.gold["answer"] for it in task.items] == want


def test_gold_of_another_rows_option_is_an_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(PromptcErrors) as e:
        _gold_spec(tmp_path, "either", ["green", "green", "c"])
    errors = sorted(e.value.errors, key=lambda x: x.location.line)
    assert [(x.code, x.location.line) for x in errors] == [("bad-gold", 2), ("bad-gold", 3)]
    assert "'green' names none of its options" in str(errors[0])
    assert "'c' names options a and c" in str(errors[1])


def _gold_spec(tmp_path: Path, answer_with: str, golds: list[str]) -> Task:
    _spec(tmp_path, answer_with)
    rows = [dict(r, gold=g) for r, g in zip(ROWS, golds)]
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8"
    )
    spec = tmp_path / "spec.yaml"
    text = spec.read_text(encoding="utf-8")
    spec.write_text(text.replace("id: qid}", "id: qid, gold: {answer: gold}}"), encoding="utf-8")
    return compile_spec(spec)


def test_a_build_folder_alone_reads_text_answers(tmp_path: Path) -> None:
    """task.json carries answer_with and the bound of the shared grammar: parse needs no spec."""
    from promptc.parse.build_input import open_build

    out = tmp_path / "b"
    build(compile_spec(TEXT_SPEC), out)
    task = open_build(out).task
    (field,) = [f for f in task.outputs if f.choices_from]
    assert (field.answer_with, field.option_chars) == ("either", 12)
    request = json.loads((out / "requests.jsonl").read_text(encoding="utf-8").splitlines()[0])
    output = "A[1]: Light. So the answer is Windowsill.\nA[2]: Feet. So the answer is d."
    assert _parse(task, request, output) == [("ok", "b"), ("ok", "d")]  # type: ignore[arg-type]


@pytest.mark.parametrize("grammar", ["gbnf", "json_schema"])
@pytest.mark.parametrize("kind", ["batch", "auto-demo"])
def test_every_constraint_of_a_request_is_its_own_grammar_file(
    tmp_path: Path, grammar: str, kind: str
) -> None:
    """vllm-batch bodies (either constraint) and structured_outputs, which run and collect's
    repair builds use, say exactly what grammars/<id>.gbnf and .schema.json say."""
    from promptc.build import ConstraintCache, constraint
    from promptc.build.targets import VllmBatch

    task = _spec(tmp_path, "either", kind=kind)
    out = tmp_path / "b"
    build(task, out, target="vllm-batch", vllm_grammar=grammar)
    cache = ConstraintCache()
    lines = (out / "requests.jsonl").read_text(encoding="utf-8").splitlines()
    for line, request in zip(lines, assemble(task).requests):
        own = out / "grammars" / request.id
        if grammar == "gbnf":
            want: dict[str, object] = {"grammar": own.with_suffix(".gbnf").read_text("utf-8")}
        else:
            want = {"json": json.loads(own.with_suffix(".schema.json").read_text("utf-8"))}
        assert json.loads(line)["body"]["structured_outputs"] == want
        items = [task.items[p] for p in request.batch.item_indices]
        made = constraint(task, request.kind, items, grammar, cache)  # type: ignore[arg-type]
        assert {VllmBatch.FIELDS[made.form]: made.value} == want


def test_bad_options_and_a_null_id_say_what_is_wrong_with_them(tmp_path: Path) -> None:
    """Each said as what it is, not all as 'holds a list; expected a list', and a null id
    as null, not as a field the row lacks; and an exclusive bound as one."""
    from promptc.spec.lower import compile_spec

    rows = [
        {"id": "1", "q": "q", "o": [str(i) for i in range(27)]},
        {"id": "2", "q": "q", "o": ["a", ""]},
        {"id": "3", "q": "q", "o": [1, 2]},
        {"id": None, "q": "q", "o": ["a"]},
    ]
    (tmp_path / "d.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "s.yaml").write_text(
        "promptc: 1\nname: s\ninstruction: Pick.\ninputs: {q: {type: text}, o: {type: options}}\n"
        "outputs: {answer: {type: enum, choices_from: o}}\ndata: {path: d.jsonl, id: id}\n"
        "model: {name: m, timeout: 0}\n"
    )
    with pytest.raises(PromptcErrors) as e:
        compile_spec(tmp_path / "s.yaml")
    said = sorted(x.message for x in e.value.errors)
    expected = "expected a list of 1 to 26 non-empty strings"
    assert said == sorted(
        [
            "expected a number of more than 0, found 0",
            f"column 'o' (input 'o', of type options) holds a list of 27; {expected}",
            f"column 'o' (input 'o', of type options) holds an empty string at [1]; {expected}",
            f"column 'o' (input 'o', of type options) holds a number at [0]; {expected}",
            "id field 'id' is null; expected a value",
        ]
    )


@pytest.mark.parametrize("exact", [True, False])
def test_options_equal_but_for_case_are_named_by_the_exact_spelling(exact: bool) -> None:
    """A request's own grammar offers "Apple" and "apple": the one written is the one named,
    in recover parsing as in strict (recover called it ambiguous: malformed, and repair got
    the same answer again). A spelling of neither stays ambiguous in recover."""
    options = ["Apple", "apple", "pear"]
    for answer_with in ("text", "either"):
        assert resolve_option(answer_with, options, "apple", exact) == ["b"]
        assert resolve_option(answer_with, options, "Apple", exact) == ["a"]
        assert resolve_option(answer_with, ["New  York", "new york"], "new york", exact) == ["b"]
    assert resolve_option("text", options, "APPLE", exact) == ([] if exact else ["a", "b"])
    assert resolve_option("text", ["apple", "apple"], "apple", exact) == ["a", "b"]
