"""Items from a data file's rows: their inputs as text, their ids and their gold answers.

:class:`ItemMaker` reads a row's inputs (``data.fields``), its id (``data.id``: a column, a
Jinja expression, or the 1-based row number) and, through one :class:`GoldReader` per output,
its gold answers (``data.gold``). It runs once per row when the file is checked and once more
when the item is read back; locations are made only for errors.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from promptc.errors import ErrorCollector, Location
from promptc.ir import AnswerWith, OutputField, Value
from promptc.markers import options_text
from promptc.spec.load import KeyPath, SpecDocument
from promptc.spec.rows import Row, data_error, kind, option_list, surrogate, to_text
from promptc.values import coerce_value, expected, option_choices, resolve_option


def _expression(
    source: str, where: Location, path: KeyPath, c: ErrorCollector, code: str, **kw: object
) -> Any:
    """The compiled Jinja template of an id or gold expression, or ``None`` (reported)."""
    # Imported here: Jinja takes a few tens of milliseconds to import, and only a spec that
    # writes an expression needs it (`promptc check` of most specs does not).
    from promptc.spec.expressions import TemplateError, compile_expression

    try:
        return compile_expression(source)
    except TemplateError as e:
        c.add(data_error(code, where, path, problem=str(e), **kw))
        return None


def id_template(expr: str, where: Location, c: ErrorCollector) -> Any:
    """Compiles a Jinja id expression in a sandbox, or reports it."""
    return _expression(expr, where, ("data", "id"), c, "bad-id-template")


@dataclass(frozen=True, slots=True)
class GoldReader:
    """Reads one output's gold answer from a row: a column, or a Jinja expression over it."""

    output: OutputField
    spec: str
    template: Any  # a compiled Jinja template for an expression, else None
    location: Location

    def read(self, row: Row, index: int, c: ErrorCollector) -> Value | None:
        """The row's gold value, normalised by the output's type, or ``None`` (reported)."""
        name = self.output.name
        raw = self._raw(row, index, c)
        if raw is None:
            return None
        if isinstance(raw, (Decimal, list, dict)):
            raw = to_text(raw)  # a JSON number as written: 51.0 reads as a number or integer
        try:
            return coerce_value(self.output, raw)
        except ValueError:
            c.add(
                data_error(
                    "bad-gold",
                    row.location,
                    ("data", "gold", name),
                    type=self.output.type,
                    output=name,
                    problem=f"expected {expected(self.output)}, found {to_text(raw)!r}",
                )
            )
            return None

    def _raw(self, row: Row, index: int, c: ErrorCollector) -> object:
        """The gold as the row gives it (the expression's text), or ``None`` (reported)."""
        name = self.output.name
        if self.template is not None:
            try:
                text = str(self.template.render(row=row.values, index=index, loop_index=index + 1))
            except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
                path = ("data", "gold", name)
                problem = str(e)
                c.add(
                    data_error(
                        "bad-gold-expression", row.location, path, output=name, problem=problem
                    )
                )
                return None
            return text.strip() if not self.output.type.free_text else text
        if self.spec not in row.values:
            c.add(data_error("missing-gold", row.location, column=self.spec, output=name))
            return None
        raw = row.values[self.spec]
        if raw is None:
            c.add(data_error("null-gold", row.location, column=self.spec, output=name))
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
            template = _expression(spec, where, p, c, "bad-gold-template", output=field.name)
            if template is None:
                continue
        readers.append(GoldReader(field, spec, template, where))
    return readers


def _item_id(
    row: Row, index: int, id_spec: str | None, template: Any, c: ErrorCollector
) -> str | None:
    if id_spec is None:
        return str(index + 1)
    if "{{" in id_spec:
        if template is None:
            return None
        try:
            value = str(template.render(row=row.values, index=index, loop_index=index + 1))
        except Exception as e:  # noqa: BLE001 - any Jinja failure is the user's expression
            c.add(data_error("bad-id", row.location, ("data", "id"), problem=str(e)))
            return None
        value = value.strip()
    else:
        if id_spec not in row.values or row.values[id_spec] is None:
            c.add(data_error("missing-id", row.location, column=id_spec))
            return None
        value = to_text(row.values[id_spec]).strip()
    if not value:
        c.add(data_error("empty-id", row.location))
        return None
    return value


_ABSENT: Any = object()


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

    def where(self, line: int | Location) -> Location:
        """A row's location: given whole (a JSON array's rows have columns), or its line."""
        return line if isinstance(line, Location) else Location(self.display, line, 1)

    def golds(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> dict[str, Value] | None:
        """The row's gold answers (``data.gold``), or ``None`` if one is missing or bad."""
        out: dict[str, Value] = {}
        if not self.gold:
            return out
        row = Row(values, self.where(line))
        ok = True
        for reader in self.gold:
            value = reader.read(row, index, c)
            if value is not None and reader.output.choices_from:
                value = self._gold_option(reader, value, row, c)
            if value is None:
                ok = False
            else:
                out[reader.output.name] = value
        return out if ok else None

    def _gold_option(
        self, reader: GoldReader, value: Value, row: Row, c: ErrorCollector
    ) -> Value | None:
        """A gold answer naming one of the row's own options (``choices_from``): its letter,
        given as the letter or (``answer_with: text | either``) as the option's text."""
        field = reader.output
        options = self.options.get(field.choices_from)
        if not options:
            return value  # the row's options are missing or bad, which is reported
        answer_with: AnswerWith = "either" if field.answer_with != "letter" else "letter"
        hits = resolve_option(answer_with, options, str(value), exact=False)
        if len(hits) == 1:
            return hits[0]
        names = f"names options {' and '.join(hits)}" if hits else "names none of its options"
        choices = ", ".join(repr(x) for x in option_choices(answer_with, options))
        c.add(
            data_error(
                "bad-gold",
                row.location,
                ("data", "gold", field.name),
                type=field.type,
                output=field.name,
                problem=f"{str(value)!r} {names}; expected one of {choices}",
            )
        )
        return None

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
            elif value is _ABSENT or value is None:
                code = "missing-field" if value is _ABSENT else "null-field"
                c.add(data_error(code, self.where(line), column=column, input=name))
                ok = False
                continue
            elif name in self.option_inputs:
                listed = option_list(value)
                if listed is None:
                    where = self.where(line)
                    found = kind(value)
                    c.add(data_error("bad-options", where, column=column, input=name, found=found))
                    ok = False
                else:
                    options[name] = listed
                    inputs[name] = options_text(listed)
                continue
            else:
                text = to_text(value)
            inputs[name] = text
            bad = surrogate(text)
            if bad is not None:  # from a JSON escape: no character, cannot be sent as UTF-8
                escape = f"\\u{ord(bad.group()):04x}"
                where = self.where(line)
                c.add(data_error("lone-surrogate", where, column=column, input=name, escape=escape))
                ok = False
        self.options = options
        return inputs if ok else None

    def item_id(
        self, values: Mapping[str, Any], line: int | Location, index: int, c: ErrorCollector
    ) -> str | None:
        """The row's id, or ``None`` if it is missing, empty or bad (reported)."""
        column = self.id_column
        if column is not None:
            value = values.get(column)
            if type(value) is str:
                text = value.strip()
                if text and surrogate(text) is None:
                    return text
        item_id = _item_id(Row(values, self.where(line)), index, self.id_spec, self.template, c)
        if item_id is not None and surrogate(item_id):
            c.add(data_error("lone-surrogate-id", self.where(line)))
            return None
        return item_id
