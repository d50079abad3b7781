"""The arithmetic of ``promptc plan``: tokens, the floor and cost per variant, from the rendered
requests alone.

Per variant:

- **input tokens**: every request's messages counted by the tokenizer, chat framing included
  (exact when the tokenizer is the model's own);
- **output tokens per question**: what one answer takes — the answer format's literal text and
  markers counted exactly, plus per field what its type says
  (:meth:`promptc.values.ValueType.tokens`): an ``enum`` choice or a ``boolean`` word at its
  longest as declared, a ``number``/``integer`` as long as the gold answers (else the demos')
  are on average, ``text`` as long as the demos' on average. An Auto-Demo answer also repeats
  its question, counted exactly. The figure is an estimate, never a bound (the grammar admits
  every value in longer spellings: any case, ``YES`` for ``yes``); ``max_tokens`` never stands
  in for it: a request whose estimate is over
  ``max_tokens`` is counted at its estimate and flagged (the model would be cut short there);
- **the floor**: what the questions themselves take, ``question + answer``, with no
  instruction, demos, markers or chat framing — no strategy can send less;
- **cost**: input tokens × input price + output tokens × output price (USD per million); with a
  cached-input price, the prefix every request repeats (instruction, demos: the leading messages
  they share) is priced at it in every request but the first, as an engine's prompt cache
  serves it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any

from promptc import ir
from promptc.build.rounds import with_rounds
from promptc.errors import Location, UsageError
from promptc.markers import (
    ITEM_SEPARATOR,
    MARKER_SEPARATOR,
    answer_marker,
    question_block,
    question_text,
)
from promptc.plan.probe import Rates
from promptc.plan.tokenizers import Tokenizer, tokenizer_for
from promptc.plan.variants import Variant, compile_each
from promptc.render.output_budget import fit_params, json_skeleton
from promptc.render.renderer import Renderer
from promptc.select.methods import select
from promptc.spec.load import COMMAND_LINE
from promptc.spec.lower import compile_spec

MILLION = Decimal(1_000_000)
#: What ``plan`` rounds a cost to: a millionth of a dollar.
MICRO_USD = Decimal("0.000001")
#: Significant digits of an exact cost: enough for any product of a token count and a price
#: a user writes, so that no cost is rounded before it is compared.
EXACT_DIGITS = 200
#: The largest price taken, in US dollars per million tokens (docs/limits.md).
MAX_PRICE = Decimal(1_000_000)


@dataclass(frozen=True)
class Pricing:
    """USD per million tokens, and where it came from (``model.price`` or the options).

    ``cached`` prices the input tokens the engine serves from its prompt cache (``None``: they
    cost ``input``, as on an engine without one).
    """

    input: Decimal
    output: Decimal
    source: str
    cached: Decimal | None = None

    def cost(self, input_tokens: int, output_tokens: float, cached_tokens: int = 0) -> Decimal:
        """USD of ``input_tokens`` (of which ``cached_tokens`` from the cache) and output, to
        the millionth of a dollar (what ``plan`` shows)."""
        return self.exact_cost(input_tokens, output_tokens, cached_tokens).quantize(MICRO_USD)

    def exact_cost(
        self, input_tokens: int, output_tokens: float, cached_tokens: int = 0
    ) -> Decimal:
        """:meth:`cost` unrounded: the exact product of the counts and the prices (what
        ``eval`` compares variants on; rounding a total first could tie two variants that
        differ, or order them the wrong way)."""
        cached = Decimal(cached_tokens) if self.cached is not None else Decimal(0)
        with localcontext() as ctx:
            ctx.prec = EXACT_DIGITS  # products of counts and prices, never rounded
            out = (
                (Decimal(input_tokens) - cached) * self.input
                + cached * (self.cached or Decimal(0))
                + Decimal(str(round(output_tokens))) * self.output
            )
            return out / MILLION

    def to_dict(self) -> dict[str, Any]:
        return {
            "input_usd_per_mtok": format(self.input, "f"),
            "output_usd_per_mtok": format(self.output, "f"),
            "cached_input_usd_per_mtok": None if self.cached is None else format(self.cached, "f"),
            "source": self.source,
        }


def price_of(
    task: ir.Task,
    price_in: str | float | None,
    price_out: str | float | None,
    price_cached: str | float | None = None,
) -> Pricing | None:
    """The price to use: ``--price-in``/``--price-out`` (and ``--price-cached``) over the
    spec's ``model.price``.

    Raises:
        UsageError: A price that is not a non-negative number, only one of the two, or
            ``--price-cached`` with no price for the other tokens (it would price nothing).
    """
    cached = None if price_cached is None else _price(price_cached, "--price-cached")
    if price_in is None and price_out is None:
        p = task.model.price
        if p is None:
            if cached is not None:
                raise UsageError(
                    "a price of cached input tokens alone prices none of the others: give "
                    "--price-in and --price-out too (USD per million tokens), or model.price in "
                    "the spec",
                    location=Location(COMMAND_LINE),
                    path=("--price-cached",),
                    code="price-incomplete",
                )
            return None
        return Pricing(
            p.input, p.output, "model.price", p.cached_input if cached is None else cached
        )
    if price_in is None or price_out is None:
        raise UsageError(
            "give both --price-in and --price-out (USD per million tokens)",
            location=Location(COMMAND_LINE),
            code="price-incomplete",
        )
    return Pricing(
        _price(price_in, "--price-in"), _price(price_out, "--price-out"), "options", cached
    )


class RepeatedPrefix:
    """The leading messages every request sends alike (the instruction, the demos): what an
    engine's prompt cache serves again after the first request. Taken one request at a time
    (:meth:`add`); empty for one request."""

    def __init__(self) -> None:
        self.shared: list[Mapping[str, Any]] | None = None
        self.requests = 0

    def add(self, messages: Sequence[Mapping[str, Any]]) -> None:
        """The next request's messages."""
        self.requests += 1
        if self.shared is None:
            self.shared = list(messages)
            return
        same = 0
        for a, b in zip(self.shared, messages):
            if a != b:
                break
            same += 1
        del self.shared[same:]

    @property
    def messages(self) -> list[Mapping[str, Any]]:
        return self.shared if self.shared is not None and self.requests >= 2 else []

    def cached_tokens(self, tok: Tokenizer) -> int:
        """Input tokens an engine with a prompt cache serves from it: the prefix in every
        request but the first (chat framing of the reply left out)."""
        prefix = self.messages
        if not prefix:
            return 0
        once = max(tok.count_messages(prefix) - tok.count_messages([]), 0)
        return once * (self.requests - 1)


