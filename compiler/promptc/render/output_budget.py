"""The output budget of a request: a ``max_tokens`` that fits the request's shape.

A spec may give the budget per item (``model.max_tokens_per_item``); each request is then sent

    max_tokens = Σ over its items (per-item budget + the text the model writes besides the answer)

where that text is the item's markers (``A[k]: `` and the line break after the answer) and, for
a strategy whose model repeats the questions (``kind.repeats_questions``: Auto-Demo), the
item's question as the prompt shows it (``Q[k]: question``, or one ``Label[k]: value`` line per
input with ``markers.inputs: indexed``). A one-item strategy writes no markers: its budget is the
per-item one.

**The JSON form.** A request constrained by the JSON Schema export (``promptc run --grammar
json-schema``, a batch body built with ``--grammar json-schema``) is answered in the grammar's
JSON form, which writes more than the text form besides the values: the keys, quotes, braces and
commas, each item's ``index`` (and its question as a JSON string, escaped, in Auto-Demo), and
the white space a constrained model writes between JSON tokens (SmolLM2 under llama.cpp's JSON
grammar wrote a blank line between every two). Its budget is

    max_tokens = items × per-item budget + the JSON form of the whole answer with every value
                 left empty, a blank line between every two of its tokens (:func:`json_fixed_text`)

counted in bytes as below. Measured for the example specs (``tests/test_output_budget.py``),
that allowance is at least the tokens of the JSON form spelt compactly, with spaces
(``json.dumps``), indented and with blank lines in ``o200k_base`` and ``cl100k_base``. The values
are the per-item budget's: a JSON value is the text value in quotes (which the allowance counts
for every field), with ``\"``, ``\\`` and ``\n`` for the characters JSON escapes in free text.

**How the fixed text is counted.** A build must be byte-identical on every machine, so the
count cannot depend on which tokenizer happens to be installed (``bpe-openai`` is an optional
extra; a ``.gguf``'s own tokenizer needs a llama.cpp server). promptc counts the text's UTF-8
bytes instead: a byte-level BPE (OpenAI's ``o200k_base`` and ``cl100k_base``, Llama 3, SmolLM2,
Qwen, GPT-2 …) never makes a token of less than one byte, so the byte count never under-counts
— a budget that may be generous, never one that cuts an answer short. Measured on the example
specs' questions (``tests/test_output_budget.py`` holds it against ``o200k_base`` and
``cl100k_base``): the bytes of the repeated questions are 3.2–4.6 times those encodings' tokens
(2.5 times at the least for one item), and 1.4 times for the markers — room a request never
uses, which a server's context check (:mod:`promptc.run.context`) counts too.

:func:`budget_need` says what a spec's fixed ``model.max_tokens`` cannot fit: ``check`` and
``plan`` warn with :func:`budget_warning`.
"""

from __future__ import annotations

import heapq
import json
import math
import re
from collections.abc import Callable, Mapping, Sequence

from promptc import ir
from promptc.errors import SpecWarning
from promptc.markers import (
    ITEM_SEPARATOR,
    MARKER_SEPARATOR,
    answer_marker,
    question_block,
    question_text,
)

__all__ = [
    "MESSAGES",
    "budget_need",
    "budget_warning",
    "count_bound",
    "fit_params",
    "fixed_text",
    "json_fixed_text",
    "json_skeleton",
    "request_budget",
]

MESSAGES: dict[str, str] = {
    "budget-too-small": "model.max_tokens {max_tokens} may cut off the requests of {variant}: "
    "a request of {items} items may need up to {need} tokens",
}
HINTS: dict[str, str] = {
    "budget-too-small": "set model.max_tokens_per_item, which fits each request's budget to "
    "its items, or raise model.max_tokens to {need}",
}


