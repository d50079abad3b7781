"""Reading model output item by item: :func:`parse_output` and its results.

A fast path (the grammar's whole-output regex), a strict path (the lark grammar) and a recover
path (markers scanned in lookalike-normalised text, answers read and judged one by one).
"""

from __future__ import annotations

from promptc.parse.output import parse_output
from promptc.parse.results import ItemResult

__all__ = ["ItemResult", "parse_output"]
