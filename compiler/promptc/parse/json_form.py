"""``strict`` mode's results for an output in the grammar's JSON form that the schema does not
admit as a whole though read (text after the JSON answer, a key given twice)."""

from __future__ import annotations

from promptc.parse.results import ItemResult
from promptc.parse.shape import RequestShape

#: The tail of every strict rejection: what to do about it.
_KEEP = "parse with mode recover to keep well-formed items"


def rejected_json(shape: RequestShape, reason: str) -> list[ItemResult]:
    """Every item of a JSON answer ``strict`` rejects as a whole, saying why."""
    message = f"strict: output rejected: {reason}; {_KEEP}"
    return [
        ItemResult(shape.id, item_id, i, "malformed", message=message)
        for i, item_id in enumerate(shape.item_ids, 1)
    ]
