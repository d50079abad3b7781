"""Batch selection: which items share a request, in which order.

``methods`` holds :func:`select` and its static table of methods (``sequential``, ``random``,
and the similarity methods, which ``similarity`` implements over ``embed`` and ``neighbors``
and which import the optional ``embed`` extra only when used).
"""

from __future__ import annotations

from promptc.select.batches import Chunks, SelectionResult, batch_size
from promptc.select.methods import METHODS, select

__all__ = ["METHODS", "Chunks", "SelectionResult", "batch_size", "select"]
