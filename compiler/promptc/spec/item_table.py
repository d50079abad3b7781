"""The items of a data file, kept as where their rows are and read back when asked for.

A million rows build in about the memory of ten thousand: what :class:`ItemTable` holds per
item is its row's byte offset and length in the file, its line only when rows are not one a
line from the first, and its column only in a JSON array (:class:`Places`). Duplicate ids are
found by their hashes (:class:`Duplicates`), without keeping the ids' text.
"""

from __future__ import annotations

import heapq
from array import array
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, BinaryIO, overload

from promptc.errors import DataError, ErrorCollector, Location, PromptcError
from promptc.ir import Item
from promptc.spec.items import EXPRESSION_FAILURES, ItemMaker
from promptc.spec.readers import csv_row, decode_row
from promptc.spec.rows import DataFormat, data_error

#: Raises at the first problem: a row read back was checked once already.
_STRICT = ErrorCollector(fail_fast=True)


class ItemTable(Sequence[Item]):
    """The items of a data file, read back from the file when asked for.

    Holds, per item, where its row starts in the file and its length in bytes (8 bytes an item
    in a file under 4 GiB, else 16), its line and column (:class:`Places`), and the last few
    thousand items made: selection asks for an item's id and rendering for its inputs right
    after, so each row is decoded about once per pass. Iterating reads the file from start to
    end.
    """

    CACHE = 4096

    def __init__(
        self,
        path: str,
        fmt: DataFormat,
        maker: ItemMaker,
        header: list[str] | None,
        starts: Sequence[int],
        lengths: Sequence[int],
        lines: Places,
        cols: Places | None = None,
    ) -> None:
        self.path = path
        self.format = fmt
        self._maker = maker
        self._header = header
        self._starts = starts
        self._lengths = lengths
        self._lines = lines
        self._cols = cols
        self._file: BinaryIO | None = None
        self._cache: dict[int, Item] = {}

    def __len__(self) -> int:
        return len(self._starts)

    def __repr__(self) -> str:
        return f"ItemTable({self.path!r}, {len(self)} items)"

    @overload
    def __getitem__(self, index: int) -> Item: ...

    @overload
    def __getitem__(self, index: slice) -> list[Item]: ...

    def __getitem__(self, index: int | slice) -> Item | list[Item]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        n = len(self._starts)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError("item index out of range")
        item = self._cache.get(index)  # an item read a moment ago (a build takes each thrice)
        if item is None:
            if self._file is None:
                self._file = open(self.path, "rb")  # noqa: SIM115 - kept open while in use
            self._file.seek(self._starts[index])
            item = self._make(index, self._file.read(self._lengths[index]))
            if len(self._cache) >= self.CACHE:
                self._cache.clear()
            self._cache[index] = item
        return item

    def __iter__(self) -> Iterator[Item]:
        with open(self.path, "rb") as f:
            position = 0
            for index in range(len(self._starts)):
                start = self._starts[index]
                if start != position:
                    f.seek(start)
                length = self._lengths[index]
                position = start + length
                yield self._make(index, f.read(length))

    def close(self) -> None:
        """Closes the file held open for reading items by position."""
        if self._file is not None:
            self._file.close()
            self._file = None
        self._cache.clear()

    def _make(self, index: int, raw: bytes) -> Item:
        line = self._lines[index]
        maker = self._maker
        c = _STRICT
        try:
            text = raw.decode("utf-8")
            values: Any
            if self._header is None:
                values = decode_row(text)
            else:
                values = dict(zip(self._header, csv_row(text)))
            inputs = maker.inputs(values, line, c)
            item_id = maker.item_id(values, line, index, c)
            golds = maker.golds(values, line, index, c)
        except PromptcError as e:
            if e.code in EXPRESSION_FAILURES:
                raise  # the expression's own failure, not a changed file
            inputs = item_id = golds = None
        except (ValueError, AttributeError, StopIteration):
            inputs = item_id = golds = None
        location = Location(maker.display, line, 1 if self._cols is None else self._cols[index])
        if inputs is None or item_id is None or golds is None:
            raise DataError(
                "the data file changed while promptc was reading it; run the command again",
                location=location,
                code="data-changed",
            )
        return Item(
            id=item_id,
            index=index,
            inputs=inputs,
            location=location,
            gold=golds,
            options=maker.options,
        )


class Places:
    """The line (or column) of each item: nothing stored while item ``i`` is at
    ``i * step + base`` for the first item's ``base`` (JSONL without blank lines: line
    ``i + 1``; a JSON array one element a line: line ``i + 2``, column 1 throughout), an
    array from the first item that is not."""

    def __init__(self, step: int = 1) -> None:
        self.step = step
        self.base: int | None = None
        self.places: array[int] | None = None

    def append(self, index: int, place: int) -> None:
        """Records the place of item ``index`` (items are appended in order)."""
        if self.places is None:
            if self.base is None:
                self.base = place - index * self.step
            if place == index * self.step + self.base:
                return
            self.places = array("q", (k * self.step + self.base for k in range(index)))
        self.places.append(place)

    def __getitem__(self, index: int) -> int:
        if self.places is None:
            return index * self.step + (self.base or 0)
        return self.places[index]


class Duplicates:
    """Duplicate item ids, found in memory that does not grow with the ids' text: the hash of
    every id, in 256 arrays by its low bits. Equal hashes are checked against the ids
    themselves only when some turn up (a real duplicate, or a 64-bit collision)."""

    def __init__(self) -> None:
        self.buckets = [array("q") for _ in range(256)]

    def add(self, item_id: str) -> None:
        """Records one item's id."""
        h = hash(item_id)
        self.buckets[h & 255].append(h)

    def suspects(self) -> set[int]:
        """The hashes seen more than once."""
        out: set[int] = set()
        for bucket in self.buckets:
            if len(set(bucket)) != len(bucket):
                out.update(h for h, n in Counter(bucket).items() if n > 1)
        return out

    def report(
        self,
        table: ItemTable,
        c: ErrorCollector,
        dropped: Sequence[tuple[str, Location]] = (),
    ) -> None:
        """Reports every id used twice, at its second use, naming the line of its first:
        among the table's items and the rows ``dropped`` for other errors (a bad gold), so
        that every error of the data is said at once."""
        suspects = self.suspects()
        if not suspects:
            return
        first_line: dict[str, int] = {}
        kept = ((item.id, item.location) for item in table)
        for item_id, location in heapq.merge(kept, dropped, key=lambda x: x[1].line):
            if hash(item_id) not in suspects:
                continue
            if item_id in first_line:
                line = first_line[item_id]
                c.add(data_error("duplicate-id", location, id=item_id, line=line))
            else:
                first_line[item_id] = location.line
