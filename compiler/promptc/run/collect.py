"""``promptc collect``: Batch API (or vLLM ``run_batch``) results → per-item results and a
repair build.

A build made with ``--target openai-batch`` or ``--target vllm-batch`` is submitted elsewhere;
what comes back is an output file (and, from OpenAI, an error file) with one line per request::

    {"id": "batch_req_…", "custom_id": "r0001",
     "response": {"status_code": 200, "request_id": "…", "body": {<a chat completion>}},
     "error": null}

:func:`collect` reads them, writes ``outputs.jsonl`` (the answers, as ``promptc run`` writes
them) and ``results.jsonl`` (one result per item) into the build, and writes a **repair
build** — a folder ``promptc run`` can run and the Batch API can take again — holding only
the items that are not ok: each request's failed items as one smaller request
(``r0007.repair1``), or the whole request again when it got no answer at all.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from promptc.build import (
    ITEMS_FILE,
    MANIFEST_FILE,
    TASK_FILE,
    BatchLine,
    BuiltRequest,
    ConstraintCache,
    FolderWriter,
    Target,
    batch_lines,
    constraint,
    each_request,
    find_target,
    grammar_stem,
    grammars,
    prompt_hash,
    read_manifest,
)
from promptc.build.files import not_regular, open_regular, read_lines, read_text
from promptc.build.writer import check_folder, check_inputs
from promptc.errors import Location, PromptcError, UsageError, one_line
from promptc.ir import Task
from promptc.parse.build_input import Build, open_build
from promptc.parse.results import ItemResult, summarize
from promptc.run.bodies import as_sent, request_items
from promptc.run.outputs import (
    OUTPUTS_FILE,
    REPLACED_FILE,
    RESULTS_FILE,
    check_placeable,
    output_line,
    outputs_lock,
    read_outputs_file,
)
from promptc.run.repair import (
    Merged,
    RepairRequest,
    merge_answers,
    missing_results,
    parse_answer,
    recorded_request,
    repair_requests,
    repair_shape,
    valid_record,
)
from promptc.text import describe, json_int, sha256_text, write_atomic
from promptc.version import VERSION

REPAIR_DIR = "repair"
#: A byte order mark, skipped before a file's first line (some tools write one).
BOM = b"\xef\xbb\xbf"
#: The token counts of ``usage`` that collect adds up.
TOKEN_KEYS = ("prompt_tokens", "completion_tokens")
#: A usage count that is no whole number (``{where}``, ``{key}``, ``{value}``). Tested word for
#: word.
USAGE_NOTE = "{where}: usage.{key} is {value}, not a whole number of tokens; not counted"
#: Answers moved aside (``{count}``, ``{name}``, ``{aside}``). Tested word for word.
REPLACED_NOTE = (
    "{count} answer(s) that {name} held or the files repeated are not the ones collected; "
    "moved to {aside} as they were"
)
#: A line longer than this is not read (a batch output line is one chat completion).
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class CollectResult:
    """What :func:`collect` did.

    Attributes:
        build_dir: The build.
        answered: Requests with an answer (in the files, or kept).
        kept: Answers ``outputs.jsonl`` held that the files do not replace, kept.
        failed: Request id → why it has no answer (an error line, a status, no line at all).
        unknown: ``custom_id`` values that are not requests of the build.
        stale: Answers ``promptc run`` recorded for what the repair build asked under their id
            before it was written again asking other items (``file:line ('r0001.repair1')``).
        unreadable: Lines that are no JSON object (a line torn by a cut download).
        duplicates: Second answers for one request (``file:line ('r0001')``); the first is
            its answer, the others are moved to ``outputs.replaced.jsonl``.
        notes: What was left out or moved aside, in words.
        aside: The second answers, as records.
        statuses: Result rows per parse status.
        not_ok: Items not ok.
        results_path: The results written.
        repair_dir: The repair build, when some items are not ok.
        repair_requests: Requests in the repair build.
        tokens: Prompt and completion tokens of the files' answers.
        answered_again: Requests with no answer of their own that a repair asked whole
            and answered (not among ``failed``).
    """

    build_dir: Path
    answered: int = 0
    kept: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)
    unreadable: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    aside: list[dict[str, Any]] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    not_ok: int = 0
    results_path: Path | None = None
    repair_dir: Path | None = None
    repair_requests: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0])
    answered_again: int = 0

    def messages(self, listed: int = 20) -> list[str]:
        """What was skipped, set aside or moved, a line each (``listed`` of each kind)."""
        return [
            *(f"skipped {where}: not a request of this build" for where in self.unknown[:listed]),
            *(f"skipped {where}: {STALE_ANSWER}" for where in self.stale[:listed]),
            *(f"skipped {where}: no JSON object" for where in self.unreadable[:listed]),
            *(
                f"set aside {where}: a second answer for that request"
                for where in self.duplicates[:listed]
            ),
            *self.notes,
        ]

    def summary(self) -> str:
        parts = [f"{self.answered} request(s) answered"]
        if self.kept:
            parts.append(f"{self.kept} answer(s) kept from {OUTPUTS_FILE}")
        if self.answered_again:
            parts.append(f"{self.answered_again} answered by a repair that asked it whole")
        if self.failed:
            parts.append(f"{len(self.failed)} without an answer")
        if self.unknown:
            parts.append(f"{len(self.unknown)} line(s) for requests not in the build")
        if self.stale:
            parts.append(f"{len(self.stale)} answer(s) to an earlier repair build skipped")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} line(s) that are no JSON object")
        if self.duplicates:
            parts.append(f"{len(self.duplicates)} second answer(s) moved aside")
        parts.append(
            f"{sum(self.statuses.values())} results: "
            + ", ".join(f"{c} {s}" for s, c in self.statuses.items() if c or s == "ok")
        )
        if self.repair_dir is not None:
            parts.append(
                f"{self.not_ok} item(s) not ok: repair build of {self.repair_requests} "
                f"request(s) in {self.repair_dir}"
            )
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": str(self.build_dir),
            "answered": self.answered,
            "kept": self.kept,
            "answered_again": self.answered_again,
            "failed": self.failed,
            "unknown": self.unknown,
            "unreadable": self.unreadable,
            "duplicates": self.duplicates,
            "notes": self.notes,
            "statuses": self.statuses,
            "not_ok": self.not_ok,
            "results": str(self.results_path) if self.results_path else None,
            "repair_build": str(self.repair_dir) if self.repair_dir else None,
            "repair_requests": self.repair_requests,
            "tokens": {"prompt": self.tokens[0], "completion": self.tokens[1]},
        }


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value or a ``ValueError``) of each non-blank line, and a
    ``UnicodeWarning`` before a line whose bytes are not all UTF-8: split on ``\\n`` alone, a
    byte order mark at a line's start skipped (files joined with ``cat`` carry one at each
    one's first line)."""
    try:
        f = open_regular(path)
    except OSError as e:
        raise UsageError(
            f"cannot read {str(path)!r}: {e.strerror or e}",
            location=Location(str(path)),
            code="not-found",
        ) from None
    with f:
        lineno = 0
        while raw := f.readline(MAX_LINE_BYTES + 1):
            lineno += 1
            if len(raw) > MAX_LINE_BYTES:
                yield lineno, ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
                while raw and not raw.endswith(b"\n"):  # the rest of that line
                    raw = f.readline(MAX_LINE_BYTES + 1)
                continue
            raw = raw.removeprefix(BOM)
            if not raw.strip():
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                # A byte that is no UTF-8 in an answer: the answer is kept, the byte read as
                # U+FFFD (as run --batch-api's download reads it), and said.
                text = raw.decode("utf-8", "replace")
                yield lineno, UnicodeWarning("bytes that are no UTF-8 read as U+FFFD")
            try:
                yield lineno, json.loads(text, parse_int=json_int)
            except (ValueError, RecursionError) as e:
                yield lineno, ValueError(f"not JSON: {e}")


