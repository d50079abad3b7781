"""Read a spec's data file into items: JSONL, a JSON array of objects, or CSV with a header.

:func:`read_data` resolves ``data.path`` relative to the folder of the spec that declares it,
refuses paths that leave that folder (absolute paths, ``..``, symlinks pointing outside), reads
every row (:mod:`promptc.spec.readers`), maps columns to inputs (``data.fields``), computes item
ids (``data.id``) and gold answers (``data.gold``) (:mod:`promptc.spec.items`), and reports
every bad row at its file:line:col through the caller's :class:`~promptc.errors.ErrorCollector`.
The items are an :class:`~promptc.spec.item_table.ItemTable`, which reads rows back from the
file when asked for. Messages and values as text: :mod:`promptc.spec.rows`.
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc.errors import ErrorCollector, Location
from promptc.ir import DataSource, Item, OutputField
from promptc.spec.item_table import Duplicates, ItemTable, Places
from promptc.spec.items import ItemMaker, gold_readers, id_template
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument
from promptc.spec.readers import NotUtf8, csv_header, json_array_rows, jsonl_rows
from promptc.spec.rows import DataFormat, data_error
from promptc.spec.validate import resolve_inside
from promptc.text import sha256_hasher

__all__ = ["EXTENSIONS", "FORMATS", "ItemTable", "read_data"]

EXTENSIONS: dict[str, DataFormat] = {
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".csv": "csv",
}
FORMATS: tuple[DataFormat, ...] = ("jsonl", "json", "csv")


@dataclass(frozen=True, slots=True)
class _DataFile:
    """Where the data file is: as the spec names it, on disk, and as diagnostics show it."""

    rel: str  # written to the manifest: relative to the spec's folder
    target: Path
    display: str
    format: DataFormat
    where: Location  # of data.path


def read_data(
    doc: SpecDocument,
    input_names: Sequence[str],
    c: ErrorCollector,
    outputs: Sequence[OutputField] = (),
    option_inputs: frozenset[str] = frozenset(),
) -> tuple[DataSource, Sequence[Item]] | None:
    """Reads the data file named by the spec.

    JSONL and CSV are read as streams, a line at a time; a JSON array whole, then an element
    at a time. What is kept per item is where its row starts in the file and its length (an
    :class:`ItemTable`), so memory does not grow with the text of the data.

    A ``data.path`` given on the command line (``--data PATH``, located at ``<command line>``)
    is the user's own choice of file: it is read relative to the working folder and is not
    confined to the spec's folder.

    Args:
        doc: The loaded spec; ``data`` must be a mapping with a string ``path``.
        input_names: The declared inputs, in order.
        c: Receives every problem found.
        outputs: The declared outputs, whose types read the gold answers of ``data.gold``
            (an output not among them was reported by validation and is skipped here).
        option_inputs: The inputs of type ``options``, whose values are lists of options.

    Returns:
        The data source and its items, or ``None`` if the file could not be read at all.
    """
    data = doc.get(("data",))
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None
    file = _locate(doc, data, c)
    if file is None:
        return None
    raw_fields = data.get("fields")
    mapping = dict(raw_fields) if isinstance(raw_fields, dict) else {}
    # An input whose mapping is not a column name was reported by validation: skip it here.
    columns = {
        name: mapping.get(name, name)
        for name in input_names
        if isinstance(mapping.get(name, name), str)
    }
    id_spec = data.get("id") if isinstance(data.get("id"), str) else None
    template = None
    if id_spec is not None and "{{" in id_spec:
        template = id_template(id_spec, doc.value_location(("data", "id")), c)
    gold = gold_readers(doc, outputs, c)
    maker = ItemMaker(columns, id_spec, template, file.display, gold, option_inputs)

    errors_before, omitted_before = len(c.errors), c.omitted
    pp: KeyPath = ("data", "path")
    try:
        items, sha, n_rows = _scan(file, maker, c, doc.digests)
    except OSError as e:
        reason = e.strerror or str(e)
        c.add(data_error("unreadable", file.where, pp, path=file.rel, reason=reason))
        return None
    except NotUtf8 as e:
        # As if the file had been decoded before any row was read: only this error.
        del c.errors[errors_before:]
        c.omitted = omitted_before
        c.add(data_error("not-utf8", Location(file.display, e.line, e.col), byte=e.byte))
        return None
    if n_rows == 0 and not c.errors:
        c.add(data_error("no-rows", Location(file.display)))
    source = DataSource(
        path=file.rel,
        resolved=str(file.target),
        format=file.format,
        fields=columns,
        id=id_spec,
        sha256=sha,
        location=file.where,
        gold={r.output.name: r.spec for r in gold},
    )
    return source, items


def _locate(doc: SpecDocument, data: Mapping[str, Any], c: ErrorCollector) -> _DataFile | None:
    """The data file ``data.path`` names, or ``None`` (reported, unless validation did)."""
    rel: str = data["path"]
    pp: KeyPath = ("data", "path")
    where = doc.value_location(pp)
    if "\0" in rel:
        c.add(data_error("nul-in-path", where, pp, path=rel))
        return None
    from_command_line = where.file == COMMAND_LINE
    if from_command_line:
        target = Path(rel).expanduser().resolve()
    else:
        if os.path.isabs(rel) or rel.startswith("~"):
            c.add(data_error("absolute-path", where, pp, path=rel))
            return None
        resolved = resolve_inside(doc.folder_of(pp), rel)
        if resolved is None:
            c.add(data_error("escapes-folder", where, pp, path=rel))
            return None
        target = resolved
    fmt = data.get("format")
    if fmt is not None and fmt not in FORMATS:
        return None  # validation reported it
    fmt = fmt or EXTENSIONS.get(os.path.splitext(rel)[1].lower())
    if fmt not in FORMATS:
        c.add(data_error("unknown-format", where, pp, path=rel))
        return None
    if not target.exists():
        c.add(data_error("not-found", where, pp, path=rel))
        return None
    if not target.is_file():
        c.add(data_error("not-a-file", where, pp, path=rel))
        return None
    if from_command_line:
        display = os.path.normpath(rel)
        # Written to the manifest: relative to the spec's folder, so that it names no machine.
        rel = os.path.relpath(target, doc.files[0].resolved.parent).replace(os.sep, "/")
    else:
        display = os.path.normpath(os.path.join(os.path.dirname(where.file), rel))
    return _DataFile(rel, target, display, fmt, where)


def _scan(
    file: _DataFile, maker: ItemMaker, c: ErrorCollector, digest: bool
) -> tuple[Sequence[Item], str, int]:
    """Reads a data file a row at a time, checking every row; keeps an offset table, and the
    file's sha256 (``""`` without ``digest``). Returns the items, the sha256 and the number of
    rows read (good or bad)."""
    # Offsets and lengths fit 4 bytes each in a file under 4 GiB (all but the largest).
    code = "I" if os.path.getsize(file.target) < 2**32 else "q"
    starts, lengths = array(code), array(code)
    lines = Places()
    # A JSON array's rows may start anywhere on a line: their columns too.
    cols = Places(step=0) if file.format == "json" else None
    dups = Duplicates()
    sha = sha256_hasher(digest)
    n_rows = 0
    header: list[str] | None = None
    with open(file.target, "rb") as f:
        rows: Iterator[tuple[dict[str, Any], Any, int, int]] = iter(())
        if file.format == "json":
            rows = json_array_rows(f, sha, file.display, c)
        elif file.format == "jsonl":
            rows = jsonl_rows(f, sha, file.display, c)
        else:
            found = csv_header(f, sha, file.display, c)
            if found is not None:
                header, rows = found
        line: Any  # a line number (JSONL, CSV) or the row's Location (a JSON array)
        for values, line, start, length in rows:
            index = n_rows
            n_rows += 1
            inputs = maker.inputs(values, line, c)
            item_id = maker.item_id(values, line, index, c)
            golds = maker.golds(values, line, index, c)
            if item_id is None or inputs is None or golds is None:
                continue
            dups.add(item_id)
            if cols is not None:
                cols.append(len(starts), line.col)
                line = line.line
            lines.append(len(starts), line)
            starts.append(start)
            lengths.append(length)
        while chunk := f.read(1 << 20):  # what a reader stopped before (an error), for the sha
            sha.update(chunk)
    if file.format == "csv" and header is None:
        return (), sha.hexdigest(), 0
    table = ItemTable(str(file.target), file.format, maker, header, starts, lengths, lines, cols)
    dups.report(table, c)
    return table, sha.hexdigest(), n_rows
