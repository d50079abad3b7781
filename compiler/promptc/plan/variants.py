"""The variants that ``plan`` and ``eval`` compare: strategy × batch size × selection method.

``single`` and ``few-shot`` send one item per request, so they appear once whatever
``--batch-sizes`` says; ``batch`` and ``auto-demo`` appear once per batch size.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from promptc.build.rounds import too_many_rounds
from promptc.errors import Location, PromptcError, PromptcErrors, UsageError, did_you_mean
from promptc.ir import SELECTION_METHODS, Task
from promptc.limits import MAX_BATCH_SIZE
from promptc.spec.load import COMMAND_LINE
from promptc.strategies import NAMES, STRATEGIES, Strategy

DEFAULT_STRATEGIES: tuple[Strategy, ...] = tuple(STRATEGIES.values())
DEFAULT_BATCH_SIZES: tuple[int, ...] = (4, 8, 16)


@dataclass(frozen=True)
class Variant:
    """One way of running a spec: ``batch-8`` is the batch strategy at 8 items a request."""

    kind: Strategy
    batch_size: int | None  # None for single and few-shot
    selection: str | None = None  # None: the spec's own selection method

    @property
    def name(self) -> str:
        """``single``, ``few-shot``, ``batch-8``, ``auto-demo-16`` (``+retrieval`` if set)."""
        base = self.kind.name if self.batch_size is None else self.kind.variant(self.batch_size)
        return base if self.selection is None else f"{base}+{self.selection}"

    def overrides(self) -> dict[tuple[str, ...], object]:
        """The spec overrides that select this variant."""
        out: dict[tuple[str, ...], object] = {("strategy", "kind"): self.kind.name}
        if self.batch_size is not None:
            out[("strategy", "batch_size")] = self.batch_size
        if self.selection is not None:
            out[("strategy", "selection", "method")] = self.selection
        return out


def _bad(option: str, message: str, code: str) -> UsageError:
    return UsageError(message, location=Location(COMMAND_LINE), path=(option,), code=code)


def parse_strategies(text: str | None) -> tuple[Strategy, ...]:
    """``"single,batch"`` → those two strategies; ``None`` → all four.

    Raises:
        UsageError: An unknown or repeated strategy, or an empty list.
    """
    if text is None:
        return DEFAULT_STRATEGIES
    out: list[Strategy] = []
    for part in (p.strip() for p in text.split(",")):
        if part not in STRATEGIES:
            hint = did_you_mean(part, NAMES)
            raise _bad(
                "--strategies",
                f"unknown strategy {part!r}; expected one of "
                + ", ".join(NAMES)
                + (f" ({hint})" if hint else ""),
                "unknown-strategy",
            )
        if STRATEGIES[part] in out:
            raise _bad("--strategies", f"strategy {part!r} is listed twice", "repeated-strategy")
        out.append(STRATEGIES[part])
    return tuple(out)


def parse_batch_sizes(text: str | None) -> tuple[int, ...]:
    """``"4,8,16"`` → ``(4, 8, 16)``; ``None`` → :data:`DEFAULT_BATCH_SIZES`.

    Raises:
        UsageError: Something that is not a whole number from 1 to :data:`MAX_BATCH_SIZE`.
    """
    if text is None:
        return DEFAULT_BATCH_SIZES
    out: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        # ASCII digits, a few of them: str.isdigit takes "²", and int() refuses a number
        # past Python's digit limit.
        if not (part.isascii() and part.isdigit() and len(part) <= 6) or not (
            1 <= int(part) <= MAX_BATCH_SIZE
        ):
            shown = part if len(part) <= 40 else part[:39] + "…"  # a 5,000-digit one too
            raise _bad(
                "--batch-sizes",
                f"batch size {shown!r} is not a whole number from 1 to {MAX_BATCH_SIZE}",
                "bad-batch-size",
            )
        if int(part) not in out:
            out.append(int(part))
    return tuple(out)


def parse_selection(text: str | None) -> str | None:
    """A selection method for every batched variant, or ``None`` for the spec's own.

    Raises:
        UsageError: Not a selection method.
    """
    if text is None or text in SELECTION_METHODS:
        return text
    raise _bad(
        "--selection",
        f"unknown selection method {text!r}; expected one of " + ", ".join(SELECTION_METHODS),
        "unknown-selection",
    )


def variants(
    strategies: Sequence[Strategy],
    batch_sizes: Sequence[int],
    selection: str | None = None,
) -> tuple[Variant, ...]:
    """Every variant asked for, in the order given: one-item strategies once, the others once
    per batch size. ``selection`` applies to the batched ones (one item needs no grouping)."""
    out: list[Variant] = []
    for kind in strategies:
        if kind.one_item:
            out.append(Variant(kind, None))
        else:
            out.extend(Variant(kind, n, selection) for n in batch_sizes)
    return tuple(out)


#: A variant plan and eval leave out (``{name}``, ``{size}``): its batches cannot hold the
#: spec's voting rounds (``vote-batch-size``), while the spec's own and larger ones can.
LEFT_OUT = (
    "{name} is left out: batches of {size} are fewer positions than the spec's voting rounds "
    "(strategy.vote.rounds)"
)


#: A variant plan and eval leave out beside others (``{name}``): few-shot of a spec with no
#: demos, which the default strategies list (asked for alone, it is the spec's error).
NO_DEMOS = "{name} is left out: the spec has no demos to show (add demos to compare it)"


def compile_each(
    variants: Sequence[Variant], compile_variant: Callable[[Variant], Task]
) -> tuple[list[tuple[Variant, Task]], list[str]]:
    """Each variant's task, and why each left out was (:data:`LEFT_OUT`, :data:`NO_DEMOS`):
    few-shot beside other variants for a spec without demos; a variant whose
    batches are smaller than the spec's voting rounds (``vote-batch-size``), or whose data
    make them so (``vote-rounds``: two items with ``--limit 2``), is left out, so that plan
    and eval do not fail on the batch sizes they try by default, nor after paying for the
    variants before it; any other error of a variant is raised.

    Raises:
        PromptcErrors: A variant does not compile for another reason.
        SelectionError: Every variant's data make its batches too narrow (``vote-rounds``).
    """
    tasks, left_out = [], []
    narrow: PromptcError | None = None  # the first variant the data make too narrow
    for v in variants:
        try:
            task = compile_variant(v)
        except PromptcErrors as e:
            codes = {x.code for x in e.errors}
            if codes == {"few-shot-no-demos"} and len(variants) > 1:
                left_out.append(NO_DEMOS.format(name=v.name))
                continue
            if codes != {"vote-batch-size"}:
                raise
            left_out.append(LEFT_OUT.format(name=v.name, size=v.batch_size))
            continue
        # The batches the data make may be narrower than the size asked (two items with
        # --limit 2): found before anything is sent, not after paying for others.
        too_many = too_many_rounds(task)
        if too_many is not None:
            narrow = narrow or too_many
            left_out.append(f"{v.name} is left out: {too_many.message}")
            continue
        tasks.append((v, task))
    if narrow is not None and not tasks:  # nothing left to plan: the spec's own error
        raise narrow
    return tasks, left_out
