"""The outputs that every grammar export is held to, in every engine's test: for each example
spec and strategy, the spec's demo answers written in the canonical layout (valid), and the
same output broken in the ways a model breaks it (invalid)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

from promptc import markers
from promptc.grammar.answer import AnswerGrammar, build_grammar
from promptc.ir import Task, Value
from promptc.spec.answer_format import write_answer
from promptc.spec.lower import compile_spec
from promptc.values import text_answers

if TYPE_CHECKING:
    import outlines_core
    import xgrammar

SPECS = sorted((Path(__file__).resolve().parent.parent / "specs").glob("*.yaml"))
KINDS: tuple[str, ...] = ("single", "few-shot", "batch", "auto-demo")
CASES = [(spec, kind) for spec in SPECS for kind in KINDS]
IDS = [f"{s.stem}-{k}" for s, k in CASES]


@cache
def task_of(spec: Path, kind: str) -> Task:
    """The example spec compiled in ``kind``."""
    return compile_spec(spec, overrides={("strategy", "kind"): kind})


def grammar_of(spec: Path, kind: str) -> tuple[Task, AnswerGrammar]:
    """The task and its grammar for one item, or for up to three (the spec's demos)."""
    task = task_of(spec, kind)
    n = 1 if kind in ("single", "few-shot") else min(3, max(1, len(task.demos)))
    return task, build_grammar(task, n, kind)


def demo_answers(task: Task, n: int) -> tuple[list[Mapping[str, Value]], list[str]]:
    """The values and questions of the spec's demos (cycled to ``n``)."""
    demos = [task.demos[k % len(task.demos)] for k in range(n)]
    return [d.outputs for d in demos], [markers.question_text(task.inputs, d.inputs) for d in demos]


def valid_output(task: Task, g: AnswerGrammar) -> str:
    """The demos' answers in the grammar's canonical layout."""
    answers, questions = demo_answers(task, g.n_items)
    return g.write_output(answers, questions)


def invalid_outputs(task: Task, g: AnswerGrammar) -> list[str]:
    """Outputs that break the format: chatter after it, a typed value replaced by a word, an
    item short; for several items chatter before it and a marker without its space."""
    good = valid_output(task, g)
    bad = [good + "\nThat is all."]
    answers, _ = demo_answers(task, g.n_items)
    body = write_answer(task.answer_format, task.outputs, answers[0]).strip()
    for f in g.fields:
        if f.type.name != "text":
            written = f.type.write(f, answers[0][f.name])
            k = body.rindex(written)
            # An option named by its text (answer_with): the shared grammar admits any one
            # line up to twice the longest option, so only a longer one is out.
            word = "x" * (2 * f.option_chars + 1) if text_answers(f) else "maybe-not"
            bad.append(good.replace(body, body[:k] + word + body[k + len(written) :], 1))
    if g.n_items > 1:
        bad.append(good[: good.rindex("\n")])
    if not g.kind.one_item:
        bad.append("Sure! " + good)
        marker = markers.answer_marker(1, g.blueprint.markers)
        bad.append(good.replace(marker + markers.MARKER_SEPARATOR, marker, 1))
    assert good not in bad
    return bad


class CharVocabulary:
    """An outlines-core vocabulary of single characters (printable ASCII, ``\n``, ``\t`` and
    those of ``texts``): walking an index over it is a full match of a text."""

    def __init__(self, texts: Sequence[str]) -> None:
        import outlines_core

        chars = sorted({chr(c) for c in range(32, 127)} | {"\n", "\t"} | set("".join(texts)))
        self.ids = {c: k for k, c in enumerate(chars)}
        self.vocab = outlines_core.Vocabulary(len(chars), {c: [k] for c, k in self.ids.items()})

    def accepts(self, index: outlines_core.Index, text: str) -> bool:
        state = index.get_initial_state()
        for ch in text:
            nxt = index.get_next_state(state, self.ids[ch])
            if nxt is None:
                return False
            state = nxt
        return bool(index.is_final_state(state))


def xgrammar_accepts(grammar: xgrammar.Grammar | str, text: str) -> bool:
    """Whether xgrammar's matcher, fed ``text`` (a GBNF text or a compiled grammar), accepts
    it whole and may stop there."""
    # Imported here: xgrammar takes seconds to import, and only the engine tests need it.
    from xgrammar.testing import _is_grammar_accept_string

    return bool(_is_grammar_accept_string(grammar, text))
