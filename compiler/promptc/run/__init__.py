"""Sending a build to a model, cached, resumable and repaired.

``orchestrate`` (:func:`run_build`: the run, its parts put together, and the table of engines),
``options`` (:class:`RunOptions`), ``engine`` (the :class:`~promptc.run.engine.Engine`
interface, its replies and failures), ``chat_api`` (the OpenAI-compatible engine), ``local``
(the embedded llama.cpp server and its engine), ``send`` (the cache, then the engine, with
retries and backoff), ``bodies`` (what is sent for each request, and its cache key), ``cache``
(the SQLite response cache), ``outputs`` (the run's files in the build folder, and their lock),
``repair`` (re-asking failed items), ``progress`` (a bar on a terminal, event lines
otherwise), ``result`` (:class:`RunResult`), ``context`` (what a server says its context is)
and ``collect`` (Batch API results back to per-item results).

The names below load with their first use (PEP 562): ``promptc parse`` reads the run's
files (``outputs``) and merges repair answers (``repair``) but sends nothing, and importing
``orchestrate`` (asyncio, HTTP, the engines) would cost it about 40 ms, measured with
-X importtime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from promptc.run.options import RunOptions
    from promptc.run.orchestrate import run_build
    from promptc.run.progress import Events
    from promptc.run.result import RequestFailure, RunResult

#: Where each name is defined (loaded on first use).
_HOMES = {
    "Events": "promptc.run.progress",
    "RequestFailure": "promptc.run.result",
    "RunOptions": "promptc.run.options",
    "RunResult": "promptc.run.result",
    "run_build": "promptc.run.orchestrate",
}

__all__ = ["Events", "RequestFailure", "RunOptions", "RunResult", "run_build"]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'promptc.run' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value
