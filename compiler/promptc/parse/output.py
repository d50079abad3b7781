"""Model output → one result per item: ``ok | missing | malformed | duplicate | misaligned | extra``.

This is the last stage of the pipeline: it reads what a model wrote for one request, with the
answer grammar of that request's shape (:func:`promptc.grammar.answer.build_grammar`), and tells, item
by item, what the model answered and whether it can be trusted. It never attributes an answer
to the wrong item and never raises on any output string.

Two modes:

``strict``
    The whole output must match the grammar (the fast path's regex, then
    :meth:`AnswerGrammar.parse_strict`). Values are reported only when it does; otherwise the
    item where the grammar stopped gets the diagnosis (output line:col, expected tokens, what
    was found) and every other item says that strict mode rejected the output there.

``recover`` (default)
    Keeps every well-formed item of a partly broken output. A fast path first matches the whole
    output against the grammar's regular expression; when that fails, a marker scanner finds
    every ``Q[i]:`` / ``A[i]:`` (tolerating markdown emphasis, headings, fences, chatter,
    full-width lookalikes) and each answer body is read on its own with
    :meth:`AnswerGrammar.parse_answer`.

The rules, in full, are in ``docs/parsing.md``; the constants that tune them are below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from promptc.errors import OutputParseError
from promptc.ir import Literal_, StrategyKind, Task
from promptc.parse.fast import parse_fast
from promptc.parse.recover import parse_recover
from promptc.parse.results import MODES, ItemResult, Mode
from promptc.parse.shape import RequestShape, request_shape
from promptc.parse.strict import parse_strict

if TYPE_CHECKING:
    from promptc.grammar.answer import AnswerGrammar

# --------------------------------------------------------------------------------------------
# Grammar
# --------------------------------------------------------------------------------------------

_GRAMMARS: dict[tuple[int, int, str], tuple[Task, AnswerGrammar]] = {}


def grammar_for(task: Task, n_items: int, kind: StrategyKind) -> AnswerGrammar:
    """The answer grammar of a request shape, built once per (task, size, kind)."""
    key = (id(task), n_items, kind)
    hit = _GRAMMARS.get(key)
    if hit is not None and hit[0] is task:
        return hit[1]
    from promptc.grammar.answer import build_grammar

    g = build_grammar(task, n_items, kind)
    if len(_GRAMMARS) > 256:
        _GRAMMARS.clear()
    _GRAMMARS[key] = (task, g)
    return g


# --------------------------------------------------------------------------------------------
# parse_output
# --------------------------------------------------------------------------------------------


def parse_output(
    task: Task,
    request: object,
    output: str,
    *,
    mode: Mode = "recover",
    grammar: AnswerGrammar | None = None,
) -> list[ItemResult]:
    """Parses one request's model output into one result per item (plus ``extra`` results).

    Args:
        task: The compiled task (its outputs and answer format define the grammar; its items
            give the questions an Auto-Demo answer must repeat).
        request: An :class:`~promptc.ir.Request`, a ``requests.jsonl`` line, or any object with
            ``id``, ``kind`` and ``item_ids`` (see :func:`request_shape`).
        output: What the model wrote. Any string: this function never raises on it.
        mode: ``"recover"`` (default) or ``"strict"``.
        grammar: The request shape's grammar, if the caller has it already.

    Returns:
        The request's items in order, then ``extra`` answers by index.

    Raises:
        OutputParseError: ``request`` or ``mode`` is not usable (never for the output text).
    """
    if mode not in MODES:
        raise OutputParseError(
            f"unknown parse mode {mode!r}; expected recover or strict", code="bad-mode"
        )
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    if not isinstance(output, str):
        raise OutputParseError(
            f"the output of request {shape.id} is {type(output).__name__}, expected text",
            code="bad-output",
        )
    g = grammar or grammar_for(task, len(shape.item_ids), shape.kind)
    if mode == "strict":
        return parse_strict(shape, g, output)
    fast = parse_fast(shape, g, output)
    if fast is not None:
        return fast
    return parse_recover(shape, g, output, _ends_with_literal(task))


def parse_output_recover_slow(
    task: Task, request: object, output: str, *, grammar: AnswerGrammar | None = None
) -> list[ItemResult]:
    """``recover`` mode without the fast path: the marker scanner alone (for tests and bench)."""
    shape = request if isinstance(request, RequestShape) else request_shape(task, request)
    g = grammar or grammar_for(task, len(shape.item_ids), shape.kind)
    return parse_recover(shape, g, output, _ends_with_literal(task))


def _ends_with_literal(task: Task) -> bool:
    segs = task.answer_format.segments
    return bool(segs) and isinstance(segs[-1], Literal_) and bool(segs[-1].text.strip())
