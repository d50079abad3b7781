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
"""

from __future__ import annotations

from promptc.run.options import RunOptions
from promptc.run.orchestrate import run_build
from promptc.run.progress import Events
from promptc.run.result import RequestFailure, RunResult

__all__ = ["Events", "RequestFailure", "RunOptions", "RunResult", "run_build"]
