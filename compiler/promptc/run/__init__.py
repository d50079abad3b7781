"""Sending a build to an OpenAI-compatible API: bodies, cache, client, the run itself."""

from __future__ import annotations

from promptc.run.orchestrate import RunResult, run_build

__all__ = ["RunResult", "run_build"]
