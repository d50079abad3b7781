"""The ``promptc`` command: :func:`main` is the console script, :func:`run` returns the status.

One module per command (``check``, ``build``, ``show``, ``parse``, ``run``, ``schema``) and
:mod:`promptc.cli.common` for what they share. No stage imports this package.
"""

from __future__ import annotations

from promptc.cli.main import cli, main, run

__all__ = ["cli", "main", "run"]
