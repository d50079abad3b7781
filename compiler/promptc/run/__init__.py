"""Sending a build to a model, cached, resumable and repaired.

``bodies`` (what is sent for each request of a build, and its cache key), ``client`` (talking
to the API: failures, backoff, ``Retry-After``), ``cache`` (the SQLite response cache),
``outputs`` (the run's files in the build folder, and their lock), ``repair`` (re-asking failed
items), ``progress`` (a bar on a terminal, event lines otherwise), ``local`` (the embedded
llama.cpp server), ``collect`` (Batch API results back to per-item results) and
``orchestrate`` (:func:`run_build`, the run itself).
"""

from __future__ import annotations

from promptc.run.orchestrate import RequestFailure, RunResult, run_build
from promptc.run.progress import Events

__all__ = ["Events", "RequestFailure", "RunResult", "run_build"]