def repeated_prefix(requests: Iterable[Sequence[Mapping[str, Any]]]) -> list[Mapping[str, Any]]:
    """:class:`RepeatedPrefix` of these requests' messages."""
    return _prefix(requests).messages


def cached_tokens(requests: Iterable[Sequence[Mapping[str, Any]]], tok: Tokenizer) -> int:
    """:meth:`RepeatedPrefix.cached_tokens` of these requests' messages."""
    return _prefix(requests).cached_tokens(tok)


def _prefix(requests: Iterable[Sequence[Mapping[str, Any]]]) -> RepeatedPrefix:
    prefix = RepeatedPrefix()
    for messages in requests:
        prefix.add(messages)
    return prefix


def _price(value: str | float, option: str) -> Decimal:
    try:
        d = Decimal(str(value).strip())
    except InvalidOperation:
        d = Decimal("NaN")
    if not d.is_finite() or d < 0:
        raise UsageError(
            f"price {str(value)!r} is not a number of US dollars per million tokens "
            "(expected e.g. 0.15)",
            location=Location(COMMAND_LINE),
            path=(option,),
            code="bad-price",
        )
    if d and d.adjusted() < -12:  # a cost of it would be a billion digits for 1e-999999999
        raise UsageError(
            f"price {str(value)!r} is less than 0.000000000001 US dollars per million tokens "
            "(write 0 for a free model)",
            location=Location(COMMAND_LINE),
            path=(option,),
            code="bad-price",
        )
    if d > MAX_PRICE:  # a cost past it would not fit the six decimals costs are shown with
        raise UsageError(
            f"price {str(value)!r} is more than {MAX_PRICE} US dollars per million tokens",
            location=Location(COMMAND_LINE),
            path=(option,),
            code="bad-price",
        )
    return d


@dataclass(frozen=True)
class AnswerEstimate:
    """Tokens of one answer (without markers), and of each field's value in it."""

    tokens: float
    fields: dict[str, float]


def answer_estimate(task: ir.Task, tok: Tokenizer) -> AnswerEstimate:
    """Tokens of one answer as :mod:`promptc.plan.estimate` documents."""
    total = 0.0
    per: dict[str, float] = {}
    for seg in task.answer_format.segments:
        if isinstance(seg, ir.Literal_):
            total += tok.count(seg.text)
            continue
        f = task.output(seg.field)
        per[f.name] = f.type.tokens(f, tok.count, task)
        total += per[f.name]
    return AnswerEstimate(total, per)


