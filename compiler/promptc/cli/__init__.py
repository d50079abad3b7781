"""The ``promptc`` command: :func:`main` is the console script.

:mod:`promptc.cli.app` holds the command table and :func:`promptc.cli.app.run`, which returns
the exit status instead of exiting; one module per command (``check``, ``build``, ``show``,
``parse``, ``run``, ``diff``, ``init``, ``schema`` …) and :mod:`promptc.cli.common` for what they
share. No stage imports this package.
"""

from __future__ import annotations

from promptc.cli.app import main

__all__ = ["main"]
