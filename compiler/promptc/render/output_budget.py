"""The output budget of a request: a ``max_tokens`` that fits the request's shape.

A spec may give the budget per item (``model.max_tokens_per_item``); each request is then sent

    max_tokens = Σ over its items (per-item budget + the text the model writes besides the answer)

where that text is the item's markers (``A[k]: `` and the line break after the answer) and, for
a strategy whose model repeats the questions (``kind.repeats_questions``: Auto-Demo), the
item's question as the prompt shows it (``Q[k]: question``, or one ``Label[k]: value`` line per
input with ``markers.inputs: indexed``). A one-item strategy writes no markers: its budget is the
per-item one.

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

import math
from collections.abc import Callable, Sequence

from promptc import ir
from promptc.errors import SpecWarning
from promptc.markers import (
    ITEM_SEPARATOR,
    MARKER_SEPARATOR,
    answer_marker,
    question_block,
)

__all__ = [
    "MESSAGES",
    "budget_need",
    "budget_warning",
    "count_bound",
    "fixed_text",
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


def request_budget(task: ir.Task, items: Sequence[ir.Item]) -> int | None:
    """The ``max_tokens`` of a request of ``items`` (in prompt order) when the spec gives a
    budget per item; ``None`` otherwise (the spec's ``max_tokens``, if any, is sent)."""
    per_item = task.model.max_tokens_per_item
    if per_item is None:
        return None
    return sum(per_item + count_bound(fixed_text(task, k, item)) for k, item in enumerate(items, 1))


def _answer_bound(task: ir.Task, count: Callable[[str], int]) -> int:
    """One answer's tokens as the value types estimate them, rounded up."""
    total = 0.0
    for seg in task.answer_format.segments:
        if isinstance(seg, ir.Literal_):
            total += count(seg.text)
        else:
            f = task.output(seg.field)
            total += f.type.tokens(f, count, task)[0]
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
    texts = sorted(count_bound(fixed_text(task, n, item)) for item in task.items)[-n:] if n else []
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
