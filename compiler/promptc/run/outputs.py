"""The run's files in the build folder: ``outputs.jsonl`` (one answer a line, appended as
answers arrive), ``results.jsonl`` and ``outputs.replaced.jsonl``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
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
            out.setdefault(data["id"], data)
    return out


def output_record(request_id: str, key: str, response: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": request_id,
        "output": response.get("output", ""),
        "finish_reason": response.get("finish_reason"),
        "usage": response.get("usage"),
        "request_sha256": key,
    }
