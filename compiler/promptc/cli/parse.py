"""``promptc parse``: model outputs → one result per item, as JSON lines or a table.

::

    promptc parse BUILD_DIR_OR_SPEC OUTPUTS [--request ID] [--mode recover|strict]
                  [--format jsonl|table] [-o FILE]

``OUTPUTS`` is either one request's output as plain text (``--request`` names the request,
unless the build has only one), or JSON Lines, one request a line, in any of these forms::

    {"id": "r0001", "output": "A[1]: yes\\nA[2]: no"}
    {"request_id": "r0001", "text": "..."}
    {"custom_id": "r0001", "response": {"body": {"choices": [{"message": {"content": "..."}}]}}}

(the last is the OpenAI Batch API output form; ``custom_id`` wins over ``id`` there). A file is
read as JSON Lines when its name ends in ``.jsonl`` or ``.ndjson``, or when its first non-blank
line is a JSON object with one of those id keys.

Exit status: 0 when every result is ``ok``; 1 when any result is not ``ok`` (``extra`` included)
or some lines of OUTPUTS could not be used (they are reported on stderr, the others are parsed);
2 for usage errors (bad arguments, unreadable build or spec, unknown ``--request``).
"""

from __future__ import annotations

import io
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import click

from promptc import markers
from promptc.errors import (
    Location,
    OutputParseError,
    PromptcError,
    PromptcErrors,
    UsageError,
    did_you_mean,
    flatten,
)
from promptc.ir import Task
from promptc.parse.output import (
    MODES,
    STATUSES,
    ItemResult,
    RequestShape,
    items_by_id,
    parse_output,
    request_shape,
    summarize,
)

ID_KEYS = ("custom_id", "request_id", "id")
TEXT_KEYS = ("output", "text", "content")
JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass(frozen=True)
class OutputRecord:
    """One request's output as read from OUTPUTS, with where it was written."""

    request_id: str | None
    text: str
    location: Location


@dataclass(frozen=True)
class Build:
    """What parsing needs from a build or a spec: the task and its requests, by id."""

    task: Task
    requests: Mapping[str, RequestShape]
    source: str


# --------------------------------------------------------------------------------------------
# Reading the build or spec
# --------------------------------------------------------------------------------------------


def _compile(spec_path: Path) -> Task:
    from promptc.spec.lower import compile_spec

    return compile_spec(spec_path)


def _with_build_data(task: Task, manifest: Mapping[str, Any]) -> Task:
    """The task with the data the build was made from: a build made with ``--data PATH``
    records that file (relative to the spec's folder) in its manifest, and its items, not the
    spec's own, are the ones its answers are about."""
    data = manifest.get("data")
    if not isinstance(data, Mapping) or task.data is None:
        return task
    rel, sha = data.get("path"), data.get("sha256")
    if not isinstance(rel, str) or sha == task.data.sha256:
        return task
    target = (Path(task.spec_dir) / rel).resolve()
    if not target.is_file():
        return task
    from promptc.spec.lower import compile_spec

    return compile_spec(task.spec.path, overrides={("data", "path"): str(target)})


def _manifest_spec_path(build_dir: Path, manifest: Mapping[str, Any]) -> Path:
    """The spec a build was made from: ``spec.path_from_build`` (relative to the build), else
    ``spec.path`` relative to the build's parent folder or the current one."""
    spec = manifest.get("spec")
    candidates: list[Path] = []
    if isinstance(spec, Mapping):
        from_build = spec.get("path_from_build")
        if isinstance(from_build, str) and from_build:
            candidates.append(build_dir / from_build)
        raw = spec.get("path")
        if isinstance(raw, str) and raw:
            p = Path(raw)
            candidates += [p] if p.is_absolute() else [build_dir.parent / p, Path.cwd() / p]
    if not candidates:
        raise UsageError(
            "manifest.json names no spec; expected a 'spec' entry with its path",
            location=Location(str(build_dir / "manifest.json")),
            hint="pass the spec file instead of the build directory",
            code="no-spec-in-manifest",
        )
    for c in candidates:
        if c.is_file():
            return c
    raise UsageError(
        "the spec named by manifest.json was not found (looked at "
        + ", ".join(repr(str(c)) for c in candidates)
        + ")",
        location=Location(str(build_dir / "manifest.json")),
        hint="pass the spec file instead of the build directory",
        code="spec-not-found",
    )


