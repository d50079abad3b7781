"""Reading model output item by item: :func:`parse_output` and its results.

One path reads an output with the grammar's whole-output regex (``strict``); where it does not
match, the recover path scans markers in lookalike-normalised text and reads and judges the
answers one by one (``recover``), or, in strict mode, the lark grammar says why (``diagnosis``).
"""

from __future__ import annotations

from promptc.parse.output import parse_output
from promptc.parse.results import ItemResult

__all__ = ["ItemResult", "parse_output"]
