"""Every engine export *file* of every example spec and strategy, read from a build folder as
written on disk (no stripping), in the engines that constrain decoding: xgrammar (vLLM's and
SGLang's backend), outlines-core and llguidance (vLLM's ``guidance`` backend).

The texts an engine must accept are written by the build's own grammar with values a model
writes and the demos rarely hold: decimals at the end of the answer (``… is 1234.5.``),
negative numbers, free text over several lines where the strategy allows it, and quotes. The
texts it must refuse are those of :func:`export_samples.invalid_outputs`. A build's request
grammars (``grammars/<id>.*``: an item's own options, an Auto-Demo request's questions) are
read too, for its first requests.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path

import outlines_core
import pytest
import xgrammar
from export_samples import CASES, IDS, CharVocabulary, invalid_outputs, task_of, xgrammar_accepts
from grammar_reading import answer_json
from llguidance import LLMatcher
from promptc import markers
from promptc.build.make import build
from promptc.grammar.answer import AnswerGrammar, build_grammar, item_choices
from promptc.grammar.items import ParsedItem, Span
from promptc.ir import Task, Value
from test_guidance import accepts as guidance_accepts
from test_guidance import grammar_from

#: Numbers a model writes: negative, decimal, with a fraction of several digits.
NUMBERS = (Decimal("1234.5"), Decimal("-3.25"), Decimal("0.125"))
#: Request grammars read per build (a build has one per request where they exist).
REQUESTS_READ = 2


def _answers(task: Task, g: AnswerGrammar, item_ids: list[str] | None) -> list[Mapping[str, Value]]:
    """Per item: a decimal or negative number, a negative integer, free text with a line
    break (where the strategy lets an answer span lines) and quotes, the field's own choice."""
    own = item_choices(task, item_ids) if item_ids is not None else None
    demo = task.demos[0].outputs if task.demos else {}
    out: list[Mapping[str, Value]] = []
    for k in range(g.n_items):
        values: dict[str, Value] = {}
        for f in g.fields:
            name = f.type.name
            if name == "number":
                values[f.name] = NUMBERS[k % len(NUMBERS)]
            elif name == "integer":
                values[f.name] = -12 - k
            elif name == "text":
                line = 'First, "this" part.'
                values[f.name] = line + "\nThen the second line." if g.blueprint.multiline else line
            elif name == "boolean":
                values[f.name] = k % 2 == 0
            elif own is not None and f.name in own[k]:
                values[f.name] = own[k][f.name][-1]
            else:
                values[f.name] = f.choices[-1] if f.choices else demo[f.name]
        out.append(values)
    return out


def _questions(task: Task, g: AnswerGrammar, item_ids: list[str] | None) -> list[str]:
    if item_ids is None:
        demos = [task.demos[k % len(task.demos)] for k in range(g.n_items)] if task.demos else []
        sources = [d.inputs for d in demos] or [task.items[0].inputs] * g.n_items
    else:
        by_id = {it.id: it for it in task.items}
        sources = [by_id[i].inputs for i in item_ids]
    return [markers.question_text(task.inputs, s) for s in sources]


def _json_text(g: AnswerGrammar, answers: list[Mapping[str, Value]], questions: list[str]) -> str:
    items = [
        ParsedItem(i, dict(a), Span(0, 0, None), {}, questions[i - 1])  # type: ignore[arg-type]
        for i, a in enumerate(answers, 1)
    ]
    return json.dumps(answer_json(g, items))


def _check(folder: Path, stem: str, valid: str, json_valid: str, invalid: list[str]) -> None:
    """The files ``<stem>.regex``, ``.gbnf``, ``.schema.json`` as read from disk: the valid
    texts accepted by every engine, the invalid ones refused."""
    regex = (folder / f"{stem}.regex").read_text(encoding="utf-8")
    gbnf = (folder / f"{stem}.gbnf").read_text(encoding="utf-8")
    schema = (folder / f"{stem}.schema.json").read_text(encoding="utf-8")
    chars = CharVocabulary([valid, *invalid])
    index = outlines_core.Index(regex, chars.vocab)
    xg_regex = xgrammar.Grammar.from_regex(regex)
    xg_gbnf = xgrammar.Grammar.from_ebnf(gbnf)
    lg_regex, lg_gbnf = grammar_from("regex", regex), grammar_from("gbnf", gbnf)
    where = f"{folder.name}/{stem}"
    assert chars.accepts(index, valid), f"outlines-core {where}.regex: {valid!r}"
    assert xgrammar_accepts(xg_regex, valid), f"xgrammar {where}.regex: {valid!r}"
    assert guidance_accepts(lg_regex, valid), f"llguidance {where}.regex: {valid!r}"
    assert xgrammar_accepts(xg_gbnf, valid), f"xgrammar {where}.gbnf: {valid!r}"
    assert guidance_accepts(lg_gbnf, valid), f"llguidance {where}.gbnf: {valid!r}"
    for text in invalid:
        assert not chars.accepts(index, text), f"outlines-core {where}.regex: {text!r}"
        assert not xgrammar_accepts(xg_regex, text), f"xgrammar {where}.regex: {text!r}"
        assert not guidance_accepts(lg_regex, text), f"llguidance {where}.regex: {text!r}"
        assert not xgrammar_accepts(xg_gbnf, text), f"xgrammar {where}.gbnf: {text!r}"
    json_chars = CharVocabulary([json_valid])
    json_regex = outlines_core.json_schema.build_regex_from_schema(schema)
    assert json_chars.accepts(outlines_core.Index(json_regex, json_chars.vocab), json_valid)
    assert xgrammar_accepts(xgrammar.Grammar.from_json_schema(schema), json_valid), where
    assert guidance_accepts(LLMatcher.grammar_from_json_schema(schema), json_valid), where


@pytest.mark.parametrize(("spec", "kind"), CASES, ids=IDS)
def test_export_files_as_written_in_every_engine(spec: Path, kind: str, tmp_path: Path) -> None:
    task = task_of(spec, kind)
    done = build(task, tmp_path / "b")
    folder = tmp_path / "b"
    stems = done.manifest["grammar"]["stems"]  # type: ignore[index]
    for n, stem in sorted(stems.items()):
        g = build_grammar(task, int(n), kind)
        answers, questions = _answers(task, g, None), _questions(task, g, None)
        valid = g.write_output(answers, questions)
        _check(folder, stem, valid, _json_text(g, answers, questions), invalid_outputs(task, g))
        assert not (folder / f"{stem}.regex").read_text(encoding="utf-8").endswith("\n")
        assert not (folder / f"{stem}.parse.regex").read_text(encoding="utf-8").endswith("\n")
    lines = (folder / "batches.jsonl").read_text(encoding="utf-8").splitlines()
    for line in lines[:REQUESTS_READ]:
        batch = json.loads(line)
        regex = next((f for f in batch.get("grammar_files", {}) if f.endswith(".regex")), None)
        if regex is None or regex.endswith(".parse.regex"):
            continue
        ids = list(batch["item_ids"])
        g = build_grammar(task, len(ids), kind)
        answers, questions = _answers(task, g, ids), _questions(task, g, ids)
        choices = item_choices(task, ids)
        mine = g.for_items(choices) if choices is not None else g
        valid = mine.write_output(answers, questions)
        path = folder / regex
        _check(
            path.parent,
            path.name[: -len(".regex")],
            valid,
            _json_text(mine, answers, questions),
            [],
        )
