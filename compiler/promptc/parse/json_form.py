"""``strict`` mode's results for an output in the grammar's JSON form.

The JSON form is judged through its text form (:func:`promptc.grammar.json_schema.
json_answer_text`), whose line:col and tokens (``a new line and 'A[3]:'``) the output does
not have: here the results say which item's entry the grammar stopped at instead, and an
output the schema does not admit as a whole though read (text after the JSON answer, a key
given twice) is rejected.
"""

from __future__ import annotations

import re

from promptc.parse.results import ItemResult
from promptc.parse.shape import RequestShape

#: The tail of every strict rejection: what to do about it.
_KEEP = "parse with mode recover to keep well-formed items"
#: How the text form's strict mode says it rejected the output at another item.
_REJECTED_AT = re.compile(r"strict: output rejected at \d+:\d+ \(item (?P<item>\d+)\)")


def rejected_json(shape: RequestShape, reason: str) -> list[ItemResult]:
    """Every item of a JSON answer ``strict`` rejects as a whole, saying why."""
    message = f"strict: output rejected: {reason}; {_KEEP}"
    return [
        ItemResult(shape.id, item_id, i, "malformed", message=message)
        for i, item_id in enumerate(shape.item_ids, 1)
    ]


def strict_json_results(results: list[ItemResult]) -> list[ItemResult]:
    """The strict results of a JSON answer's text form, said of its entries: the item where
    the grammar stopped, with no line:col and no token of the text form."""
    out = []
    for r in results:
        rejected = _REJECTED_AT.match(r.message)
        if rejected is not None:
            item = rejected.group("item")
            r = r._replace(message=f"strict: output rejected at item {item}'s entry; {_KEEP}")
        elif r.span is not None and r.message.startswith("strict: "):
            r = _diagnosis(r)
        out.append(r)
    return out


def _diagnosis(r: ItemResult) -> ItemResult:
    """The item where the grammar stopped: its entry is not there (``missing``: the list ends,
    or another item's entry comes, where it was due), or its entry's text is not read."""
    entry = f"item {r.index}'s entry"
    if r.status == "missing":
        found = "the end of the list" if r.found == "end of output" else "another item's entry"
        return r._replace(
            span=None,
            expected=(f'an entry with "index": {r.index}',),
            found=found,
            message=f'strict: expected {entry} ("index": {r.index}), found {found}',
        )
    expected = tuple(dict.fromkeys(_said_of_entries(t) for t in r.expected))
    found = _said_of_entries(r.found or "end of output")
    return r._replace(
        span=None,
        expected=expected,
        found=found,
        message=f"strict: {entry}: expected {' or '.join(expected)}, found {found}",
    )


#: A marker in a token or excerpt of the text form (``a new line and 'A[3]:'``, ``A[4]: r``).
_MARKER = re.compile(r"\w+\[(?P<index>\d+)\]:")


def _said_of_entries(text: str) -> str:
    """A token or excerpt of the text form as the JSON answer has it: its end is the end of
    the list, a marker is an entry; any other (a value's type) as it is, quoted if found."""
    if text == "end of output":
        return "the end of the list"
    marker = _MARKER.search(text)
    if marker is not None:
        return f'an entry with "index": {marker.group("index")}'
    return repr(text)
