"""Items from a data file's rows: their inputs as text, their ids and their gold answers.

:class:`ItemMaker` reads a row's inputs (``data.fields``), its id (``data.id``: a column, a
Jinja expression, or the 1-based row number) and, through one :class:`GoldReader` per output,
its gold answers (``data.gold``). It runs once per row when the file is checked and once more
when the item is read back; locations are made only for errors.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from promptc.errors import DataError, ErrorCollector, Location
from promptc.ir import AnswerWith, OutputField, Value
from promptc.limits import MAX_MESSAGE_CHARS
from promptc.markers import options_text
from promptc.spec.load import KeyPath, SpecDocument
from promptc.spec.rows import data_error, option_list, options_found, surrogate, to_text
from promptc.values import option_choices, resolve_option

#: The errors of a row's expression failing: such a failure may come on a second reading of
#: an unchanged row (its time, the memory left then), and is said as itself.
EXPRESSION_FAILURES = frozenset({"bad-id", "bad-gold-expression"})


def expression(
    source: str, where: Location, path: KeyPath, c: ErrorCollector, code: str, **kw: str
) -> Any:
    """An id or gold expression, compiled: a function of ``row``, ``index`` and
    ``loop_index`` giving the row's text; or ``None`` (reported as ``code``)."""
    # Imported here: Jinja takes a few tens of milliseconds to import, and only a spec that
    # writes an expression needs it (`promptc check` of most specs does not).
    from promptc.spec.expressions import (
        BudgetError,
        TemplateError,
        bounded_by_its_values,
        compile_expression,
        render_expression,
        render_lookup,
    )

    try:
        template = compile_expression(source)
        render = render_lookup if bounded_by_its_values(source) else render_expression
        return functools.partial(render, template)
    except (TemplateError, BudgetError) as e:
        c.add(data_error(code, where, path, problem=str(e), **kw))
        return None


@dataclass(slots=True)
class GoldReader:
    """Reads one output's gold answer from a row: a column, or a Jinja expression over it.

    The rows that lack its column are counted, and the first :data:`KEPT_MISSING` errors
    kept, until :meth:`ItemMaker.report_missing` says them: a column no row has (a misspelt
    name) is one error at its ``data.gold`` entry, not one a row."""

    output: OutputField
    spec: str
    template: Any  # an expression (items.expression), else None
    location: Location | None = None  # of its data.gold entry
    missing: list[DataError] = dataclasses.field(default_factory=list)
    missing_rows: int = 0
    present: set[str] = dataclasses.field(default_factory=set)

    def read(
        self,
        values: Mapping[str, Any],
        where: Location,
        index: int,
        options: Mapping[str, tuple[str, ...]],
        c: ErrorCollector,
    ) -> Value | None:
        """The row's gold value, normalised by the output's type, or ``None`` (reported).

        A gold answer naming one of the row's own ``options`` (``choices_from``) is that
        option's letter, given as the letter or (``answer_with: text | either``) as its text.
        """
        raw = self._raw(values, where, index, c)
        if raw is None:
            return None
        if isinstance(raw, Decimal):
            # A JSON number as written, in positional notation: 51.0 reads as a number or an
            # integer, and 2.5e-07 (as json.dumps writes it) as 0.00000025. An exponent past
            # 1,000 stays as written (no answer is read past 640 digits; its positional text
            # would be a billion digits for 1e999999999): refused as such below.
            raw = format(raw, "f") if abs(raw.adjusted()) <= 1000 else to_text(raw)
        elif isinstance(raw, (list, dict)):
            raw = to_text(raw)
        field = self.output
        try:
            value = field.type.coerce(field, raw)
        except ValueError:
            c.add(
                self._bad(where, f"expected {field.type.expected(field)}, found {to_text(raw)!r}")
            )
            return None
        listed = options.get(field.choices_from) if field.choices_from else None
        if not listed:
            return value  # no options to name, or the row's are missing or bad (reported)
        answer_with: AnswerWith = "either" if field.answer_with != "letter" else "letter"
        hits = resolve_option(answer_with, listed, str(value), exact=False)
        if len(hits) == 1:
            return hits[0]
        names = f"names options {' and '.join(hits)}" if hits else "names none of its options"
        choices = ", ".join(repr(x) for x in option_choices(answer_with, listed))
        c.add(self._bad(where, f"{str(value)!r} {names}; expected one of {choices}"))
        return None

    def _bad(self, where: Location, problem: str) -> DataError:
        name = self.output.name
        path = ("data", "gold", name)
        return data_error(
            "bad-gold", where, path, type=self.output.type, output=name, problem=problem
        )

    def _raw(
        self, values: Mapping[str, Any], where: Location, index: int, c: ErrorCollector
    ) -> object:
        """The gold as the row gives it (the expression's text), or ``None`` (reported)."""
        name = self.output.name
        if self.template is not None:
            try:
                text = self.template(row=values, index=index, loop_index=index + 1)
            except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
                path = ("data", "gold", name)
                problem = str(e)
                c.add(data_error("bad-gold-expression", where, path, output=name, problem=problem))
                return None
            return text.strip() if not self.output.type.free_text else text
        if self.spec not in values:
            if len(self.missing) < KEPT_MISSING:
                self.missing.append(
                    data_error("missing-gold", where, column=self.spec, output=name)
                )
                self.present.update(k for k in values if isinstance(k, str))
            self.missing_rows += 1
            return None
        raw = values[self.spec]
        if raw is None:
            c.add(data_error("null-gold", where, column=self.spec, output=name))
        return raw