def _read_requests(
    build_dir: Path, task: Task, manifest: Mapping[str, Any]
) -> dict[str, RequestShape]:
    """Request shapes of a build's ``requests.jsonl`` (read by :func:`promptc.build.read_requests`).

    Raises:
        PromptcErrors: Every malformed line, at its file:line:col.
    """
    from promptc.build import read_requests

    requests: dict[str, RequestShape] = {}
    errors: list[PromptcError] = []
    for r in read_requests(build_dir, manifest=manifest, errors=errors):
        record: dict[str, Any] = {
            "id": r.id,
            "kind": r.kind or task.strategy.kind,
            "item_ids": list(r.item_ids) if r.item_ids else None,
            "messages": [dict(m) for m in r.messages],
        }
        if record["kind"] == "auto-demo":
            record["questions"] = _questions(task, record)
        try:
            shape = request_shape(task, record)
        except PromptcError as e:
            errors.append(UsageError(e.message, location=r.location, code=e.code))
            continue
        requests[shape.id] = shape
    if errors:
        raise PromptcErrors(errors)
    return requests


def _questions(task: Task, request: Mapping[str, Any]) -> list[str]:
    """Each item's question: from the task's items, else as the request's prompt shows it."""
    by_id = items_by_id(task)
    ids = [str(i) for i in request.get("item_ids") or []]
    shown = _questions_in_messages(request.get("messages"))
    out = []
    for k, i in enumerate(ids, 1):
        it = by_id.get(i)
        if it is not None:
            try:
                out.append(markers.question_text(task.inputs, it.inputs))
                continue
            except KeyError:
                pass
        out.append(shown.get(k, ""))
    return out


def _questions_in_messages(messages: object) -> dict[int, str]:
    """``Q[i]:`` texts of the last user message (the prompt of a built request)."""
    from promptc.parse.output import _scan

    if not isinstance(messages, list):
        return {}
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        return {}
    text: str = users[-1]["content"]
    marks = _scan(text)
    out: dict[int, str] = {}
    for k, m in enumerate(marks):
        if m.kind != markers.QUESTION_PREFIX:
            continue
        end = marks[k + 1].cut if k + 1 < len(marks) else len(text)
        body = text[m.end : end].strip()
        out[m.index] = body.split("\n\n", 1)[0].strip()
    return out


def load_build(source: str | Path) -> Build:
    """The task and requests of a build directory (``requests.jsonl`` + the spec named by
    ``manifest.json``) or of a spec file (compiled and rendered in memory).

    Raises:
        PromptcError: The build or spec cannot be read (a :class:`UsageError` for a missing
            file, the spec's own errors otherwise).
    """
    from promptc.build import MANIFEST_FILE, REQUESTS_FILE

    path = Path(source)
    if path.is_dir():
        manifest_path = path / MANIFEST_FILE
        requests_path = path / REQUESTS_FILE
        for p in (manifest_path, requests_path):
            if not p.is_file():
                raise UsageError(
                    f"{p.name} not found in build directory {str(path)!r}",
                    location=Location(str(p)),
                    hint="run promptc build first, or pass the spec file",
                    code="not-a-build",
                )
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise UsageError(
                f"cannot read manifest.json: {e}",
                location=Location(str(manifest_path)),
                code="bad-manifest",
            ) from None
        if not isinstance(manifest, dict):
            raise UsageError(
                "manifest.json is not a JSON object",
                location=Location(str(manifest_path)),
                code="bad-manifest",
            )
        task = _with_build_data(_compile(_manifest_spec_path(path, manifest)), manifest)
        return Build(task, _read_requests(path, task, manifest), str(path))
    if not path.is_file():
        raise UsageError(f"no such build directory or spec file: {str(path)!r}", code="not-found")
    task = _compile(path)
    return Build(task, _spec_requests(task), str(path))


def _spec_requests(task: Task) -> dict[str, RequestShape]:
    """The requests a build of this spec would write, made in memory."""
    from promptc.render.renderer import render
    from promptc.select.methods import select

    out: dict[str, RequestShape] = {}
    for r in render(task, select(task)):
        shape = request_shape(task, r)
        out[shape.id] = shape
    return out


# --------------------------------------------------------------------------------------------
# Reading the outputs
# --------------------------------------------------------------------------------------------


def _looks_like_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except ValueError:
            return False
        return isinstance(data, dict) and any(k in data for k in ID_KEYS)
    return False