def count_bound(text: str) -> int:
    """Tokens ``text`` takes at most, for any byte-level BPE: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


def fixed_text(task: ir.Task, position: int, item: ir.Item) -> str:
    """What the model writes for the item at ``position`` (1-based) besides its answer: its
    answer marker and line break, and its repeated question when the strategy repeats them;
    nothing for a one-item strategy."""
    kind = task.strategy.kind
    if kind.one_item:
        return ""
    text = answer_marker(position, task.markers) + MARKER_SEPARATOR + ITEM_SEPARATOR
    if kind.repeats_questions:
        text += question_block(task.inputs, item.inputs, position, task.markers)
        text += ITEM_SEPARATOR
    return text


#: One token of JSON: a string (escapes inside), a run of a number or literal, or one of
#: ``{}[]:,``. A constrained model may write white space between any two.
JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[^\s"{}\[\]:,]+|[{}\[\]:,]')
#: The white space counted between two JSON tokens: the blank line SmolLM2 wrote between every
#: two under llama.cpp's JSON grammar (``{\n\n"answers"\n\n:\n\n[``), the widest seen.
JSON_SPACE = "\n\n"


def json_skeleton(task: ir.Task, items: Sequence[ir.Item]) -> str:
    """The JSON form of the answer to ``items`` (in prompt order), as the grammar's JSON
    Schema export orders it, with every value an empty string (its two quotes stand for a
    value's quotes), spelt compactly."""
    kind = task.strategy.kind
    values: dict[str, object] = dict.fromkeys(task.answer_format.fields, "")
    answer: object = values
    if not kind.one_item:
        answers = []
        for k, item in enumerate(items, 1):
            entry: dict[str, object] = {"index": k}
            if kind.repeats_questions:
                entry["question"] = question_text(task.inputs, item.inputs)
            answers.append({**entry, **values})
        answer = {"answers": answers}
    # ensure_ascii: a question's non-ASCII characters counted as \uXXXX escapes, more bytes
    # than their UTF-8 (a model may write either).
    return json.dumps(answer, separators=(",", ":"), ensure_ascii=True)


def json_fixed_text(task: ir.Task, items: Sequence[ir.Item]) -> str:
    """What the model writes besides the values when it answers ``items`` in the JSON form,
    counted for its budget: :func:`json_skeleton` with :data:`JSON_SPACE` between every two
    JSON tokens."""
    return JSON_SPACE.join(JSON_TOKEN.findall(json_skeleton(task, items)))


def request_budget(task: ir.Task, items: Sequence[ir.Item], json_form: bool = False) -> int | None:
    """The ``max_tokens`` of a request of ``items`` (in prompt order) when the spec gives a
    budget per item; ``None`` otherwise (the spec's ``max_tokens``, if any, is sent).

    Args:
        json_form: The request is answered in the JSON form (see the module's docstring).
    """
    per_item = task.model.max_tokens_per_item
    if per_item is None:
        return None
    if json_form:
        return per_item * len(items) + count_bound(json_fixed_text(task, items))
    return sum(per_item + count_bound(fixed_text(task, k, item)) for k, item in enumerate(items, 1))


def fit_params(
    task: ir.Task, items: Sequence[ir.Item], params: Mapping[str, object], json_form: bool
) -> Mapping[str, object]:
    """A request's parameters with ``max_tokens`` fitted to ``items`` answered in the form
    said (the text form's is what a build writes), when the spec gives a budget per item and
    the parameters carry one; ``params`` itself otherwise."""
    budget = request_budget(task, items, json_form)
    if budget is None or "max_tokens" not in params or params["max_tokens"] == budget:
        return params
    return {**params, "max_tokens": budget}


def _answer_bound(task: ir.Task, count: Callable[[str], int]) -> int:
    """One answer's tokens as the value types estimate them, rounded up."""
    total = 0.0
    for seg in task.answer_format.segments:
        if isinstance(seg, ir.Literal_):
            total += count(seg.text)
        else:
            f = task.output(seg.field)
            total += f.type.tokens(f, count, task)
    return math.ceil(total)


def budget_need(task: ir.Task) -> int | None:
    """The budget the largest request of the task may need, when the spec's fixed
    ``model.max_tokens`` is below it; ``None`` when it fits, when the budget is per item, when
    there is none, or for a one-item strategy (whose ``max_tokens`` is one item's).

    The largest request is bounded without selecting: its items are the ones with the longest
    fixed text, each answered as the value types estimate (:meth:`ValueType.tokens`)."""
    cap = task.model.max_tokens
    kind = task.strategy.kind
    if cap is None or task.model.max_tokens_per_item is not None or kind.one_item:
        return None
    n = min(task.strategy.batch_size, len(task.items))
    answer = _answer_bound(task, count_bound)
    # The marker of position k is longest at the last positions: pair the longest texts with
    # the highest positions (what any order can need at most).
    texts = heapq.nlargest(n, (count_bound(fixed_text(task, n, item)) for item in task.items))
    need = n * answer + sum(texts)
    return need if need > cap else None


def budget_warning(task: ir.Task, variant: str) -> SpecWarning | None:
    """The located warning of :func:`budget_need`, naming the variant, or ``None``."""
    need = budget_need(task)
    if need is None:
        return None
    code = "budget-too-small"
    return SpecWarning(
        MESSAGES[code].format(
            max_tokens=task.model.max_tokens,
            variant=variant,
            items=min(task.strategy.batch_size, len(task.items)),
            need=need,
        ),
        location=task.model.location,
        path=("model", "max_tokens"),
        hint=HINTS[code].format(need=need),
        code=code,
    )
