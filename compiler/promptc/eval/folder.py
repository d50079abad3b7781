"""The report folder (``promptc eval -o REPORT_DIR``): what eval writes there, and which
folders it writes into.

An eval writes ``report.json``, ``report.md``, ``report.html``, two PNG charts and (when it
runs the variants) ``variants/NAME``, and replaces them on the next eval. So that it never
replaces a file of the user's under one of those names, it writes only into a folder that is
new, empty, or holds an earlier eval's report: nothing but those names (and the temporary
files of a write cut short), and, when any report file is there, a ``report.json`` that eval
wrote — a JSON object carrying :data:`REPORT_FORMAT` under ``report_format``, its own marker.
A folder holding only ``variants/`` is an eval interrupted before its report: it resumes.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from promptc.build.files import read_text
from promptc.errors import Location, UsageError
from promptc.eval.charts import CHART_POSITION, CHART_TOKENS
from promptc.eval.html import REPORT_HTML

REPORT_JSON = "report.json"
REPORT_MD = "report.md"
VARIANTS_DIR = "variants"
#: The form of ``report.json``, written in it under ``report_format``: the marker by which eval
#: knows a folder holds a report of its own, which it may replace.
REPORT_FORMAT = 1
#: The files of a report, which an eval replaces.
REPORT_FILES = (REPORT_JSON, REPORT_MD, REPORT_HTML, CHART_TOKENS, CHART_POSITION)
#: A temporary file of one of them (``text.write_atomic``), left by a write cut short.
_TEMPORARY = re.compile(
    r"\.(" + "|".join(re.escape(n) for n in REPORT_FILES) + r")\.[A-Za-z0-9_]+\.tmp"
)

#: Why eval refuses a folder (tested word for word).
NOT_AN_EVAL_FOLDER = (
    "{folder!r} holds {name!r}, which promptc eval did not write{why}; promptc eval writes "
    "its report only into a new or empty folder or over an earlier eval's report"
)


def is_eval_report(path: Path) -> bool:
    """Whether ``path`` is a ``report.json`` an eval wrote: a regular file holding a JSON
    object with its marker (a link, a pipe or a folder there is not one).

    Raises:
        UsageError: ``not-regular``: a link, a pipe, a device or a folder at ``path``.
    """
    try:
        doc = json.loads(read_text(path))
    except UsageError as e:
        if e.code == "not-regular":
            raise
        return False  # too large, not UTF-8: not a report eval wrote
    except (OSError, ValueError, RecursionError):
        return False
    return isinstance(doc, dict) and doc.get("report_format") == REPORT_FORMAT


def check_report_dir(out_dir: Path) -> None:
    """Refuses a folder to write an eval's report into unless it is new, empty, or holds an
    earlier eval's report (see the module's docstring).

    Raises:
        UsageError: ``out-not-eval``, naming the first file eval did not write;
            ``not-regular``: a link, a pipe or a folder under ``report.json``'s name.
    """
    try:
        names = sorted(os.listdir(out_dir))
    except (FileNotFoundError, NotADirectoryError):
        return  # a new folder, or a file there (which writing will say)
    except OSError:
        return  # unreadable: writing into it will say why, naming it
    for name in names:
        if name == VARIANTS_DIR:
            place = out_dir / name
            # (a link there is refused by name when eval would write through it: runner)
            if not place.is_symlink() and not place.is_dir():
                raise _refused(out_dir, name, " (eval keeps its variants in a folder there)")
        elif name not in REPORT_FILES and not _TEMPORARY.fullmatch(name):
            raise _refused(out_dir, name, "")
    written = [n for n in names if n in REPORT_FILES]
    if written and not (REPORT_JSON in names and is_eval_report(out_dir / REPORT_JSON)):
        name = REPORT_JSON if REPORT_JSON in names else written[0]
        why = f" (there is no {REPORT_JSON} of promptc eval beside it)"
        if name == REPORT_JSON:
            why = f" (it is not a report of promptc eval: no {'report_format'!r} marker)"
        raise _refused(out_dir, name, why)


def _refused(out_dir: Path, name: str, why: str) -> UsageError:
    return UsageError(
        NOT_AN_EVAL_FOLDER.format(folder=str(out_dir), name=name, why=why),
        location=Location(str(out_dir / name)),
        hint="give a new or empty folder with -o, or move that file away",
        code="out-not-eval",
    )
