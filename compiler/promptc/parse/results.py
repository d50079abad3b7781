"""What parsing returns: one :class:`ItemResult` per item, with its status, values and span.

Results are NamedTuples (immutable and typed like frozen dataclasses, and about five times
cheaper to create) and spans compute line:col only when read: the parser makes 8 results per
output for 10,000s of outputs, and this is most of its cost after the regex match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from decimal import Decimal
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from promptc.ir import Value
from promptc.text import Span, decimal_text
from promptc.values import MAX_INTEGER_DIGITS

Status = Literal["ok", "missing", "malformed", "duplicate", "misaligned", "extra", "truncated"]


#: Every status. ``truncated``: the output stopped at the request's ``max_tokens`` (finish
#: ``length``) before the item's answer was written to its end (last, so that the statuses
#: before it keep their order in every summary).
STATUSES: tuple[Status, ...] = (
    "ok",
    "missing",
    "malformed",
    "duplicate",
    "misaligned",
    "extra",
    "truncated",
)

#: The finish reasons of an output the server stopped before its natural end, which may end
#: inside a value: cut off at ``max_tokens`` (``length``: OpenAI's, vLLM's, llama.cpp's), or
#: by a content filter (``content_filter``: OpenAI's, Azure's).
FINISH_CUT = ("length", "content_filter")


Mode = Literal["recover", "strict"]


MODES: tuple[Mode, ...] = ("recover", "strict")


#: ``found`` shows at most this many characters of what the output had.
FOUND_CHARS = 40


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


class ItemResult(NamedTuple):
    """What the output says about one item of a request.

    Attributes:
        request_id: The request's id.
        item_id: The item's id; ``None`` for an ``extra`` answer (an index not in the request).
        index: The item's 1-based position in the request (the ``i`` of ``A[i]``).
        status: ``ok``, ``missing``, ``malformed``, ``duplicate``, ``misaligned``, ``extra``
            or ``truncated``.
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


#: How results are spelled: keys in the order written, a space after each ``,`` and ``:``.
_SEPARATORS = (", ", ": ")


def dumps(data: object) -> str:
    """JSON text in which :class:`~decimal.Decimal` values are exact JSON numbers.

    ``Decimal("0.1")`` is written ``0.1`` (never ``0.1000000000000000055…``), in the canonical
    form of :meth:`promptc.values.ValueType.write` (no exponent). Everything else is written as
    :func:`json.dumps` writes it, with non-ASCII text kept as is; keys in the order given.

    One call of :mod:`json`'s encoder writes it all, each Decimal handed to it as the ``int`` it
    equals, or the ``float`` whose shortest form is the Decimal's own text (every number of at
    most 15 significant digits from 0.0001 to 10**16: the numbers models answer).
    Data holding a Decimal no float spells exactly (more digits, or a float that would be
    written with an exponent) is written by :func:`_exact_dumps`, which spells each Decimal
    itself. (One call per line instead of one per key and value: writing results was two
    thirds of ``promptc parse``'s time.)
    """
    try:
        return _ENCODER.encode(data)
    except _NoFloat:
        return _exact_dumps(data)


class _NoFloat(ValueError):
    """A Decimal that no float spells exactly."""


def _json_form(value: object) -> object:
    """What :func:`json.dumps` writes for a value it does not know (``default``)."""
    if isinstance(value, Decimal):
        if not value.is_finite():  # no answer reads as one; written as a string
            return str(value)
        if value == value.to_integral_value() and value.adjusted() < MAX_INTEGER_DIGITS:
            return int(value)
        number = float(value)
        if repr(number) != decimal_text(value):
            raise _NoFloat(value)
        return number
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


#: The encoder of :func:`dumps`, made once (``json.dumps`` with these options makes one a call).
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=_SEPARATORS, default=_json_form)


def _exact_dumps(data: object) -> str:
    """:func:`dumps` for data with a Decimal that no float spells exactly: each Decimal
    written as :func:`~promptc.text.decimal_text` writes it, the rest by :func:`json.dumps`."""
    if isinstance(data, Decimal):
        return decimal_text(data)
    if isinstance(data, Mapping):
        return (
            "{"
            + ", ".join(
                f"{json.dumps(str(k), ensure_ascii=False)}: {_exact_dumps(v)}"
                for k, v in data.items()
            )
            + "}"
        )
    if isinstance(data, (list, tuple)):
        return "[" + ", ".join(_exact_dumps(v) for v in data) + "]"
    return json.dumps(data, ensure_ascii=False)


def summarize(results: Iterable[ItemResult]) -> dict[str, int]:
    """Counts per status, every status present (zeros included), in :data:`STATUSES` order."""
    counts: dict[str, int] = {s: 0 for s in STATUSES}
    for r in results:
        counts[r.status] += 1
    return counts
