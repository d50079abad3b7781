"""promptc — a declarative prompt compiler.

A task spec in YAML is compiled, stage by stage, into the requests of one of four strategies
(``single``, ``few-shot``, ``batch``, ``auto-demo``) and into an answer grammar that parses the
model's output item by item::

    spec.yaml ─load─▶ YAML nodes with positions ─validate─▶ (JSON Schema + semantic checks)
      ─lower─▶ IR (frozen dataclasses) ─select─▶ batches ─render─▶ requests (chat messages)
                                         └─grammar─▶ answer grammar (lark; GBNF, JSON Schema, regex)
    model output ─parse_output (with the grammar)─▶ per-item results:
                                         ok | missing | malformed | duplicate | misaligned | extra

Each stage is a module named after what it produces and a public function taking the previous
stage's output: :mod:`promptc.spec.load`, :mod:`promptc.spec.validate`, :mod:`promptc.spec.lower`,
:mod:`promptc.select.methods`, :mod:`promptc.render.renderer`, :mod:`promptc.grammar.answer`,
:mod:`promptc.parse.output`. :mod:`promptc.build` chains them and writes build outputs;
:mod:`promptc.diff` sits above it and compares two builds request by request (a spec now and at
a git revision, or two build folders); :mod:`promptc.cli.app` is the ``promptc`` command. Every error a user can cause is a
:class:`promptc.errors.PromptcError` naming file:line:col (or item id and output position).

The public API is :mod:`promptc.api`, its names listed in :data:`__all__` and documented in
docs/api.md::

    import promptc
    task = promptc.load_spec("specs/sentiment.yaml", strategy="batch", batch_size=8)
    build = promptc.write_build(task, "out/sentiment")
    result = promptc.run_build(build, local=True, parse=True)

This module imports nothing heavy: the API's names load with their first use (PEP 562), so
that ``import promptc`` — which every ``promptc`` command does first — stays fast (the API
module brings the whole compiler: 250 ms measured with -X importtime, which ``promptc
--help`` must not pay), and
torch, sentence-transformers or openai load only when a spec or a run needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from promptc.version import VERSION as __version__

if TYPE_CHECKING:
    from promptc.api import (
        Grammar,
        Request,
        Task,
        collect,
        evaluate,
        iter_requests,
        load_spec,
        plan_spec,
        run_build,
        run_build_async,
        run_variants,
        spec_warnings,
        write_build,
    )
    from promptc.errors import PromptcError, PromptcErrors
    from promptc.parse.build_input import Build, open_build, parse_output
    from promptc.parse.results import ItemResult
    from promptc.plan.estimate import Plan
    from promptc.run.collect import CollectResult
    from promptc.run.options import RunOptions
    from promptc.run.result import RunResult

#: Where each public name is defined (loaded on first use).
_HOMES = {
    "Build": "promptc.parse.build_input",
    "CollectResult": "promptc.run.collect",
    "Grammar": "promptc.api",
    "ItemResult": "promptc.parse.results",
    "PromptcError": "promptc.errors",
    "PromptcErrors": "promptc.errors",
    "Request": "promptc.api",
    "RunOptions": "promptc.run.options",
    "RunResult": "promptc.run.result",
    "Task": "promptc.api",
    "collect": "promptc.api",
    "evaluate": "promptc.api",
    "iter_requests": "promptc.api",
    "load_spec": "promptc.api",
    "open_build": "promptc.parse.build_input",
    "parse_output": "promptc.parse.build_input",
    "Plan": "promptc.plan.estimate",
    "plan_spec": "promptc.api",
    "run_build": "promptc.api",
    "run_build_async": "promptc.api",
    "run_variants": "promptc.api",
    "spec_warnings": "promptc.api",
    "write_build": "promptc.api",
}

__all__ = [
    "Build",
    "CollectResult",
    "Grammar",
    "ItemResult",
    "Plan",
    "PromptcError",
    "PromptcErrors",
    "Request",
    "RunOptions",
    "RunResult",
    "Task",
    "__version__",
    "collect",
    "evaluate",
    "iter_requests",
    "load_spec",
    "open_build",
    "parse_output",
    "plan_spec",
    "run_build",
    "run_build_async",
    "run_variants",
    "spec_warnings",
    "write_build",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'promptc' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