def _usage(usage: Any, where: str, result: CollectResult) -> dict[str, int] | None:
    """The token counts of an answer's ``usage`` that are whole numbers; any other value
    (``"lots"``, ``"12 tokens"``, ``1e999``) is left out and said, never the answer."""
    if not isinstance(usage, Mapping):
        return None
    kept: dict[str, int] = {}
    for key, value in usage.items():
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            kept[str(key)] = value
        elif key in TOKEN_KEYS:
            result.notes.append(USAGE_NOTE.format(where=where, key=key, value=describe(value)))
    return kept


def _repair_records(build: Path, repair: Path) -> dict[str, dict[str, Any]]:
    """Repair request id → its ``repair`` record, from the repair build that ``collect``
    wrote for ``build`` (and the records it carried from earlier ones); empty when there is
    none, or it is the repair build of another build."""
    try:
        manifest = read_manifest(repair)
        own = sha256_text(read_text(build / MANIFEST_FILE))
    except (OSError, PromptcError):
        return {}
    of = manifest.get("repair_of")
    records = manifest.get("repair_records")
    if not isinstance(of, Mapping) or of.get("manifest_sha256") != own:
        return {}
    if not isinstance(records, Mapping):
        return {}
    return {str(k): dict(v) for k, v in records.items() if isinstance(v, Mapping)}


