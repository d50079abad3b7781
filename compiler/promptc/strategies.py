"""The prompting strategies: one class each, in one table.

A strategy says how a task's items become requests and what the model writes back. Everything
promptc does differently per strategy is asked of its object here — how many items a request
holds, whether the model repeats each question, which template and grammar skeleton it uses,
how its output aligns to its items, how repair splits it, how plan counts its output — so that
no other module compares strategy names. The names below are the only place they are spelled
(besides the spec schema, the templates and the docs).

=============  =================  =================================================================
strategy       items per request  what the model sees and writes
=============  =================  =================================================================
``single``     1                  instruction + one input, zero-shot; one answer
``few-shot``   1                  instruction + the spec's demos as solved examples + one input
``batch``      N                  ``Q[1]..Q[N]``; answers ``A[1]: … A[N]: …``, one line each
``auto-demo``  N                  the same inputs; repeats each ``Q[i]: …`` before its ``A[i]: …``
=============  =================  =================================================================

Adding a strategy: a subclass below and its entry in :data:`STRATEGIES`, its template in
``templates/`` (and its grammar skeleton in ``grammars/`` when it writes a new layout), its name
in the spec schema's ``strategy.kind`` enum, and its golden files.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

__all__ = [
    "AUTO_DEMO",
    "BATCH",
    "DEFAULT",
    "FEW_SHOT",
    "NAMES",
    "SINGLE",
    "STRATEGIES",
    "AutoDemo",
    "Batch",
    "FewShot",
    "Single",
    "Strategy",
    "find_strategy",
    "strategy",
]


class Strategy:
    """What one prompting strategy means to every stage. Instances are singletons (the values
    of :data:`STRATEGIES`), compared by identity; ``str()`` is the name, as specs, build files
    and reports spell it."""

    #: The name in specs (``strategy.kind``), build files, variants and reports.
    name: ClassVar[str]
    #: One item per request: the batch size does not apply, answers carry no item markers, and
    #: a text value may span lines.
    one_item: ClassVar[bool]
    #: The model writes each item's question again (``Q[i]: …``) before its answer
    #: (``A[i]: …``): the grammar pins the questions, the parser aligns answers by them, and
    #: plan counts them as output.
    repeats_questions: ClassVar[bool] = False
    #: The spec must have demos (``few-shot-no-demos`` otherwise).
    requires_demos: ClassVar[bool] = False
    #: Requests show the spec's demos (in the system message, or as solved turns).
    shows_demos: ClassVar[bool] = True
    #: The lark skeleton of an output (``grammars/``): how its items are laid out.
    skeleton: ClassVar[str]
    #: The colour of the strategy in eval's charts.
    colour: ClassVar[str]

    @property
    def template(self) -> str:
        """The shipped template's file name (``templates/``)."""
        return f"{self.name}.j2"

    def items_per_request(self, batch_size: int) -> int:
        """How many items one request holds, for a spec's ``batch_size``."""
        return 1 if self.one_item else batch_size

    def variant(self, batch_size: int) -> str:
        """The variant's name in plan and eval: ``single``, ``batch-8``."""
        return self.name if self.one_item else f"{self.name}-{batch_size}"

    def __str__(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<strategy {self.name}>"

    def __reduce__(self) -> tuple[Callable[[str], Strategy], tuple[str]]:
        # Singletons: a copy or a pickle is the same object (``copy``, ``multiprocessing``).
        return strategy, (self.name,)


class Single(Strategy):
    name = "single"
    one_item = True
    shows_demos = False
    skeleton = "single.lark"
    colour = "#7f7f7f"


class FewShot(Strategy):
    name = "few-shot"
    one_item = True
    requires_demos = True
    skeleton = "single.lark"
    colour = "#9467bd"


class Batch(Strategy):
    name = "batch"
    one_item = False
    skeleton = "batch.lark"
    colour = "#1f77b4"


class AutoDemo(Strategy):
    name = "auto-demo"
    one_item = False
    repeats_questions = True
    skeleton = "auto_demo.lark"
    colour = "#2ca02c"


SINGLE = Single()
FEW_SHOT = FewShot()
BATCH = Batch()
AUTO_DEMO = AutoDemo()

#: Every strategy by name, in the order promptc lists them (plan, eval, ``--strategy``).
STRATEGIES: dict[str, Strategy] = {s.name: s for s in (SINGLE, FEW_SHOT, BATCH, AUTO_DEMO)}
#: The strategy of a spec that names none.
DEFAULT = SINGLE
#: The names, in that order.
NAMES: tuple[str, ...] = tuple(STRATEGIES)


def find_strategy(name: object) -> Strategy | None:
    """The strategy of a name, or ``None`` when ``name`` names none (any value: a spec's)."""
    return STRATEGIES.get(name) if isinstance(name, str) else None


def strategy(name: str | Strategy) -> Strategy:
    """The strategy of a name (a strategy is returned as it is).

    Raises:
        KeyError: No strategy has that name; the message lists those that do.
    """
    if isinstance(name, Strategy):
        return name
    try:
        return STRATEGIES[name]
    except (KeyError, TypeError):
        raise KeyError(f"unknown strategy {name!r}; expected one of {', '.join(NAMES)}") from None
