"""The front end: a spec file to a validated, lowered :class:`promptc.ir.Task`.

``load`` (YAML nodes with positions, ``extends``), ``validate`` (semantic checks, and the JSON
Schema's through ``schema_errors``), ``data`` (the data file's items: ``readers``, ``rows``,
``items``, ``expressions``, ``item_table``), ``answer_format`` (the answer-format
mini-language) and ``lower`` (the IR), chained by :func:`compile_spec`.
"""

from __future__ import annotations

from promptc.spec.lower import compile_spec, lower

__all__ = ["compile_spec", "lower"]
