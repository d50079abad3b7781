"""The response cache: one SQLite file of answers keyed by what was asked.

A locked or damaged cache degrades to misses (the run goes on, sending again); it is never
deleted.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from promptc.errors import Location, UsageError
from promptc.run.outputs import output_line
from promptc.text import cache_dir

CACHE_FILE = "responses.sqlite"
#: How long a lookup or a put waits for a cache another process holds locked (ms).
BUSY_MS = 100


# --------------------------------------------------------------------------------------------
# The response cache
# --------------------------------------------------------------------------------------------


def default_cache_path() -> Path:
    """``responses.sqlite`` in promptc's cache folder (:func:`promptc.text.cache_dir`): shared by
    every build, outside the build folders kept in git."""
    return cache_dir() / CACHE_FILE


class ResponseCache:
    """Responses by cache key, in one SQLite file: ``{"output", "finish_reason", "usage"}``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path))
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)"
            )
            self._db.commit()
            # Once open, a cache another process holds locked is a miss (or an answer left
            # uncached) within 0.1 s: every lookup and put runs on the run's event loop, and
            # SQLite's default 5 s wait per call stalled every request in flight, which then
            # timed out and was bought again.
            self._db.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
        except (OSError, sqlite3.Error) as e:
            raise UsageError(
                f"cannot open the response cache {str(self.path)!r}: {e}",
                location=Location(str(self.path)),
                hint="pass another --cache path, or --no-cache",
                code="bad-cache",
            ) from None

    def lookup(self, keys: Iterable[str]) -> tuple[str, dict[str, Any]] | None:
        """The first of ``keys`` with an answer, and that answer; an empty answer is no hit
        (it is recorded, never cached, but a cache written by another tool may hold one)."""
        for key in keys:
            try:
                row = self._db.execute(
                    "SELECT response FROM responses WHERE key = ?", (key,)
                ).fetchone()
                hit = json.loads(row[0]) if row is not None else None
            except (sqlite3.Error, ValueError):  # locked by another run, or damaged: a miss
                continue
            if isinstance(hit, dict) and str(hit.get("output") or "").strip():
                return key, hit
        return None

    def put(self, key: str, response: Mapping[str, Any]) -> bool:
        """Stores a response; False if the cache could not be written (the answer is still
        in outputs.jsonl, so nothing is lost)."""
        try:
            self._db.execute(
                "INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)",
                (key, output_line(response)),  # escaped where UTF-8 cannot carry it
            )
            self._db.commit()
        except (sqlite3.Error, UnicodeError):
            return False
        return True

    def close(self) -> None:
        self._db.close()
