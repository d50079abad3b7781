"""Rendering: the strategies' Jinja templates, in a sandbox, into chat-message requests.

``environment`` (the sandboxed Jinja environment and the loader that keeps templates inside the
spec's folder), ``context`` (the variables templates see), ``renderer`` (requests from batches)
and ``checks`` (static template checks, located at the template's file:line).
"""

from __future__ import annotations

from promptc.render.renderer import Renderer, render

__all__ = ["Renderer", "render"]