@dataclass(frozen=True)
class VariantPlan:
    """What one variant sends and costs.

    Attributes:
        variant: The strategy, batch size and selection.
        requests: Requests sent.
        items: Questions answered.
        input_tokens: Input tokens of all requests, chat framing included.
        output_tokens: Output tokens of all requests: an estimate, never a bound (the
            grammar admits longer spellings of every value, ``YES`` for ``yes``).
        floor_tokens: The questions' own tokens plus their answers', in total.
        cost: USD, when a price is known.
        cap: The spec's ``model.max_tokens`` (``None``: not set).
        capped: The estimated output of each request whose estimate is over ``cap``: the model
            would be cut before it answers every item.
        cached_tokens: Input tokens an engine's prompt cache serves (the repeated prefix).
        cap_at: Where the spec sets ``model`` (for the warning).
    """

    variant: Variant
    requests: int
    items: int
    input_tokens: int
    output_tokens: float
    floor_tokens: float
    cost: Decimal | None
    cap: int | None = None
    capped: tuple[int, ...] = ()
    cached_tokens: int = 0
    cap_at: Location | None = None

    @property
    def input_per_question(self) -> float:
        return self.input_tokens / self.items if self.items else 0.0

    @property
    def output_per_question(self) -> float:
        return self.output_tokens / self.items if self.items else 0.0

    @property
    def floor_per_question(self) -> float:
        return self.floor_tokens / self.items if self.items else 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "variant": self.variant.name,
            "strategy": self.variant.kind.name,
            "batch_size": self.variant.batch_size,
            "selection": self.variant.selection,
            "requests": self.requests,
            "items": self.items,
            "input_tokens": self.input_tokens,
            "input_tokens_per_question": round(self.input_per_question, 2),
            "output_tokens": round(self.output_tokens),
            "output_tokens_per_question": round(self.output_per_question, 2),
            "floor_tokens_per_question": round(self.floor_per_question, 2),
            "times_floor": round(
                (self.input_per_question + self.output_per_question) / self.floor_per_question, 3
            )
            if self.floor_per_question
            else None,
            "cost_usd": None if self.cost is None else format(self.cost, "f"),
            "max_tokens": self.cap,
            "capped_requests": len(self.capped),
            "output_tokens_needed": max(self.capped, default=None),
            "cached_input_tokens": self.cached_tokens,
        }

    def cap_warning(self) -> str | None:
        """What to say when ``model.max_tokens`` cuts some requests short, else ``None``."""
        if not self.capped:
            return None
        where = "" if self.cap_at is None else f"{self.cap_at}: "
        return (
            f"{where}model.max_tokens: warning: {self.variant.name}: {len(self.capped)} of {self.requests} request(s) need more "
            f"output than model.max_tokens {self.cap} (up to {max(self.capped):,} tokens): "
            "the model would stop before answering every item, and those items would be "
            "lost to truncation; raise model.max_tokens to at least that"
        )