def _read_answers(
    paths: Sequence[Path],
    chosen: Target,
    known: Mapping[str, Any],
    repair_known: dict[str, Any],
    result: CollectResult,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
    """Every line of the files, read as a batch's output or error line (:meth:`Target.answer`):
    the answers by request id and the repair answers by repair request id (what failed, which
    lines are unknown and which answers are second ones go to ``result``)."""
    answers: dict[str, dict[str, Any]] = {}
    repairs: dict[str, dict[str, Any]] = {}
    built = dict(repair_known)  # what the repair build asks (composed records come later)
    for path in paths:
        for lineno, line in _lines(path):
            where = f"{path.name}:{lineno}"
            if isinstance(line, UnicodeWarning):
                result.notes.append(f"{where}: {line}")
                continue
            if isinstance(line, ValueError) or not isinstance(line, Mapping):
                result.unreadable.append(
                    f"{where} ({line if isinstance(line, ValueError) else 'not an object'})"
                )
                continue
            rid = line.get("custom_id")
            if rid is None and "response" not in line and isinstance(line.get("output"), str):
                # A line of promptc run's outputs.jsonl (the repair build answered with run):
                # its id and answer as run recorded them.
                rid = line.get("id")
            own = line.get("repair")
            if isinstance(rid, str) and rid in built and own is not None and own != built[rid]:
                # promptc run's answer to what an earlier repair build asked under this id:
                # credited to the items the id asks now, it would be a false answer.
                result.stale.append(f"{where} ({rid!r})")
                continue
            if isinstance(rid, str) and rid not in known and rid not in repair_known:
                # A repair a run of the repair build made of its own request (r0003.repair1.
                # repair1): a later attempt at items of the build's request r0003.
                composed = _composed(line.get("repair"), repair_known, known)
                if composed is not None:
                    repair_known[rid] = composed
            if isinstance(rid, str) and rid not in known and rid in repair_known:
                answer, _ = _answer_of(chosen, line)
                if answer is not None:
                    answer["usage"] = _usage(answer.get("usage"), where, result)
                    _keep(repairs, rid, answer, where, result)
                continue
            if not isinstance(rid, str) or rid not in known:
                result.unknown.append(f"{where} ({rid!r})")
                continue
            answer, why = _answer_of(chosen, line)
            if answer is not None:
                answer["usage"] = _usage(answer.get("usage"), where, result)
                _keep(answers, rid, answer, where, result)  # wins over an earlier error line
                result.failed.pop(rid, None)
            elif rid not in answers:
                result.failed[rid] = one_line(why)  # a server's words: shown in a message
    return answers, repairs


def _composed(
    record: object, repair_known: Mapping[str, Mapping[str, Any]], known: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The ``repair`` record of a run's repair of a repair request, made relative to the
    build's request that request repairs (its attempts added to the repair's), or ``None``
    when ``record`` is no such record."""
    if not isinstance(record, Mapping):
        return None
    parent = repair_known.get(str(record.get("of")))
    attempt = record.get("attempt")
    if parent is None or not isinstance(attempt, int) or isinstance(attempt, bool):
        return None
    if attempt < 1 or str(parent.get("of")) not in known:
        return None
    out = {**record, "of": parent["of"], "attempt": int(parent["attempt"]) + attempt}
    out.pop("positions", None)
    return out if valid_record(out, known[str(parent["of"])]) else None


def _answer_of(chosen: Target, line: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The answer of a line: a batch's output or error line (:meth:`Target.answer`), or a
    line of ``promptc run``'s ``outputs.jsonl`` (``id``, ``output``)."""
    if "custom_id" in line or "response" in line or not isinstance(line.get("output"), str):
        return chosen.answer(line)
    if not str(line["output"]).strip():
        return None, "the answer is empty"
    usage = line.get("usage")
    return {
        "output": line["output"],
        "finish_reason": line.get("finish_reason"),
        "usage": usage if isinstance(usage, Mapping) else None,
    }, ""


def _keep(
    answers: dict[str, dict[str, Any]],
    rid: str,
    answer: dict[str, Any],
    where: str,
    result: CollectResult,
) -> None:
    """The first answer of a request is its answer; a second one is kept aside (written to
    ``outputs.replaced.jsonl``) and said, by request id and line."""
    if rid in answers:
        result.duplicates.append(f"{where} ({rid!r})")
        result.aside.append({"id": rid, **answer})
    else:
        answers[rid] = answer


def collect(
    build_dir: str | os.PathLike[str],
    *files: str | os.PathLike[str],
    repair_dir: str | os.PathLike[str] | None = None,
) -> CollectResult:
    """Turns Batch API output (and error) files into ``outputs.jsonl``, ``results.jsonl`` and
    a repair build of the items that are not ok.

    Lines for the requests of the repair build that an earlier ``collect`` wrote (in
    ``repair_dir``) are repair answers: they are merged into the items' results as
    ``promptc run`` merges its own (:func:`promptc.run.repair.merge_answers`), and the next
    repair build asks what is still not ok, in the next round (``r0002.repair2.3``).

    Args:
        build_dir: The build that was submitted (any target).
        files: The batch's output file, its error file if any, and more output or error
            files (e.g. those of the repair build's batch).
        repair_dir: Where to write the repair build; default ``BUILD_DIR/repair``.

    Raises:
        UsageError: Not a build, a file that cannot be read, a build without its task.
    """
    build = Path(build_dir)
    loaded = open_build(build, hash_prompts=True)
    shapes = loaded.shapes  # and prompt hashes, no prompt: _asked reads those it asks again
    chosen = find_target(read_manifest(build)["target"])
    out = Path(repair_dir) if repair_dir is not None else build / REPAIR_DIR
    _check_written(build, out, planted=repair_dir is None)
    asked = {rid: shape.item_ids for rid, shape in shapes.items()}
    repair_known = {  # a record edited by hand is not taken (see valid_record)
        rid: record
        for rid, record in _repair_records(build, out).items()
        if valid_record(record, asked.get(str(record.get("of")), ()))
    }
    result = CollectResult(build)
    paths = [Path(f) for f in files]
    answers, repaired = _read_answers(paths, chosen, asked, repair_known, result)
    for answer in [*answers.values(), *repaired.values()]:
        usage = answer.get("usage") or {}
        result.tokens[0] += usage.get("prompt_tokens", 0)
        result.tokens[1] += usage.get("completion_tokens", 0)
    prompts: Mapping[str, str] = loaded.prompts
    result.kept = _keep_held(build, answers, repaired, prompts, repair_known)
    if repair_known:
        prompts = {**_repair_prompts(out, repaired), **prompts}
    for rid in shapes:
        if rid in answers:
            result.failed.pop(rid, None)
        elif rid not in result.failed:
            result.failed[rid] = "no line in the files"
    result.answered = len(answers)
    repairs = {rid: repair_known[rid] for rid in sorted(repaired)}
    parsed = _parsed(loaded, answers, repaired, repairs, result)
    merged = merge_answers(list(shapes), parsed, repairs, loaded.task.outputs)
    result.statuses = summarize(x for x, _ in merged.rows)
    result.not_ok = sum(1 for x, _ in merged.rows if x.item_id is not None and x.status != "ok")
    _answered_again(result, repairs, merged)
    again: list[BuiltRequest] = []
    if result.not_ok:
        attempt = 1 + max((int(r.get("attempt") or 0) for r in repairs.values()), default=0)
        failed, unanswered = merged.failed(every=True), set(result.failed)
        again, records = _asked(loaded, failed, unanswered, attempt, repair_known, prompts)
        _check_same_asks(out, repair_known, records)  # before anything is written
    order = {rid: k for k, rid in enumerate(shapes)}
    _write_results(build, answers, repaired, repairs, merged, order, prompts, result)
    result.results_path = build / RESULTS_FILE
    if again:
        write_repair_build(build, out, loaded.task, again, records, repair_known)
        result.repair_requests, result.repair_dir = len(again), out
    elif result.not_ok:
        result.notes.append(NOTHING_TO_ASK.format(count=result.not_ok))
    elif (out / MANIFEST_FILE).is_file():
        # Left as it is (it may hold a run's answers), but said: sent again, it would ask
        # items that are answered now.
        result.notes.append(STALE_REPAIR_NOTE.format(folder=out))
    return result


def _answered_again(
    result: CollectResult, repairs: Mapping[str, Mapping[str, Any]], merged: Merged
) -> None:
    """A request that got no answer is asked again whole, unless a repair answer did: then it
    is answered, by its repair (counted, and not among ``failed``)."""
    again = {str(repairs[rid].get("of")) for rid in repairs if rid not in merged.unused}
    for rid in again & result.failed.keys():
        del result.failed[rid]
        result.answered_again += 1


def _repair_prompts(out: Path, repaired: Mapping[str, Any]) -> dict[str, str]:
    """The prompt each repair answer was asked with (the repair build's ``prompt_sha256``): a
    later ``promptc run`` that plans the same repair takes the answer, rather than buying it
    again. None for a repair build whose file was spoilt since."""
    try:
        return {b.request: b.prompt_sha256 for b in batch_lines(out) if b.request in repaired}
    except (OSError, PromptcError):
        return {}


#: Said when items are not ok and no repair request is left to ask of them.
NOTHING_TO_ASK = (
    "{count} item(s) not ok, and nothing left to ask of them: every prompt that could ask them "
    "again was asked (a model answers the same prompt the same way), or the repair rounds "
    "(run.repair.max_attempts) are spent; change the spec's parameters or template and build "
    "again to ask them otherwise"
)

#: Why an answer promptc run recorded for a repair request is not taken.
STALE_ANSWER = "answers what an earlier repair build asked under that id, not the items it asks now"
#: Why collect does not write its repair build over the one in the folder.
REPAIR_CHANGED = (
    "the repair build in {folder} asks {id} of items {old}; this collect would ask it of "
    "items {new}, and an answer to the first would be credited to the second: nothing was "
    "written"
)

#: Said when every item is ok and an earlier round's repair build is still in its folder.
STALE_REPAIR_NOTE = (
    "every item is ok: the repair build in {folder} is an earlier round's, answered now; "
    "do not send it again (remove it, or keep it as the record of that round)"
)


def _check_same_asks(
    out: Path, built: Mapping[str, Mapping[str, Any]], records: Mapping[str, Mapping[str, Any]]
) -> None:
    """Refuses to write a repair build that asks other items under an id the repair build in
    ``out`` uses already: an answer to the old request (a Batch API output line, which says
    only its id) would be credited to the new one's items.

    Raises:
        UsageError: ``repair-build-changed``, naming the request and both sets of items.
    """
    for rid, record in records.items():
        was = built.get(rid)
        if was is not None and was.get("item_ids") != record.get("item_ids"):
            raise UsageError(
                REPAIR_CHANGED.format(
                    folder=str(out),
                    id=rid,
                    old=", ".join(map(str, was.get("item_ids") or ())),
                    new=", ".join(map(str, record.get("item_ids") or ())),
                ),
                location=Location(str(out)),
                hint=f"give collect the answers to that repair build too, or move {out} away",
                code="repair-build-changed",
            )


def _keep_held(
    build: Path,
    answers: dict[str, dict[str, Any]],
    repaired: dict[str, dict[str, Any]],
    prompts: Mapping[str, str],
    repair_known: Mapping[str, Any],
) -> int:
    """Adds to the files' answers those the build's ``outputs.jsonl`` already holds for
    requests the files do not answer (an earlier round's, a run's), so that an answer paid
    for is never dropped for being absent from this call's files; returns how many.

    An answer to a build request is kept while its ``prompt_sha256`` is the request's prompt
    (an answer to another prompt, of a build since rebuilt, is moved aside), a repair answer
    while its ``repair`` record is one the repair build lists, as the files' repair lines are
    taken. A file's answer wins over the held one, which is moved aside.
    """
    kept = 0
    for rid, held in read_outputs_file(build / OUTPUTS_FILE).answers.items():
        if rid in answers or rid in repaired or not held.get("output"):
            continue
        answer = {k: v for k, v in held.items() if k not in ("id", "repair")}
        if rid in prompts and held.get("prompt_sha256") == prompts[rid]:
            answers[rid] = answer
        elif rid in repair_known and held.get("repair") == repair_known[rid]:
            repaired[rid] = answer
        else:
            continue
        kept += 1
    return kept


def _check_written(build: Path, out: Path, planted: bool) -> None:
    """Refuses, before anything is read or written, the places collect writes that cannot
    take its files: a link planted at the build's repair folder (``planted``: not named by
    the user), a repair folder that is the build (``-o BUILD_DIR`` would have the repair
    build written over the build's own files), a folder under the name of ``outputs.jsonl``
    or ``results.jsonl`` (the write at the end would fail, after every file was read)."""
    if planted and out.is_symlink():  # a link planted in the build: not followed
        raise not_regular(out)
    _check_repair_folder(build, out, whole=False)
    check_placeable(build / OUTPUTS_FILE, "outputs file")
    check_placeable(build / RESULTS_FILE, "results file")


def _check_repair_folder(build: Path, out: Path, whole: bool = True) -> None:
    """Refuses a repair folder as ``promptc build -o`` refuses a folder
    (:func:`promptc.build.writer.check_folder`; only its rule of inputs unless ``whole``),
    the build's manifest counting as an input the repair build must not overwrite: ``out``
    may not be the build itself."""
    inputs = [build / MANIFEST_FILE]
    if whole:
        check_folder(out, inputs, writer="the repair build")
    else:
        check_inputs(out, inputs, writer="the repair build")


def _parsed(
    loaded: Build,
    answers: Mapping[str, Mapping[str, Any]],
    repaired: Mapping[str, Mapping[str, Any]],
    repairs: Mapping[str, Mapping[str, Any]],
    result: CollectResult,
) -> dict[str, list[ItemResult]]:
    """Each answered request's results and each repair answer's; a request without an
    answer keeps its items missing (a retrieval one's: its target's)."""
    parsed: dict[str, list[ItemResult]] = {}
    for rid, shape in loaded.shapes.items():
        answer = answers.get(rid)
        if answer is None:
            parsed[rid] = missing_results(shape, f"no answer: {result.failed[rid]}")
            continue
        parsed[rid] = parse_answer(
            loaded.task,
            shape,
            answer["output"],
            answer.get("finish_reason"),
            answer.get("refusal"),
        )
    for rid, answer in sorted(repaired.items()):
        shape = repair_shape(loaded.task, repairs[rid], rid)
        parsed[rid] = parse_answer(
            loaded.task,
            shape,
            answer["output"],
            answer.get("finish_reason"),
            answer.get("refusal"),
        )
    return parsed


def _write_results(
    build: Path,
    answers: Mapping[str, Mapping[str, Any]],
    repaired: Mapping[str, Mapping[str, Any]],
    repairs: Mapping[str, Mapping[str, Any]],
    merged: Merged,
    order: Mapping[str, int],
    prompts: Mapping[str, str],
    result: CollectResult,
) -> None:
    """``outputs.jsonl`` (the answers, as ``promptc run`` writes them, each with the prompt
    hash of the request it answers) and ``results.jsonl``. The answers the build's
    ``outputs.jsonl`` held before that are not among them (replaced by a file's, or to another
    prompt: :func:`_keep_held`) and second answers are appended to ``outputs.replaced.jsonl``
    first, and said."""
    records = [
        {"id": rid, "request_sha256": None, "prompt_sha256": prompts.get(rid), **a}
        for rid, a in answers.items()
    ]
    records += [
        {
            "id": rid,
            "request_sha256": None,
            "prompt_sha256": prompts.get(rid),
            **a,
            "repair": dict(repairs[rid]),
        }
        for rid, a in repaired.items()
    ]
    records.sort(key=lambda x: (order.get(x["id"], len(order)), x["id"]))
    path = build / OUTPUTS_FILE
    with outputs_lock(path):
        found = read_outputs_file(path)
        new = {output_line(x) for x in records}
        moved = [output_line(a) for a in found.answers.values() if output_line(a) not in new]
        moved += [output_line(a) for a in result.aside]
        lines = [line.encode("utf-8") for line in moved] + [line for _, line in found.unplaced]
        if lines:
            # Appended there first: a crash in between duplicates an answer, never loses one.
            with open_regular(path.with_name(REPLACED_FILE), "ab") as f:
                f.writelines(line + b"\n" for line in lines)
            result.notes.append(
                REPLACED_NOTE.format(count=len(lines), name=OUTPUTS_FILE, aside=REPLACED_FILE)
            )
        if records or path.exists():  # no answer at all: no empty outputs.jsonl left behind
            write_atomic(path, (output_line(x) for x in records))
        write_atomic(build / RESULTS_FILE, (merged.line(x, n) for x, n in merged.rows))


def _asked(
    loaded: Build,
    failed: Mapping[str, list[int]],
    unanswered: set[str],
    attempt: int,
    earlier: Mapping[str, Mapping[str, Any]],
    prompts: Mapping[str, str],
) -> tuple[list[BuiltRequest], dict[str, dict[str, Any]]]:
    """The requests of the repair build, in build order, and each one's ``repair`` record.

    A request with no answer at all is asked again as it was. Another request's failed items
    become smaller requests of the same kind (:func:`promptc.run.repair.repair_requests`,
    round ``attempt``: in round 1 one per request, later one per item), as ``promptc run``
    asks them: within ``run.repair.max_attempts`` rounds, and never a prompt asked already
    (``prompts``: the build's requests' and earlier repairs'; the ``earlier`` rounds' made
    again from their records), which a model answers the same way: a
    one-item request, or one whose prompt cannot be cut down, is not asked again.
    """
    task = loaded.task
    # The build's requests these are made from, read again: only they are held whole.
    wanted = failed.keys() | {str(record.get("of")) for record in earlier.values()}
    by_id = {r.id: r for r in each_request(loaded.folder) if r.id in wanted}
    asked: list[BuiltRequest] = []
    records: dict[str, dict[str, Any]] = {}
    partial = {rid: pos for rid, pos in failed.items() if rid not in unanswered}
    if attempt <= task.run.repair_max_attempts:
        done = _prompts_asked(task, by_id, earlier, prompts)
        planned, _ = repair_requests(task, partial, by_id, attempt)
        for p in planned:
            if prompt_hash(p.request.messages) not in done:
                asked.append(p.request)
                records[p.request.id] = p.record()
    for rid in sorted(rid for rid in failed if rid in unanswered):  # no answer at all
        whole = replace(by_id[rid], id=f"{rid}.repair{attempt}")
        asked.append(whole)
        positions = tuple(range(1, len(whole.item_ids) + 1))
        records[whole.id] = RepairRequest(whole, rid, positions, attempt).record()
    order = {rid: k for k, rid in enumerate(loaded.shapes)}
    # By the request each one repairs (its record's "of"), not by its id's prefix: the
    # requests of a repair build, collected as a build, have ids such as r0001.repair1.
    asked.sort(key=lambda r: (order[records[r.id]["of"]], r.id))
    return asked, records


def _prompts_asked(
    task: Task,
    by_id: Mapping[str, BuiltRequest],
    earlier: Mapping[str, Mapping[str, Any]],
    prompts: Mapping[str, str],
) -> set[str]:
    """The prompts asked so far: each build request's (``prompts``), and each earlier repair
    request's (made again from its record, as the repair build made it)."""
    done = set(prompts.values())
    for rid, record in earlier.items():
        asked = recorded_request(task, by_id, rid, record)
        if asked is not None:
            done.add(prompt_hash(asked.messages))
    return done


def write_repair_build(
    build: Path,
    out: Path,
    task: Task,
    asked: list[BuiltRequest],
    records: Mapping[str, Mapping[str, Any]],
    earlier: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Writes a build of the repair requests ``asked`` (:func:`_asked`, each one's ``repair``
    record in ``records``) into ``out``, through the build's own writer
    (:class:`promptc.build.FolderWriter`).

    The folder has the build's target (its bodies carrying the build's form of constraint,
    made for each request's own items), its task, the failed items, the grammar files of each
    request size and a manifest covering them, so that ``promptc run``, ``parse`` and
    ``collect`` take it as they take any build. The manifest's ``repair_records`` say what
    each request asks (``earlier`` ones carried along), so that ``collect`` can merge their
    answers.
    """
    manifest = read_manifest(build)
    chosen = find_target(manifest["target"]).for_model(task.model.max_tokens_field)
    form = chosen.form(manifest)
    kind = asked[0].kind if asked else task.strategy.kind
    nominal = task.strategy.batch_size
    constraints = ConstraintCache() if form is not None else None
    wanted = {i for r in asked for i in r.item_ids}
    _check_repair_folder(build, out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        writer = FolderWriter(out, chosen, form)
        try:
            for k, r in enumerate(asked):
                stem = grammar_stem(len(r.item_ids), nominal)
                made = None
                if constraints is not None and form is not None:
                    items = request_items(task, r, build)
                    made = constraint(task, r.kind, items, form, constraints)
                    r = as_sent(task, r, form)  # its budget fitted to the form it answers in
                target = r.item_ids.index(r.target_item) if r.target_item is not None else None
                line = BatchLine(k, r.id, r.item_ids, target, None, prompt_hash(r.messages), stem)
                writer.add(replace(r, grammar=stem), line, made)
            writer.write(TASK_FILE, read_text(build / TASK_FILE))
            writer.write_lines(
                ITEMS_FILE,
                (
                    text + "\n"
                    for _, text in read_lines(build / ITEMS_FILE)
                    if json.loads(text)["id"] in wanted
                ),
            )
            writer.finish(
                {
                    "promptc": VERSION,
                    "name": manifest.get("name"),
                    "strategy": manifest.get("strategy"),
                    "model": manifest.get("model"),
                    "repair_of": {
                        "build": build.name,
                        "manifest_sha256": sha256_text(read_text(build / MANIFEST_FILE)),
                    },
                    "repair_records": {**(earlier or {}), **records},
                },
                grammars(task, sorted({len(r.item_ids) for r in asked}), kind),
                {"items": len(wanted)},
            )
        except BaseException:
            writer.discard()
            raise
        writer.commit()
    except OSError as e:
        raise UsageError(
            f"cannot write the repair build to {str(out)!r}: {e.strerror or e}",
            location=Location(str(out)),
            code="out-not-writable",
        ) from None
