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
from promptc.ir import DataSource, Item
from promptc.spec.item_table import Duplicates, ItemTable, Places
from promptc.spec.items import ItemMaker, expression, gold_readers
from promptc.spec.load import COMMAND_LINE, KeyPath, SpecDocument, confined
from promptc.spec.readers import NotUtf8, csv_header, json_array_rows, jsonl_rows
from promptc.spec.rows import DataFormat, data_error
from promptc.spec.validate import declared_outputs, option_inputs
from promptc.text import recorded_path, sha256_hasher

#: Rows left out for another error whose ids are still checked for duplicates: enough for
#: any data file a person fixes by hand, bounded for one that is all errors.
MAX_DROPPED = 100_000

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


def read_data(doc: SpecDocument, c: ErrorCollector) -> tuple[DataSource | None, Sequence[Item]]:
    """Reads the data file the spec names (if it names one) into items, reporting bad rows.

    JSONL and CSV are read as streams, a line at a time; a JSON array whole, then an element
    at a time. What is kept per item is where its row starts in the file and its length (an
    :class:`ItemTable`), so memory does not grow with the text of the data.

    A ``data.path`` given on the command line (``--data PATH``, located at ``<command line>``)
    is the user's own choice of file: it is read relative to the working folder and is not
    confined to the spec's folder.

    The declared outputs' types read the gold answers of ``data.gold``; an output that does
    not validate was reported by validation and is skipped here, as its gold cannot be read.

    Args:
        doc: The loaded spec.
        c: Receives every problem found.

    Returns:
        The data source and its items; ``(None, ())`` without a ``data.path``, or if the file
        could not be read at all.
    """
    data = doc.get(("data",))
    if not isinstance(data, dict) or not isinstance(data.get("path"), str):
        return None, ()
    file = _locate(doc, data, c)
    if file is None:
        return None, ()
    inputs = doc.get(("inputs",))
    names: list[str] = list(inputs) if isinstance(inputs, dict) else []
    raw_fields = data.get("fields")
    mapping = dict(raw_fields) if isinstance(raw_fields, dict) else {}
    # An input whose mapping is not a column name was reported by validation: skip it here.
    columns = {
        name: mapping.get(name, name) for name in names if isinstance(mapping.get(name, name), str)
    }
    id_spec = data.get("id") if isinstance(data.get("id"), str) else None
    template = None
    if id_spec is not None and "{{" in id_spec:
        template = expression(
            id_spec, doc.value_location(("data", "id")), ("data", "id"), c, "bad-id-template"
        )
    gold = gold_readers(doc, list(declared_outputs(doc).values()), c)
    maker = ItemMaker(columns, id_spec, template, file.display, gold, frozenset(option_inputs(doc)))

    errors_before, omitted_before = len(c.errors), c.omitted
    pp: KeyPath = ("data", "path")
    try:
        items, sha, n_rows = _scan(file, maker, c, doc.digests)
    except OSError as e:
        reason = e.strerror or str(e)
        c.add(data_error("unreadable", file.where, pp, path=file.rel, reason=reason))
        return None, ()
    except NotUtf8 as e:
        # As if the file had been decoded before any row was read: only this error.
        del c.errors[errors_before:]
        c.omitted = omitted_before
        c.add(data_error("not-utf8", Location(file.display, e.line, e.col), byte=e.byte))
        return None, ()

    def mapping_of(name: str) -> tuple[Location, KeyPath]:
        path: KeyPath = ("data", "fields", name) if name in mapping else ("data", "path")
        return doc.value_location(path), path

    maker.report_missing(n_rows, c, mapping_of)
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


#: The error of each reason :func:`promptc.spec.load.confined` gives for the data path.
_PATH_CODES = {"nul": "nul-in-path", "absolute": "absolute-path", "escape": "escapes-folder"}


def _locate(doc: SpecDocument, data: Mapping[str, Any], c: ErrorCollector) -> _DataFile | None:
    """The data file ``data.path`` names, or ``None`` (reported, unless validation did)."""
    rel: str = data["path"]
    pp: KeyPath = ("data", "path")
    where = doc.value_location(pp)
    from_command_line = where.file == COMMAND_LINE
    target: Path | str
    if from_command_line and "\0" not in rel:
        target = Path(rel).expanduser().resolve()
    else:
        target = confined(doc.folder_of(pp), rel)
    if isinstance(target, str):
        c.add(data_error(_PATH_CODES[target], where, pp, path=rel))
        return None
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
        rel = recorded_path(str(target), str(doc.files[0].resolved.parent))
    else:
        display = os.path.normpath(os.path.join(os.path.dirname(where.file), rel))
        if os.path.realpath(display) != str(target):
            # The spec was named through a link to its file: the data is beside the file
            # it links to, and is named so (never a file beside the link).
            display = os.path.relpath(target)
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
    #: Ids of rows left out for another error, and where (the first MAX_DROPPED): their
    #: duplicates are said with the rest.
    dropped: list[tuple[str, Location]] = []
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
                if item_id is not None and len(dropped) < MAX_DROPPED:
                    dups.add(item_id)
                    where = line if isinstance(line, Location) else Location(file.display, line, 1)
                    dropped.append((item_id, where))
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
    dups.report(table, c, dropped)
    return table, sha.hexdigest(), n_rows
