"""Sending a build to an OpenAI-compatible API, cached and resumable.

``bodies`` (what is sent for each request of a build, and its cache key), ``client`` (talking
to the API: failures, backoff), ``cache`` (the SQLite response cache), ``outputs`` (the run's
files in the build folder) and ``orchestrate`` (:func:`run_build`, the run itself).
"""

from __future__ import annotations

from promptc.run.orchestrate import RequestFailure, RunResult, run_build

__all__ = ["RequestFailure", "RunResult", "run_build"]
