"""The run's files in the build folder: ``outputs.jsonl`` (one answer a line, appended as
answers arrive), ``results.jsonl`` and ``outputs.replaced.jsonl``.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

OUTPUTS_FILE = "outputs.jsonl"


RESULTS_FILE = "results.jsonl"


REPLACED_FILE = "outputs.replaced.jsonl"


# --------------------------------------------------------------------------------------------
# outputs.jsonl
# --------------------------------------------------------------------------------------------


def read_outputs(path: Path) -> dict[str, dict[str, Any]]:
    """Answers already in ``outputs.jsonl`` by request id (the first of each id).

    A torn last line (a run killed while writing it) is cut off the file, so appending
    continues on a clean line; other unreadable lines are ignored (and kept).
    """
    if not path.is_file():
        return {}
    raw = path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        with path.open("r+b") as f:
            f.truncate(cut)
        raw = raw[:cut]
    out: dict[str, dict[str, Any]] = {}
    for line in raw.decode("utf-8", "replace").splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if (
            isinstance(data, dict)
            and isinstance(data.get("id"), str)
            and isinstance(data.get("output"), str)
        ):
            old = out.get(data["id"])
            # The first answer of each id, except that an answer replaces an empty one (an
            # empty answer is recorded, then asked again by the next run).
            if old is None or (not old["output"] and data["output"]):
                out[data["id"]] = data
    return out


def output_record(request_id: str, key: str, response: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": request_id,
        "output": response.get("output", ""),
        "finish_reason": response.get("finish_reason"),
        "usage": response.get("usage"),
        "request_sha256": key,
    }


def output_line(record: Mapping[str, Any]) -> str:
    """One line of ``outputs.jsonl``: canonical JSON in UTF-8, or, when the answer holds text
    UTF-8 cannot carry (a lone surrogate such as ``\\ud800``, which some servers emit for a
    split emoji), the same JSON with non-ASCII characters escaped — read back, it is the very
    same string, so nothing is lost and nothing crashes."""
    line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return line


LOCK_SUFFIX = ".lock"


@contextlib.contextmanager
def outputs_lock(path: Path) -> Iterator[None]:
    """Holds an exclusive lock on an outputs file for a run, so that two runs of one build
    do not both send every request.

    Raises:
        UsageError: Another process holds the lock (``run-in-progress``), naming its pid.
    """
    from promptc.errors import Location, UsageError

    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}{LOCK_SUFFIX}")
    f = open(lock_path, "a+", encoding="utf-8")  # noqa: SIM115 - held for the whole run
    try:
        try:
            import fcntl

            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # not POSIX: no lock, as before
            pass
        except OSError:
            f.seek(0)
            pid = f.read().strip() or "?"
            raise UsageError(
                f"another promptc run (pid {pid}) is writing {path.name} of this build",
                location=Location(str(path)),
                hint="wait for it to finish (it resumes where it is), or pass -o OTHER.jsonl",
                code="run-in-progress",
            ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        yield
    finally:
        f.close()  # releases the lock