@dataclass(frozen=True)
class Plan:
    """Every variant's plan, and what they were counted with."""

    spec: str
    tokenizer: str
    exact: bool
    price: Pricing | None
    items: int
    variants: tuple[VariantPlan, ...]
    rates: Rates | None = None
    model: str = ""
    #: The variants asked for but left out, each with why (:data:`~promptc.plan.variants.LEFT_OUT`).
    left_out: tuple[str, ...] = ()

    def seconds(self, v: VariantPlan) -> float | None:
        """The variant's estimated wall time, one request at a time, when the engine was
        probed (:mod:`promptc.plan.probe`); the prefix its prompt cache serves is not read."""
        if self.rates is None:
            return None
        return self.rates.seconds(v.input_tokens - v.cached_tokens, v.output_tokens)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; the same for the same spec, data and options (timings only when the
        engine was probed)."""
        rows = [v.to_dict() for v in self.variants]
        if self.rates is not None:
            for row, v in zip(rows, self.variants):
                seconds = self.seconds(v) or 0.0
                row["seconds_estimate"] = round(seconds, 2)
                row["questions_per_second_estimate"] = (
                    round(v.items / seconds, 3) if seconds else None
                )
        out = {
            "spec": self.spec,
            "tokenizer": self.tokenizer,
            "tokens_exact": self.exact,
            "price": None if self.price is None else self.price.to_dict(),
            "items": self.items,
            "variants": rows,
        }
        if self.rates is not None:
            out["probe"] = self.rates.to_dict()
        if self.left_out:
            out["left_out"] = list(self.left_out)
        return out


def plan_task(
    task: ir.Task,
    variant: Variant,
    tok: Tokenizer,
    price: Pricing | None,
    json_form: bool = False,
) -> VariantPlan:
    """One variant's plan from its compiled task: its requests selected and rendered in memory,
    counted one at a time as they are rendered, none kept (as a build writes them).

    A request whose estimated output is over ``model.max_tokens`` keeps its estimate (what the
    answer needs, not what the model may say before it is cut) and counts in ``capped``. A
    spec that votes (``strategy.vote``) is planned with every round's requests: the cost of all
    rounds, which early stop can only lower.

    With ``json_form`` the answers are planned as the model writes them when a run constrains
    it with the JSON Schema export (``run --grammar json-schema``, a batch build's
    ``--grammar json-schema``): each request's output is its values and the JSON around them
    (:func:`json_output`), and its ``max_tokens`` the one that run sends
    (:func:`promptc.render.output_budget.fit_params`).
    """
    answer = answer_estimate(task, tok)
    items = task.items
    prefix = RepeatedPrefix()
    requests = input_tokens = 0
    output: float = 0
    cap: int | None = None  # the largest max_tokens a request is sent
    capped: list[int] = []
    for r in Renderer(task).iter_render(with_rounds(task, select(task))):
        mine = [items[i] for i in r.batch.item_indices]
        messages = [{"role": m.role, "content": m.content} for m in r.messages]
        input_tokens += tok.count_messages(messages)
        prefix.add(messages)
        if json_form:
            out = json_output(task, r, answer, tok, mine)
            params = fit_params(task, mine, r.params, json_form=True)
        else:
            out = request_output(task, r, answer.tokens, tok, mine)
            params = r.params
        output += out
        # Each request's own max_tokens: what the model is told, whatever set it.
        c = params.get("max_tokens")
        if isinstance(c, int):
            cap = c if cap is None else max(cap, c)
            if out > c:
                capped.append(round(out))
        requests += 1
    floor = sum(tok.count(question_text(task.inputs, i.inputs)) + answer.tokens for i in items)
    cached = prefix.cached_tokens(tok)
    return VariantPlan(
        variant=variant,
        requests=requests,
        items=len(items),
        input_tokens=input_tokens,
        output_tokens=output,
        floor_tokens=floor,
        cost=None if price is None else price.cost(input_tokens, output, cached),
        cap=task.model.max_tokens if cap is None else cap,
        capped=tuple(capped),
        cached_tokens=cached,
        cap_at=task.model.location,
    )


def request_output(
    task: ir.Task, r: ir.Request, answer: float, tok: Tokenizer, items: Sequence[ir.Item]
) -> float:
    """Output tokens of one request (``items``: its own, in order): per item, its markers (the
    task's), its repeated question as the prompt shows it (Auto-Demo) and one answer."""
    if r.kind.one_item:
        return answer * len(r.batch.item_ids)
    total = 0.0
    m = task.markers
    for k, item in enumerate(items, start=1):
        total += tok.count(answer_marker(k, m) + MARKER_SEPARATOR) + answer
        total += tok.count(ITEM_SEPARATOR)
        if r.kind.repeats_questions:
            q = question_block(task.inputs, item.inputs, k, m)
            total += tok.count(q + ITEM_SEPARATOR)
    return total


def json_output(
    task: ir.Task,
    r: ir.Request,
    answer: AnswerEstimate,
    tok: Tokenizer,
    items: Sequence[ir.Item],
) -> float:
    """Output tokens of one request (``items``: its own, in order) answered in the JSON form:
    per item its values (the answer format's literal text is not written), and the JSON around
    them spelt compactly (:func:`promptc.render.output_budget.json_skeleton`: keys, quotes,
    braces, indexes and, in Auto-Demo, the questions)."""
    values = sum(answer.fields.values())
    return values * len(r.batch.item_ids) + tok.count(json_skeleton(task, items))


def plan_spec(
    spec: str,
    variants: Sequence[Variant],
    *,
    data: str | None = None,
    tokenizer: str | None = None,
    price_in: str | float | None = None,
    price_out: str | float | None = None,
    price_cached: str | float | None = None,
    json_form: bool = False,
) -> Plan:
    """Plans every variant of a spec: no model is called.

    ``json_form``: the answers as a run constrained by the JSON Schema export has them
    written (:func:`plan_task`).

    Raises:
        PromptcErrors: The spec (or one variant of it) does not compile.
        UsageError: Bad options (tokenizer, price).
    """
    base: dict[tuple[str, ...], object] = {} if data is None else {("data", "path"): data}
    tasks, left_out = compile_each(
        variants, lambda v: compile_spec(spec, overrides={**base, **v.overrides()})
    )
    first = tasks[0][1] if tasks else compile_spec(spec, overrides=base or None)
    price = price_of(first, price_in, price_out, price_cached)
    tok = tokenizer_for(first.model.name, tokenizer, spec_dir=first.spec_dir)
    try:
        plans = tuple(plan_task(task, v, tok, price, json_form) for v, task in tasks)
    finally:
        tok.close()
    return Plan(
        spec=spec,
        tokenizer=tok.name,
        exact=tok.exact,
        price=price,
        items=len(first.items),
        variants=plans,
        model=first.model.name,
        left_out=tuple(left_out),
    )
