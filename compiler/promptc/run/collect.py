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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc.errors import Location, UsageError
from promptc.version import VERSION

if TYPE_CHECKING:
    from promptc.build import BuiltRequest
    from promptc.ir import Task
    from promptc.parse.results import ItemResult

REPAIR_DIR = "repair"
#: A line longer than this is not read (a batch output line is one chat completion).
MAX_LINE_BYTES = 64 * 1024 * 1024


@dataclass
class CollectResult:
    """What :func:`collect` did.

    Attributes:
        build_dir: The build.
        answered: Requests with an answer in the files.
        failed: Request id → why it has no answer (an error line, a status, no line at all).
        unknown: ``custom_id`` values that are not requests of the build.
        statuses: Result rows per parse status.
        not_ok: Items not ok.
        results_path: The results written.
        repair_dir: The repair build, when some items are not ok.
        repair_requests: Requests in the repair build.
        tokens: Prompt and completion tokens of the answers.
    """

    build_dir: Path
    answered: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    not_ok: int = 0
    results_path: Path | None = None
    repair_dir: Path | None = None
    repair_requests: int = 0
    tokens: list[int] = field(default_factory=lambda: [0, 0])

    def summary(self) -> str:
        parts = [f"{self.answered} request(s) answered"]
        if self.failed:
            parts.append(f"{len(self.failed)} without an answer")
        if self.unknown:
            parts.append(f"{len(self.unknown)} line(s) for requests not in the build")
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
            "failed": self.failed,
            "unknown": self.unknown,
            "statuses": self.statuses,
            "not_ok": self.not_ok,
            "results": str(self.results_path) if self.results_path else None,
            "repair_build": str(self.repair_dir) if self.repair_dir else None,
            "repair_requests": self.repair_requests,
            "tokens": {"prompt": self.tokens[0], "completion": self.tokens[1]},
        }


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value or a ``ValueError``) of each non-blank line."""
    try:
        f = path.open("rb")
    except OSError as e:
        raise UsageError(
            f"cannot read {str(path)!r}: {e.strerror or e}",
            location=Location(str(path)),
            code="not-found",
        ) from None
    with f:
        for lineno, raw in enumerate(f, 1):
            if len(raw) > MAX_LINE_BYTES:
                yield lineno, ValueError(f"line longer than {MAX_LINE_BYTES} bytes")
                continue
            if not raw.strip():
                continue
            try:
                yield lineno, json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                yield lineno, ValueError(f"not JSON: {e}")


def _answer(line: Mapping[str, Any]) -> tuple[dict[str, Any] | None, str]:
    """The answer of a Batch API line as ``promptc run`` records it, or why there is none."""
    error = line.get("error")
    response = line.get("response")
    if error:
        if isinstance(error, Mapping):
            return None, f"error {error.get('code')}: {error.get('message')}"
        return None, f"error: {error}"
    if not isinstance(response, Mapping):
        return None, "no response"
    status = response.get("status_code")
    body = response.get("body")
    if status != 200:
        message = body.get("error", body) if isinstance(body, Mapping) else body
        if isinstance(message, Mapping):
            message = message.get("message")
        return None, f"HTTP {status}: {message}"
    try:
        choice = body["choices"][0]  # type: ignore[index]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        return None, "the response has no choices[0].message.content"
    if not isinstance(content, str) or not content:
        return None, "the answer is empty"
    usage = body.get("usage") if isinstance(body, Mapping) else None
    return {
        "output": content,
        "finish_reason": choice.get("finish_reason"),
        "usage": usage if isinstance(usage, Mapping) else None,
        "batch_request_id": line.get("id"),
    }, ""


def _repair_records(build: Path, repair: Path) -> dict[str, dict[str, Any]]:
    """Repair request id → its ``repair`` record, from the repair build that ``collect``
    wrote for ``build`` (and the records it carried from earlier ones); empty when there is
    none, or it is the repair build of another build."""
    from promptc.build import MANIFEST_FILE
    from promptc.text import sha256_text

    try:
        manifest = json.loads((repair / MANIFEST_FILE).read_text(encoding="utf-8"))
        own = sha256_text((build / MANIFEST_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError):
        return {}
    if not isinstance(manifest, Mapping):
        return {}
    of = manifest.get("repair_of")
    records = manifest.get("repair_records")
    if not isinstance(of, Mapping) or of.get("manifest_sha256") != own:
        return {}
    if not isinstance(records, Mapping):
        return {}
    return {str(k): dict(v) for k, v in records.items() if isinstance(v, Mapping)}


def collect(
    build_dir: str | os.PathLike[str],
    output_file: str | os.PathLike[str],
    error_file: str | os.PathLike[str] | None = None,
    *,
    repair_dir: str | os.PathLike[str] | None = None,
    more_files: Sequence[str | os.PathLike[str]] = (),
) -> CollectResult:
    """Turns Batch API output (and error) files into ``outputs.jsonl``, ``results.jsonl`` and
    a repair build of the items that are not ok.

    Lines for the requests of the repair build that an earlier ``collect`` wrote (in
    ``repair_dir``) are repair answers: they are merged into the items' results as
    ``promptc run`` merges its own (:func:`promptc.run.repair.merge_answers`), and the next
    repair build asks what is still not ok, in the next round (``r0002.repair2.3``).

    Args:
        build_dir: The build that was submitted (any target).
        output_file: The batch's output file.
        error_file: The batch's error file, if any.
        repair_dir: Where to write the repair build; default ``BUILD_DIR/repair``.
        more_files: More output or error files (e.g. those of the repair build's batch).

    Raises:
        UsageError: Not a build, a file that cannot be read, a build without its task.
    """
    from promptc.parse.build_input import load_build
    from promptc.parse.output import target_results
    from promptc.parse.results import ItemResult, summarize
    from promptc.run.outputs import OUTPUTS_FILE, RESULTS_FILE, outputs_lock
    from promptc.run.repair import merge_answers, parse_answer, repair_shape, result_line
    from promptc.text import canonical_json, write_atomic

    build = Path(build_dir)
    loaded = load_build(build)
    from promptc.build import read_requests

    requests = read_requests(build)
    known = {r.id for r in requests}
    out = Path(repair_dir) if repair_dir is not None else build / REPAIR_DIR
    repair_known = _repair_records(build, out)
    result = CollectResult(build)
    answers: dict[str, dict[str, Any]] = {}
    repair_answers: dict[str, dict[str, Any]] = {}
    paths = [Path(output_file)] + ([Path(error_file)] if error_file is not None else [])
    paths += [Path(p) for p in more_files]
    for path in paths:
        for lineno, line in _lines(path):
            where = f"{path.name}:{lineno}"
            if isinstance(line, ValueError) or not isinstance(line, Mapping):
                result.unknown.append(
                    f"{where} ({line if isinstance(line, ValueError) else 'not an object'})"
                )
                continue
            rid = line.get("custom_id")
            if isinstance(rid, str) and rid not in known and rid in repair_known:
                answer, _ = _answer(line)
                if answer is not None:
                    repair_answers[rid] = answer
                continue
            if not isinstance(rid, str) or rid not in known:
                result.unknown.append(f"{where} ({rid!r})")
                continue
            answer, why = _answer(line)
            if answer is not None:
                answers[rid] = answer  # a later answer wins over an earlier error line
                result.failed.pop(rid, None)
            elif rid not in answers:
                result.failed[rid] = why
    for r in requests:
        if r.id not in answers and r.id not in result.failed:
            result.failed[r.id] = "no line in the files"
    result.answered = len(answers)

    parsed: dict[str, list[ItemResult]] = {}
    for r in requests:
        shape = loaded.requests[r.id]
        answer = answers.get(r.id)
        if answer is None:
            # Kept as missing, for the items the request is for (a retrieval one's target).
            parsed[r.id] = target_results(
                [
                    ItemResult(
                        r.id, item_id, k, "missing", message=f"no answer: {result.failed[r.id]}"
                    )
                    for k, item_id in enumerate(shape.item_ids, 1)
                ],
                {r.id: shape},
            )
            continue
        parsed[r.id] = parse_answer(loaded.task, shape, answer["output"])
    repairs: dict[str, Mapping[str, Any]] = {}
    for rid, answer in sorted(repair_answers.items()):
        record = repair_known[rid]
        repairs[rid] = record
        shape = repair_shape(loaded.task, record, rid)
        parsed[rid] = parse_answer(loaded.task, shape, answer["output"])
    for answer in [*answers.values(), *repair_answers.values()]:
        usage = answer.get("usage") or {}
        result.tokens[0] += int(usage.get("prompt_tokens") or 0)
        result.tokens[1] += int(usage.get("completion_tokens") or 0)
    merged = merge_answers([r.id for r in requests], parsed, repairs)
    rows = merged.rows
    order = {r.id: k for k, r in enumerate(requests)}
    records = [{"id": rid, "request_sha256": None, **a} for rid, a in answers.items()]
    records += [
        {"id": rid, "request_sha256": None, **a, "repair": dict(repairs[rid])}
        for rid, a in repair_answers.items()
    ]
    records.sort(key=lambda x: (order.get(x["id"], len(order)), x["id"]))
    with outputs_lock(build / OUTPUTS_FILE):
        write_atomic(build / OUTPUTS_FILE, (canonical_json(x) for x in records))
        write_atomic(build / RESULTS_FILE, (result_line(x, n) for x, n in rows))
    result.results_path = build / RESULTS_FILE
    result.statuses = summarize(x for x, _ in rows)
    result.not_ok = sum(1 for x, _ in rows if x.item_id is not None and x.status != "ok")
    if result.not_ok:
        failed: dict[str, list[int]] = {}
        for (rid, pos), x in sorted(
            merged.best.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])
        ):
            if x.status != "ok":
                failed.setdefault(rid, []).append(pos)
        # A request that got no answer is asked again whole, unless a repair answer did.
        answered_again = {
            str(repairs[rid].get("of")) for rid in repairs if rid not in merged.unused
        }
        unanswered = set(result.failed) - answered_again
        attempt = 1 + max((int(r.get("attempt") or 0) for rid, r in repairs.items()), default=0)
        result.repair_requests = write_repair_build(
            build, out, loaded.task, requests, failed, unanswered, attempt, repair_known
        )
        result.repair_dir = out
    return result


def write_repair_build(
    build: Path,
    out: Path,
    task: Task,
    requests: list[BuiltRequest],
    failed: Mapping[str, list[int]],
    unanswered: set[str],
    attempt: int = 1,
    earlier: Mapping[str, Mapping[str, Any]] | None = None,
) -> int:
    """Writes a build of just the failed items into ``out``; returns its request count.

    A request with no answer at all is asked again as it was; another request's failed items
    become smaller requests of the same kind (:func:`promptc.run.repair.repair_requests`,
    round ``attempt``: in round 1 one per request, later one per item). The manifest's
    ``repair_records`` say what each request asks (``earlier`` ones carried along), so that
    ``collect`` can merge their answers.
    The folder has the build's target, its task, the failed items, the grammar files of each
    request size and a manifest covering them, so that ``promptc run``, ``parse`` and
    ``collect`` take it as they take any build.
    """
    from dataclasses import replace

    from promptc.build import (
        BATCH_TARGETS,
        MANIFEST_FILE,
        OPENAI_BATCH_URL,
        VLLM_FIELDS,
        ConstraintCache,
        VllmGrammar,
        dumps,
        grammar_stem,
        request_files,
        structured_outputs,
    )
    from promptc.grammar.answer import build_grammar
    from promptc.run.repair import repair_requests
    from promptc.task_file import ITEMS_FILE, TASK_FILE
    from promptc.text import sha256_text

    manifest = json.loads((build / MANIFEST_FILE).read_text(encoding="utf-8"))
    target = manifest.get("target", "chat")
    by_id = {r.id: r for r in requests}
    partial = {rid: pos for rid, pos in failed.items() if rid not in unanswered}
    planned, refused = repair_requests(task, partial, by_id, attempt)
    asked: list[BuiltRequest] = [p.request for p in planned]
    records: dict[str, dict[str, Any]] = {p.request.id: p.record() for p in planned}
    # Asked again whole: no answer at all, a one-item request, or a prompt that cannot be cut.
    again = [rid for rid in failed if rid in unanswered or rid in refused]
    again += [
        rid for rid in partial if rid not in refused and not any(p.origin == rid for p in planned)
    ]
    for rid in sorted(set(again)):
        whole = replace(by_id[rid], id=f"{rid}.repair{attempt}")
        asked.append(whole)
        records[whole.id] = {
            "attempt": attempt,
            "item_ids": list(whole.item_ids),
            "kind": whole.kind.name,
            "of": rid,
            **({"target_item": whole.target_item} if whole.target_item is not None else {}),
        }
    order = {r.id: k for k, r in enumerate(requests)}
    asked.sort(key=lambda r: (order[r.id.split(".repair")[0]], r.id))

    nominal = task.strategy.batch_size
    files: dict[str, str] = {}
    stems: dict[int, str] = {}
    for n in sorted({len(r.item_ids) for r in asked}):
        kind = asked[0].kind or task.strategy.kind
        stems[n] = grammar_stem(n, nominal)
        files.update(build_grammar(task, n, kind).files(stems[n]))
    form: VllmGrammar = "json_schema" if manifest.get("structured_outputs") == "json" else "gbnf"
    constraints = ConstraintCache(task)
    lines = []
    for r in asked:
        stem = stems[len(r.item_ids)]
        if target in BATCH_TARGETS:
            body: dict[str, Any] = {**dict(r.params), "messages": [dict(m) for m in r.messages]}
            if target == "vllm-batch":
                # The constraint the build's bodies carry (GBNF or JSON Schema), made for
                # this request's own items.
                body["structured_outputs"] = structured_outputs(
                    task, r.kind, r.item_ids, form, constraints
                )
            record: dict[str, Any] = {
                "custom_id": r.id,
                "method": "POST",
                "url": OPENAI_BATCH_URL,
                "body": body,
            }
        else:
            record = {
                "id": r.id,
                "item_ids": list(r.item_ids),
                "kind": r.kind.name,
                "messages": [dict(m) for m in r.messages],
                "params": dict(r.params),
                "grammar": stem,
            }
            if r.target_item is not None:
                record["target_item"] = r.target_item
        lines.append(dumps(record) + "\n")
    wanted = {i for r in asked for i in r.item_ids}
    item_lines = [
        line
        for line in (build / ITEMS_FILE).read_text(encoding="utf-8").splitlines(True)
        if json.loads(line)["id"] in wanted
    ]
    own: dict[str, str] = {
        **request_files(lines),
        TASK_FILE: (build / TASK_FILE).read_text(encoding="utf-8"),
        ITEMS_FILE: "".join(item_lines),
    }
    repair_manifest = {
        "promptc": VERSION,
        "name": manifest.get("name"),
        "target": target,
        "strategy": manifest.get("strategy"),
        "model": manifest.get("model"),
        "repair_of": {
            "build": build.name,
            "manifest_sha256": sha256_text((build / MANIFEST_FILE).read_text(encoding="utf-8")),
        },
        "requests": [
            {
                "id": r.id,
                "item_ids": list(r.item_ids),
                "grammar": stems[len(r.item_ids)],
                **({"target_item": r.target_item} if r.target_item is not None else {}),
            }
            for r in asked
        ],
        "repair_records": {**(earlier or {}), **records},
        **({"structured_outputs": VLLM_FIELDS[form]} if target == "vllm-batch" else {}),
        "counts": {"items": len(wanted), "requests": len(asked)},
        "grammar": {
            "stems": {str(n): s for n, s in sorted(stems.items())},
            "files": {name: sha256_text(text) for name, text in sorted(files.items())},
        },
        "files": {name: sha256_text(text) for name, text in sorted(own.items())},
    }
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        if old.is_file() and (old.name.startswith("requests") or old.name.startswith("answer")):
            old.unlink()
    everything = {
        **own,
        **files,
        MANIFEST_FILE: json.dumps(repair_manifest, sort_keys=True, ensure_ascii=False, indent=2)
        + "\n",
    }
    for name, text in sorted(everything.items()):
        tmp = out / f".{name}.tmp"
        with open(tmp, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        os.replace(tmp, out / name)
    return len(asked)
