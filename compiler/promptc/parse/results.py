"""What parsing returns: one :class:`ItemResult` per item, with its status, values and span.

Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
cheaper to create) and spans compute line:col only when read: the fast path makes 8 results
per output for 10,000s of outputs, and this is most of its cost after the regex match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from promptc.ir import Value
from promptc.text import Span, decimal_text

Status = Literal["ok", "missing", "malformed", "duplicate", "misaligned", "extra"]


STATUSES: tuple[Status, ...] = ("ok", "missing", "malformed", "duplicate", "misaligned", "extra")


Mode = Literal["recover", "strict"]


MODES: tuple[Mode, ...] = ("recover", "strict")


#: ``found`` shows at most this many characters of what the output had.
FOUND_CHARS = 40


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


# Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
# cheaper to create) and spans compute line:col only when read: the fast path makes 8 results
# per output for 10,000s of outputs, and this is most of its cost after the regex match.


class ItemResult(NamedTuple):
    """What the output says about one item of a request.

    Attributes:
        request_id: The request's id.
        item_id: The item's id; ``None`` for an ``extra`` answer (an index not in the request).
        index: The item's 1-based position in the request (the ``i`` of ``A[i]``).
        status: ``ok``, ``missing``, ``malformed``, ``duplicate``, ``misaligned`` or ``extra``.
        values: Output field → normalised value. Trust them when the status is ``ok``; for
            ``duplicate``, ``misaligned`` and ``extra`` they are what the first well-formed
            answer said, for inspection; empty otherwise.
        span: Where the item is in the output (from its first marker to the end of its
            answer); ``None`` when missing.
        expected: For a failure, what would have been accepted, as readable tokens.
        found: For a failure, the text found instead (abbreviated), or ``"end of output"``.
        message: One sentence for people.
    """

    request_id: str
    item_id: str | None
    index: int  # type: ignore[assignment]  # a field, shadowing tuple.index on purpose
    status: Status
    values: Mapping[str, Value] = MappingProxyType({})
    span: Span | None = None
    expected: tuple[str, ...] = ()
    found: str | None = None
    message: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data. Numbers stay :class:`~decimal.Decimal`: write them with
        :func:`dumps` (exact JSON numbers), read them back with ``parse_float=Decimal``."""
        span = None if self.span is None else self.span.to_dict()
        return {
            "request_id": self.request_id,
            "item_id": self.item_id,
            "index": self.index,
            "status": self.status,
            "values": dict(self.values),
            "span": span,
            "expected": list(self.expected),
            "found": self.found,
            "message": self.message,
        }

    def to_json(self) -> str:
        """One JSON line (keys in a fixed order, Decimals as exact JSON numbers)."""
        return dumps(self.to_dict())


def dumps(data: object) -> str:
    """JSON text in which :class:`~decimal.Decimal` values are exact JSON numbers.

    ``Decimal("0.1")`` is written ``0.1`` (never ``0.1000000000000000055…``), in the canonical
    form of :func:`promptc.values.write_value` (no exponent). Everything else is written as
    :func:`json.dumps` writes it, with non-ASCII text kept as is.
    """
    if isinstance(data, Decimal):
        return decimal_text(data)
    if isinstance(data, Mapping):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(str(k), ensure_ascii=False)}: {dumps(v)}" for k, v in data.items()
            )
            + "}"
        )
    if isinstance(data, (list, tuple)):
        return "[" + ", ".join(dumps(v) for v in data) + "]"
    return json.dumps(data, ensure_ascii=False)


def summarize(results: Iterable[ItemResult]) -> dict[str, int]:
    """Counts per status, every status present (zeros included), in :data:`STATUSES` order."""
    counts: dict[str, int] = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] += 1
    return counts
