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

This module imports nothing heavy: ``import promptc`` stays fast, and torch or
sentence-transformers load only when a spec asks for embeddings.
"""

from __future__ import annotations

from promptc.version import VERSION as __version__

__all__ = ["__version__"]