def _record_text(data: Mapping[str, Any]) -> str | None:
    for k in TEXT_KEYS:
        v = data.get(k)
        if isinstance(v, str):
            return v
    body: Any = data.get("response")
    if isinstance(body, Mapping):
        body = body.get("body", body)
    else:
        body = data
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        msg = choices[0].get("message")
        if isinstance(msg, Mapping):
            content = msg.get("content")
            if isinstance(content, str):
                return content
            if content is None:
                return ""  # a refusal or a tool call: nothing to parse, every item missing
        text = choices[0].get("text")  # a completions response
        if isinstance(text, str):
            return text
    return None


def read_outputs(path: Path, errors: list[PromptcError]) -> Iterator[OutputRecord]:
    """The outputs of OUTPUTS; malformed lines go to ``errors`` (file:line:col) and are skipped.

    Raises:
        UsageError: The file cannot be read at all.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            f"cannot read outputs file {str(path)!r}: {e}",
            location=Location(str(path)),
            code="unreadable-outputs",
        ) from None
    if not _looks_like_jsonl(path, text):
        yield OutputRecord(None, text, Location(str(path), 1, 1))
        return
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip():
            continue
        where = Location(str(path), lineno, 1)
        try:
            data = json.loads(line)
        except json.JSONDecodeError as e:
            errors.append(
                OutputParseError(
                    f"not a JSON line: {e.msg}",
                    location=Location(str(path), lineno, e.colno),
                    code="bad-outputs-line",
                )
            )
            continue
        if not isinstance(data, dict):
            errors.append(
                OutputParseError(
                    f"expected a JSON object with one of {', '.join(ID_KEYS)} and the output text, "
                    f"found {type(data).__name__}",
                    location=where,
                    code="bad-outputs-line",
                )
            )
            continue
        rid = next((data[k] for k in ID_KEYS if isinstance(data.get(k), (str, int))), None)
        if rid is None:
            errors.append(
                OutputParseError(
                    f"no request id: expected one of the keys {', '.join(ID_KEYS)}",
                    location=where,
                    code="bad-outputs-line",
                )
            )
            continue
        out = _record_text(data)
        if out is None:
            errors.append(
                OutputParseError(
                    "no output text: expected 'output' or 'text', or an OpenAI response with "
                    "response.body.choices[0].message.content",
                    location=where,
                    code="bad-outputs-line",
                )
            )
            continue
        yield OutputRecord(str(rid), out, where)


# --------------------------------------------------------------------------------------------
# Writing results
# --------------------------------------------------------------------------------------------


def _values_text(r: ItemResult) -> str:
    parts = []
    for k, v in r.values.items():
        shown = ("yes" if v else "no") if isinstance(v, bool) else str(v)
        if len(shown) > 40:
            shown = shown[:39] + "…"
        parts.append(f"{k}={shown}")
    return ", ".join(parts)


def write_table(results: Sequence[ItemResult], out: IO[str]) -> None:
    """A table for people (rich; plain text when ``out`` is not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(show_lines=False)
    for col in ("request", "item", "#", "status", "values", "span", "detail"):
        table.add_column(col, overflow="fold")
    styles = {"ok": "green", "missing": "yellow", "extra": "magenta"}
    for r in results:
        table.add_row(
            r.request_id,
            r.item_id or "-",
            str(r.index),
            f"[{styles.get(r.status, 'red')}]{r.status}[/]",
            _values_text(r),
            str(r.span) if r.span else "",
            r.message,
        )
    is_tty = hasattr(out, "isatty") and out.isatty()
    console = Console(
        file=out, force_terminal=is_tty, no_color=not is_tty, width=None if is_tty else 160
    )
    console.print(table)


def summary_line(results: Sequence[ItemResult], n_requests: int) -> str:
    counts = summarize(results)
    return f"{len(results)} results from {n_requests} request(s): " + ", ".join(
        f"{counts[s]} {s}" for s in STATUSES
    )


# --------------------------------------------------------------------------------------------
# The command
# --------------------------------------------------------------------------------------------


def run_parse(
    source: str,
    outputs: str,
    request_id: str | None,
    mode: str,
    fmt: str,
    out: IO[str],
    err: IO[str],
) -> int:
    """The command's work, returning its exit status (see the module docstring)."""
    try:
        build = load_build(source)
    except PromptcError as e:
        for x in flatten([e]):
            print(f"error: {x.format()}", file=err)
        return 2
    errors: list[PromptcError] = []
    out_path = Path(outputs)
    try:
        records = list(read_outputs(out_path, errors))
    except PromptcError as e:
        print(f"error: {e.format()}", file=err)
        return 2
    known = build.requests
    if request_id is not None and request_id not in known:
        hint = did_you_mean(request_id, known)
        print(
            f"error: unknown request {request_id!r} in {build.source}"
            + (f" ({hint})" if hint else ""),
            file=err,
        )
        return 2
    results: list[ItemResult] = []
    seen: dict[str, Location] = {}
    for rec in records:
        rid = rec.request_id
        if rid is None:  # a plain text file: one request's output
            if request_id is None:
                if len(known) != 1:
                    print(
                        f"error: {outputs} holds one output, and {build.source} has "
                        f"{len(known)} requests: say which with --request ID",
                        file=err,
                    )
                    return 2
                rid = next(iter(known))
            else:
                rid = request_id
        elif request_id is not None and rid != request_id:
            continue
        if rid not in known:
            hint = did_you_mean(rid, known)
            errors.append(
                OutputParseError(
                    f"unknown request id {rid!r}; expected one of the ids in {build.source}",
                    location=rec.location,
                    hint=hint,
                    code="unknown-request",
                )
            )
            continue
        if rid in seen:
            errors.append(
                OutputParseError(
                    f"a second output for request {rid!r} (the first is at line "
                    f"{seen[rid].line}); only the first is parsed",
                    location=rec.location,
                    code="duplicate-request",
                )
            )
            continue
        seen[rid] = rec.location
        results.extend(parse_output(build.task, known[rid], rec.text, mode=mode))  # type: ignore[arg-type]

    if request_id is not None and request_id not in seen and records:
        errors.append(
            OutputParseError(
                f"no output for request {request_id!r} in {outputs}",
                location=Location(outputs),
                code="no-output-for-request",
            )
        )
    if not records and not errors:
        errors.append(
            OutputParseError(
                f"no outputs in {outputs}", location=Location(outputs), code="no-outputs"
            )
        )
    if fmt == "table":
        write_table(results, out)
    else:
        for r in results:
            out.write(r.to_json() + "\n")
    for problem in sorted(errors, key=lambda x: x.location.line if x.location else 0):
        print(f"error: {problem.format()}", file=err)
    unanswered = (
        len(known) - len(seen)
        if request_id is None and records and records[0].request_id is not None
        else 0
    )
    print(summary_line(results, len(seen)), file=err)
    if unanswered > 0:
        print(
            f"note: {unanswered} request(s) of {build.source} have no output in {outputs}", file=err
        )
    if errors or any(r.status != "ok" for r in results):
        return 1
    return 0


@click.command("parse")
@click.argument("build_or_spec", metavar="BUILD_DIR_OR_SPEC", type=click.Path(exists=True))
@click.argument("outputs", metavar="OUTPUTS", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--request",
    "request_id",
    metavar="ID",
    help="The request OUTPUTS answers (plain text), or the one to keep (JSONL).",
)
@click.option(
    "--mode",
    type=click.Choice(MODES),
    default="recover",
    show_default=True,
    help="strict: the whole output must match the grammar; recover: keep every well-formed item.",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(("jsonl", "table")),
    default="jsonl",
    show_default=True,
    help="JSON lines for tools, a table for people.",
)
@click.option(
    "-o",
    "--output",
    "out_file",
    type=click.Path(dir_okay=False, writable=True),
    help="Write results here instead of stdout.",
)
def parse_command(
    build_or_spec: str,
    outputs: str,
    request_id: str | None,
    mode: str,
    fmt: str,
    out_file: str | None,
) -> None:
    """Parse model OUTPUTS item by item with the answer grammar of a build or spec.

    Writes one result per item (request id, item id, index, status, values, span, expected,
    found) and a summary on stderr. Exit status 0 if every item is ok, 1 if not, 2 for usage
    errors.
    """
    if out_file is None:
        code = run_parse(build_or_spec, outputs, request_id, mode, fmt, sys.stdout, sys.stderr)
    else:
        # Written only once parsed: a usage error leaves an existing FILE as it was.
        buffer = io.StringIO()
        code = run_parse(build_or_spec, outputs, request_id, mode, fmt, buffer, sys.stderr)
        if code != 2:
            try:
                with open(out_file, "w", encoding="utf-8", newline="\n") as f:
                    f.write(buffer.getvalue())
            except OSError as e:
                print(f"error: cannot write {out_file}: {e.strerror or e}", file=sys.stderr)
                code = 2
    sys.exit(code)