def gold_readers(
    doc: SpecDocument, outputs: Sequence[OutputField], c: ErrorCollector
) -> list[GoldReader]:
    """One reader per ``data.gold`` entry that names a declared output, in output order."""
    raw = doc.get(("data", "gold"))
    if not isinstance(raw, dict):
        return []
    readers = []
    for field in outputs:
        spec = raw.get(field.name)
        if not isinstance(spec, str) or not spec:
            continue
        p: KeyPath = ("data", "gold", field.name)
        where = doc.value_location(p)
        template = None
        if "{{" in spec:
            template = expression(spec, where, p, c, "bad-gold-template", output=field.name)
            if template is None:
                continue
        readers.append(GoldReader(field, spec, template, where))
    return readers


_ABSENT: Any = object()
#: The row errors kept per missing column until the file is read (the collector caps what
#: is shown; these are said only when some rows do have the column).
KEPT_MISSING = 100
#: The most column names an ``unknown-column`` error lists.
MAX_LISTED = 30


class ItemMaker:
    """Turns rows into items' parts: the columns of the inputs, the id and the gold answers.

    A row's place is its line (JSONL, CSV) or its whole :class:`Location` (a JSON array's rows,
    which have columns).
    """

    def __init__(
        self,
        columns: Mapping[str, str],
        id_spec: str | None,
        template: Any,
        display: str,
        gold: Sequence[GoldReader] = (),
        option_inputs: frozenset[str] = frozenset(),
    ) -> None:
        self.columns = tuple(columns.items())
        self.id_spec = id_spec
        self.template = template
        self.display = display
        self.id_column = id_spec if id_spec is not None and "{{" not in id_spec else None
        self.gold = tuple(gold)
        self.option_inputs = option_inputs
        #: The options of the last row :meth:`inputs` read (``options`` inputs' lists).
        self.options: dict[str, tuple[str, ...]] = {}
        #: Per input whose column a row lacks: the rows' errors (the first
        #: :data:`KEPT_MISSING`) and how many rows lack it; the columns those rows have.
        #: :meth:`report_missing` says them once the file is read.
        self.missing: dict[str, list[DataError]] = {}
        self.missing_rows: dict[str, int] = {}
        self.present: set[str] = set()

    def where(self, line: int | Location) -> Location:
        """A row's location: given whole (a JSON array's rows have columns), or its line."""
        return line if isinstance(line, Location) else Location(self.display, line, 1)

    def golds(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> dict[str, Value] | None:
        """The row's gold answers (``data.gold``), or ``None`` if one is missing or bad; call it
        after :meth:`inputs`, whose options a gold answer may name."""
        out: dict[str, Value] = {}
        if not self.gold:
            return out
        where = self.where(line)
        for reader in self.gold:
            value = reader.read(values, where, index, self.options, c)
            if value is not None:
                out[reader.output.name] = value
        return out if len(out) == len(self.gold) else None

    def inputs(
        self, values: Mapping[str, Any], line: int | Location, c: ErrorCollector
    ) -> dict[str, str] | None:
        """The row's inputs as text, or ``None`` if one is missing or bad (reported); the
        lists of its ``options`` inputs are left in :attr:`options`."""
        inputs: dict[str, str] = {}
        options: dict[str, tuple[str, ...]] = {}
        ok = True
        for name, column in self.columns:
            value = values.get(column, _ABSENT)
            if type(value) is str and name not in self.option_inputs:
                text = value  # the common case, in one step
            elif value is _ABSENT:
                kept = self.missing.setdefault(name, [])
                if len(kept) < KEPT_MISSING:
                    kept.append(
                        data_error("missing-field", self.where(line), column=column, input=name)
                    )
                self.missing_rows[name] = self.missing_rows.get(name, 0) + 1
                if len(self.present) < MAX_LISTED:
                    self.present.update(k for k in values if isinstance(k, str))
                ok = False
                continue
            elif value is None:
                c.add(data_error("null-field", self.where(line), column=column, input=name))
                ok = False
                continue
            elif name in self.option_inputs:
                listed = option_list(value)
                if listed is None:
                    where = self.where(line)
                    found = options_found(value)
                    c.add(data_error("bad-options", where, column=column, input=name, found=found))
                    ok = False
                    continue
                options[name] = listed
                text = options_text(listed)  # checked below as any input's text
            else:
                text = to_text(value)
            inputs[name] = text
            bad = surrogate(text)
            if bad is not None:  # from a JSON escape: no character, cannot be sent as UTF-8
                escape = f"\\u{ord(bad.group()):04x}"
                where = self.where(line)
                c.add(data_error("lone-surrogate", where, column=column, input=name, escape=escape))
                ok = False
            elif "\0" in text:  # servers refuse it (llama.cpp's grammar cannot pin it)
                where = self.where(line)
                c.add(data_error("nul-in-data", where, column=column, input=name))
                ok = False
            elif len(text) > MAX_MESSAGE_CHARS:  # no prompt can carry it: said at its row
                where = self.where(line)
                size, limit = f"{len(text):,}", f"{MAX_MESSAGE_CHARS:,}"
                c.add(
                    data_error(
                        "input-too-long", where, column=column, input=name, size=size, limit=limit
                    )
                )
                ok = False
        self.options = options
        return inputs if ok else None

    def report_missing(
        self, n_rows: int, c: ErrorCollector, where: Callable[[str], tuple[Location, KeyPath]]
    ) -> None:
        """Says the columns rows lacked: a column no row has is one error at its mapping
        (``where(input)``: ``data.fields.<input>``), listing the columns the rows do have —
        a misspelt name, not one error a row; a column some rows lack, one error each."""
        for name, errors in self.missing.items():
            column = dict(self.columns)[name]
            if self.missing_rows[name] < n_rows:
                for e in errors:
                    c.add(e)
                continue
            found = sorted(self.present)
            listed = ", ".join(repr(k) for k in found[:MAX_LISTED])
            more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
            location, path = where(name)
            c.add(
                data_error(
                    "unknown-column",
                    location,
                    path,
                    column=column,
                    input=name,
                    columns=(listed + more) or "none",
                )
            )
        self.missing, self.missing_rows, self.present = {}, {}, set()
        for reader in self.gold:
            if reader.missing_rows and reader.missing_rows == n_rows:
                found = sorted(reader.present)
                listed = ", ".join(repr(k) for k in found[:MAX_LISTED])
                more = f" and {len(found) - MAX_LISTED} more" if len(found) > MAX_LISTED else ""
                path = ("data", "gold", reader.output.name)
                c.add(
                    data_error(
                        "unknown-gold-column",
                        reader.location,
                        path,
                        column=reader.spec,
                        output=reader.output.name,
                        columns=(listed + more) or "none",
                    )
                )
            else:
                for e in reader.missing:
                    c.add(e)
            reader.missing, reader.missing_rows, reader.present = [], 0, set()

    def item_id(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> str | None:
        """The row's id, or ``None`` if it is missing, empty or bad (reported)."""
        column = self.id_column
        if column is not None:
            value = values.get(column)
            if value is None:
                code = "null-id" if column in values else "missing-id"
                c.add(data_error(code, self.where(line), column=column))
                return None
            text = value.strip() if type(value) is str else to_text(value).strip()
        elif self.id_spec is None:
            return str(index + 1)
        elif self.template is None:
            return None  # the expression does not compile, which is reported
        else:
            try:
                text = self.template(row=values, index=index, loop_index=index + 1)
            except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
                c.add(data_error("bad-id", self.where(line), ("data", "id"), problem=str(e)))
                return None
            text = text.strip()
        if not text:
            c.add(data_error("empty-id", self.where(line)))
            return None
        if surrogate(text) is not None:
            c.add(data_error("lone-surrogate-id", self.where(line)))
            return None
        return text
