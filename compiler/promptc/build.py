"""The build: a compiled task → files on disk, byte-identical on every rebuild.

``build(task, out_dir)`` chains the back-end stages — :func:`promptc.select.methods.select`,
:func:`promptc.render.renderer.render` and, when :mod:`promptc.grammar.answer` is available,
:func:`promptc.grammar.answer.build_grammar` — and writes:

=====================  ===================================================================
file                   content
=====================  ===================================================================
requests.jsonl         one request a line: ``id``, ``item_ids``, ``kind``, ``messages``,
                       ``params`` (model parameters), ``grammar`` (the stem of its grammar
                       files); with ``target="openai-batch"``, the OpenAI Batch API form
                       ``{"custom_id", "method", "url", "body"}`` instead
batches.jsonl          one batch a line: ``index``, ``request``, ``item_ids``, ``target``,
                       ``similarities``
answer.lark …          the answer grammar of the nominal request shape and its exports
                       (``.gbnf``, ``.schema.json``, ``.regex``); ``answer-K.*`` for a
                       request holding K items instead
task.json              what parse, run, collect and eval read of the task (its inputs,
                       outputs, answer format, strategy, model): no spec is needed after
                       building (:mod:`promptc.task_file`)
items.jsonl            one item a line: ``id``, ``index``, ``inputs``, ``question``, ``location``
manifest.json          promptc version; sha256 of the spec, the specs it extends, each
                       template used, the data and every file written; the selection; each
                       request's prompt hash; counts and a plain statement of the cost
=====================  ===================================================================

Everything is JSON with sorted keys, UTF-8, ``\\n`` line ends and a final newline; paths
are relative (to the spec's folder), and nothing depends on time, the machine or the
environment, so that a build can live in git and its diffs show real changes only.
API keys and environment values are never read, let alone written.
"""

from __future__ import annotations

import hashlib
import json
import json.encoder
import os
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, is_dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from promptc import ir
from promptc.errors import Location, PromptcError, UsageError
from promptc.select.batches import SelectionResult, batch_size
from promptc.select.methods import select
from promptc.strategies import NAMES, Strategy, find_strategy
from promptc.text import canonical_json, or_list, sha256_text
from promptc.version import VERSION

Target = Literal["chat", "openai-batch", "vllm-batch"]
#: How a ``vllm-batch`` body carries its constraint (see :func:`structured_outputs`).
VllmGrammar = Literal["gbnf", "json_schema"]
VLLM_GRAMMARS: tuple[VllmGrammar, ...] = ("gbnf", "json_schema")
#: The ``structured_outputs`` key of each (what the manifest records).
VLLM_FIELDS: dict[str, str] = {"gbnf": "grammar", "json_schema": "json"}
TARGETS: tuple[Target, ...] = ("chat", "openai-batch", "vllm-batch")
#: The targets whose requests.jsonl is a Batch API input file (``custom_id``, ``body``…).
BATCH_TARGETS: tuple[Target, ...] = ("openai-batch", "vllm-batch")
OPENAI_BATCH_URL = "/v1/chat/completions"
#: The Batch API's limits per input file: a bigger build is written in shards
#: (``requests-0001.jsonl``, …), each within both.
BATCH_MAX_REQUESTS = 50_000
BATCH_MAX_BYTES = 200 * 1024 * 1024
SHARD_NAME = "requests-{:04d}.jsonl"
GRAMMAR_STEM = "answer"
REQUESTS_FILE = "requests.jsonl"
BATCHES_FILE = "batches.jsonl"
MANIFEST_FILE = "manifest.json"
#: The folder of the requests' own grammars (``grammars/<request id>.gbnf`` …), written when
#: the grammar depends on the items (an enum with ``choices_from``).
REQUEST_GRAMMARS = "grammars"
#: The suffixes of a request's own grammar files, as of the shared ones.
GRAMMAR_SUFFIXES = (".lark", ".gbnf", ".schema.json", ".regex", ".parse.regex")
#: A request id that can name a file of ``grammars/`` (promptc's own: ``r0001``).
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_REQUEST_GRAMMAR = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\.(lark|gbnf|schema\.json|regex)$")

#: Files a build owns in its output folder; stale ones from an earlier build are removed.
_OWNED = re.compile(
    r"^(requests\.jsonl|requests-\d{4}\.jsonl|batches\.jsonl|manifest\.json|task\.json|items\.jsonl|"
    + re.escape(GRAMMAR_STEM)
    + r"(-\d+)?\.(lark|gbnf|schema\.json|regex|parse\.regex))$"
)


def is_build_file(name: str) -> bool:
    """Whether a file name is one a build writes (and a rebuild may remove)."""
    return _OWNED.match(name) is not None


def dumps(value: object) -> str:
    """The one JSON spelling of build files: sorted keys, real UTF-8, no trailing spaces."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=_json_default)


def _json_default(value: object) -> object:
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=str)
    if isinstance(value, (tuple, list)):
        return list(value)
    if hasattr(value, "tolist"):  # numpy scalars and arrays from similarity methods
        return value.tolist()
    return str(value)


def prompt_hash(request: ir.Request) -> str:
    """sha256 of the canonical JSON of a request's messages: equal prompts, equal hashes."""
    messages = [{"content": m.content, "role": m.role} for m in request.messages]
    return sha256_text(canonical_json(messages))


def relative(path: str, start: str) -> str:
    """``path`` relative to ``start`` with ``/`` separators, so manifests match on every machine."""
    try:
        rel = os.path.relpath(path, start)
    except ValueError:  # another drive on Windows: nothing relative to say
        rel = os.path.basename(path)
    return rel.replace(os.sep, "/")


def _path_from_build(spec: str, out_dir: str | os.PathLike[str] | None) -> dict[str, str]:
    """Where the spec is seen from the build folder, for tools that start from a build
    (``promptc parse BUILD_DIR``) — only when both share a folder below the file-system root,
    so that the path says nothing about the machine."""
    if out_dir is None:
        return {}
    out = os.path.abspath(out_dir)
    try:
        common = os.path.commonpath([os.path.abspath(spec), out])
    except ValueError:
        return {}
    if os.path.dirname(common) == common:  # only the root in common
        return {}
    return {"path_from_build": relative(spec, out)}


# ---------------------------------------------------------------- the stages, in memory


def task_files(task: ir.Task) -> dict[str, str]:
    """``task.json`` and ``items.jsonl``: what parse, run, collect and eval read of the task,
    so that a build folder needs no spec (see :mod:`promptc.task_file`)."""
    from promptc.task_file import ITEMS_FILE, TASK_FILE, items_text, task_text

    return {TASK_FILE: task_text(task), ITEMS_FILE: items_text(task)}


@dataclass(frozen=True)
class Grammars:
    """The grammar files of a build: stem per item count, and file name → text."""

    stems: Mapping[int, str]
    files: Mapping[str, str]


def grammar_stem(n_items: int, nominal: int) -> str:
    """``answer`` for the nominal item count, ``answer-K`` for a request of K items."""
    return GRAMMAR_STEM if n_items == nominal else f"{GRAMMAR_STEM}-{n_items}"


def grammars(task: ir.Task, counts: Sequence[int]) -> Grammars | None:
    """The grammar files for every item count in ``counts``: the request shapes the build
    has. Only a build without requests gets the nominal batch size's (for its exports) —
    a shape no request has would cost its size for nothing (``batch_size: 1000`` with 3 items).

    Returns ``None`` when :mod:`promptc.grammar.answer` is not part of this installation.
    """
    try:
        from promptc.grammar.answer import build_grammar
    except ImportError:
        return None
    nominal = batch_size(task)
    stems: dict[int, str] = {}
    files: dict[str, str] = {}
    for n in sorted(set(counts) or {nominal}):
        stem = grammar_stem(n, nominal)
        stems[n] = stem
        files.update(build_grammar(task, n, task.strategy.kind).files(stem))
    return Grammars(stems, files)


def request_record(
    request: ir.Request,
    stem: str | None,
    target: Target = "chat",
    constraint: Mapping[str, object] | None = None,
) -> dict[str, object]:
    """One line of ``requests.jsonl``, as data.

    ``constraint`` is a ``vllm-batch`` body's ``structured_outputs`` (see
    :func:`vllm_constraint`).
    """
    messages = [{"role": m.role, "content": m.content} for m in request.messages]
    if target in BATCH_TARGETS:
        body: dict[str, object] = {**dict(request.params), "messages": messages}
        if target == "vllm-batch" and constraint is not None:
            body["structured_outputs"] = dict(constraint)
        return {
            "custom_id": request.id,
            "method": "POST",
            "url": OPENAI_BATCH_URL,
            "body": body,
        }
    record: dict[str, object] = {
        "id": request.id,
        "item_ids": list(request.batch.item_ids),
        "kind": request.kind.name,
        "messages": messages,
        "params": dict(request.params),
        "grammar": stem,
    }
    if request.batch.target is not None:
        record["target_item"] = request.batch.item_ids[request.batch.target]
    return record


def vllm_constraint(
    task: ir.Task,
    request: ir.Request,
    gram: Grammars | None,
    grammar: VllmGrammar = "gbnf",
) -> dict[str, object] | None:
    """The ``structured_outputs`` of a ``vllm-batch`` body (see :func:`structured_outputs`);
    ``None`` when the build has no grammar."""
    if gram is None:
        return None
    return structured_outputs(task, request.kind, request.batch.item_ids, grammar)


class ConstraintCache:
    """What :func:`structured_outputs` makes once per build: the grammar of each (kind, item
    count) and the items by id."""

    def __init__(self, task: ir.Task) -> None:
        self.grammars: dict[tuple[Strategy, int], Any] = {}
        self.items = {it.id: it for it in task.items}


def structured_outputs(
    task: ir.Task,
    kind: Strategy | None,
    item_ids: Sequence[str],
    grammar: VllmGrammar = "gbnf",
    cache: ConstraintCache | None = None,
) -> dict[str, object]:
    """The ``structured_outputs`` of a ``vllm-batch`` body: vLLM's own field for constrained
    decoding (``StructuredOutputsParams``), holding exactly one constraint: ``{"grammar":
    GBNF}`` or, with ``grammar="json_schema"``, ``{"json": SCHEMA}`` (the model then answers
    in the grammar's JSON form, which the parser reads as well). Either is the request's own:
    an Auto-Demo request's questions pinned, and each item's options where an enum's choices
    are the item's (``choices_from``), as ``promptc run`` sends them to llama.cpp.

    ``cache`` keeps what is the same for every request of a build.
    """
    from promptc import markers
    from promptc.grammar.answer import build_grammar, item_choices

    memo = cache if cache is not None else ConstraintCache(task)
    k = kind or task.strategy.kind
    n = len(item_ids)
    if (k, n) not in memo.grammars:
        memo.grammars[(k, n)] = build_grammar(task, n, k)
    g = memo.grammars[(k, n)]
    questions: list[str] = []
    if k.repeats_questions:
        questions = [markers.question_text(task.inputs, memo.items[i].inputs) for i in item_ids]
    choices = item_choices(task, item_ids)
    pinned = k.repeats_questions or choices is not None
    if grammar == "json_schema":
        return {"json": g.json_schema_for(questions, choices) if pinned else g.json_schema}
    return {"grammar": g.gbnf_for(questions, choices) if pinned else g.gbnf}


class RequestGrammars:
    """The requests' own grammars of a build whose grammar depends on the items (an enum
    with ``choices_from``): per request, every export with exactly its items' choices
    (:meth:`promptc.grammar.answer.AnswerGrammar.for_items`), an Auto-Demo request's
    questions pinned in ``.gbnf`` and ``.regex``. Made one request at a time, so memory
    does not grow with the build."""

    def __init__(self, task: ir.Task) -> None:
        self.task = task
        self.shared: dict[tuple[int, Strategy], Any] = {}

    @staticmethod
    def needed(task: ir.Task) -> bool:
        """Whether ``task``'s grammar depends on its items."""
        return any(o.choices_from for o in task.outputs)

    def files(self, request: ir.Request) -> dict[str, str]:
        """Suffix → text of ``request``'s own grammar files."""
        from promptc import markers
        from promptc.grammar.answer import build_grammar, own_choices

        task = self.task
        # By position, as the renderer reads them: no lookup that grows with the items.
        items = [task.items[p] for p in request.batch.item_indices]
        key = (len(items), request.kind)
        if key not in self.shared:
            self.shared[key] = build_grammar(task, len(items), request.kind)
        fields = [o for o in task.outputs if o.choices_from]
        g = self.shared[key].for_items([own_choices(fields, it) for it in items])
        questions: list[str] = []
        if request.kind.repeats_questions:
            questions = [markers.question_text(task.inputs, it.inputs) for it in items]
        files: dict[str, str] = g.request_files(questions)
        return files


def request_grammar_name(request_id: str, suffix: str) -> str:
    """``grammars/<request id><suffix>``: where a request's own grammar file is in a build."""
    if not SAFE_REQUEST_ID.fullmatch(request_id):
        raise UsageError(
            f"request id {request_id!r} cannot name a file; expected letters, digits, '.', "
            "'_' and '-'",
            code="bad-request-id",
        )
    return f"{REQUEST_GRAMMARS}/{request_id}{suffix}"


def _place(files: dict[str, str], tmp: Any, name: str, text: str) -> None:
    """A whole file of the build: written to its temporary file (``files`` gets the path), or
    kept as text in ``files`` when the build is made in memory."""
    path = tmp(name)
    if path is not None:
        with open(path, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
        files[name] = str(path)
    else:
        files[name] = text


class _ItemsInOrder:
    """``items.jsonl`` written during the render pass while the requests take the items in
    data order, one request after another (sequential selection): each item is then read
    from the data file once, not once more for this file. At the first request out of that
    order the file is given up, and :func:`_write_task_files` writes it in a pass of its own."""

    def __init__(self, task: ir.Task, path: Path | None) -> None:
        self.task = task
        self.sink: _Sink | None = _Sink(path)
        self.next = 0
        self.paths: dict[str, str] = {}

    def add(self, batch: ir.Batch) -> None:
        from promptc.task_file import item_line

        if self.sink is None:
            return
        items = self.task.items
        for i in batch.item_indices:
            if i != self.next:
                self.give_up()
                return
            self.sink.write(item_line(self.task, items[i], self.paths))
            self.next += 1

    def give_up(self) -> None:
        if self.sink is not None:
            self.sink.close()
            if self.sink.path is not None:
                self.sink.path.unlink(missing_ok=True)
            self.sink = None

    def finished(self) -> _Sink | None:
        """The complete file's sink, or ``None`` if it was given up or misses items."""
        if self.sink is not None and self.next != len(self.task.items):
            self.give_up()
        if self.sink is not None:
            self.sink.close()
        return self.sink


def _write_task_files(
    task: ir.Task,
    files: dict[str, str],
    hashes: dict[str, str],
    tmp: Any,
    items_sink: _Sink | None = None,
) -> None:
    """``task.json`` and ``items.jsonl`` (:mod:`promptc.task_file`), the items streamed one
    line at a time: the build holds its own task, in memory that does not grow with items.
    ``items_sink`` is ``items.jsonl`` already written in the render pass, if it was."""
    from promptc.task_file import ITEMS_FILE, TASK_FILE, item_lines, task_text

    text = task_text(task)
    _place(files, tmp, TASK_FILE, text)
    hashes[TASK_FILE] = sha256_text(text)
    sink = items_sink
    if sink is None:
        sink = _Sink(tmp(ITEMS_FILE))
        try:
            for line in item_lines(task):
                sink.write(line)
        finally:
            sink.close()
    files[ITEMS_FILE] = sink.placed()
    hashes[ITEMS_FILE] = sink.hexdigest()


def _shard(files: dict[str, str], hashes: dict[str, str], tmp: Any) -> None:
    """Splits ``requests.jsonl`` (a temporary file or text in ``files``) into shards within
    the Batch API's limits, in place of it."""
    source = files.pop(REQUESTS_FILE)
    hashes.pop(REQUESTS_FILE)
    path = Path(source) if tmp(REQUESTS_FILE) is not None else None
    lines: Iterator[str]
    if path is not None:
        handle = open(path, encoding="utf-8", newline="\n")  # noqa: SIM115 - closed below
        lines = iter(handle)
    else:
        handle = None
        lines = iter(source.splitlines(True))
    try:
        shard: list[str] = []
        size = 0

        def flush() -> None:
            name = SHARD_NAME.format(sum(1 for n in files if n.startswith("requests-")) + 1)
            text = "".join(shard)
            _place(files, tmp, name, text)
            hashes[name] = sha256_text(text)

        for line in lines:
            n = len(line.encode("utf-8"))
            if shard and (len(shard) >= BATCH_MAX_REQUESTS or size + n > BATCH_MAX_BYTES):
                flush()
                shard, size = [], 0
            shard.append(line)
            size += n
        if shard:
            flush()
    finally:
        if handle is not None:
            handle.close()
            os.unlink(path)  # type: ignore[arg-type]


def request_files(lines: Sequence[str]) -> dict[str, str]:
    """``requests.jsonl``, or — past the Batch API's limits (:data:`BATCH_MAX_REQUESTS`
    lines or :data:`BATCH_MAX_BYTES` bytes per file) — shards ``requests-0001.jsonl``, … each
    within both, in request order."""
    total = sum(len(x.encode("utf-8")) for x in lines)
    if len(lines) <= BATCH_MAX_REQUESTS and total <= BATCH_MAX_BYTES:
        return {REQUESTS_FILE: "".join(lines)}
    out: dict[str, str] = {}
    shard: list[str] = []
    size = 0
    for line in lines:
        n = len(line.encode("utf-8"))
        if shard and (len(shard) >= BATCH_MAX_REQUESTS or size + n > BATCH_MAX_BYTES):
            out[SHARD_NAME.format(len(out) + 1)] = "".join(shard)
            shard, size = [], 0
        shard.append(line)
        size += n
    if shard:
        out[SHARD_NAME.format(len(out) + 1)] = "".join(shard)
    return out


def batch_record(batch: ir.Batch, request_id: str) -> dict[str, object]:
    """One line of ``batches.jsonl``, as data."""
    return {
        "index": batch.index,
        "request": request_id,
        "item_ids": list(batch.item_ids),
        "target": batch.target,
        "similarities": list(batch.similarities) if batch.similarities is not None else None,
    }


def jsonl(records: Sequence[Mapping[str, object]]) -> str:
    return "".join(dumps(r) + "\n" for r in records)


# ---------------------------------------------------------------- encoding, once per request

_enc: Callable[[str], str] = json.encoder.encode_basestring


def _messages_json(messages: Sequence[ir.Message]) -> tuple[str, str]:
    """The messages as :func:`dumps` writes them, and in the compact canonical form of
    :func:`prompt_hash` — each content string escaped once, for both."""
    spaced = []
    compact = []
    for m in messages:
        content = _enc(m.content)
        role = _enc(m.role)
        spaced.append('{"content": ' + content + ', "role": ' + role + "}")
        compact.append('{"content":' + content + ',"role":' + role + "}")
    return "[" + ", ".join(spaced) + "]", "[" + ",".join(compact) + "]"


def _object(fields: Mapping[str, str]) -> str:
    """A JSON object from already-encoded values, keys sorted: what :func:`dumps` writes."""
    return "{" + ", ".join(_enc(k) + ": " + fields[k] for k in sorted(fields)) + "}"


def _ids_json(ids: Sequence[str]) -> str:
    return "[" + ", ".join(_enc(i) for i in ids) + "]"


def encode_request(
    request: ir.Request, stem: str | None, target: Target = "chat"
) -> tuple[str, str]:
    """One line of ``requests.jsonl`` (no line end) and the request's prompt hash.

    The line is byte for byte ``dumps(request_record(request, stem, target))``, and the hash
    :func:`prompt_hash`'s; both come from one escaping of each message's text.
    """
    spaced, compact = _messages_json(request.messages)
    digest = hashlib.sha256(compact.encode("utf-8")).hexdigest()
    params = {k: dumps(v) for k, v in request.params.items()}
    if target == "openai-batch":
        body = _object({**params, "messages": spaced})
        line = _object(
            {
                "body": body,
                "custom_id": _enc(request.id),
                "method": '"POST"',
                "url": _enc(OPENAI_BATCH_URL),
            }
        )
        return line, digest
    fields = {
        "grammar": dumps(stem),
        "id": _enc(request.id),
        "item_ids": _ids_json(request.batch.item_ids),
        "kind": _enc(request.kind.name),
        "messages": spaced,
        "params": _object(params),
    }
    if request.batch.target is not None:
        fields["target_item"] = _enc(request.batch.item_ids[request.batch.target])
    return _object(fields), digest


def _manifest_entry(
    request: ir.Request,
    stem: str | None,
    digest: str,
    own: Mapping[str, str] | None = None,
) -> str:
    """One request of the manifest's ``requests`` list, as ``json.dumps(indent=2)`` writes it
    at that depth (the manifest is written around a stream of these). ``own``: the request's
    own grammar files (``grammars/…``) → sha256, listed as ``grammar_files``."""
    ids = ",\n".join("        " + _enc(i) for i in request.batch.item_ids)
    listed = ""
    if own:
        listed = (
            '\n      "grammar_files": {\n'
            + ",\n".join(f"        {_enc(k)}: {_enc(v)}" for k, v in sorted(own.items()))
            + "\n      },"
        )
    return (
        '    {\n      "grammar": '
        + dumps(stem)
        + ","
        + listed
        + '\n      "id": '
        + _enc(request.id)
        + ',\n      "item_ids": '
        + ("[\n" + ids + "\n      ]" if ids else "[]")
        + ',\n      "prompt_sha256": "'
        + digest
        + '"'
        # The item a retrieval request is for: the Batch API form has no room for it.
        + (
            ',\n      "target_item": ' + _enc(request.batch.item_ids[request.batch.target])
            if request.batch.target is not None
            else ""
        )
        + "\n    }"
    )


#: Bytes of a file's text gathered before they are written (one write per this many).
BUFFER_BYTES = 1 << 20


class _Sink:
    """One output file being produced: its text goes to a temporary file (or, for
    :func:`assemble`, to memory) and into its sha256, from the same bytes."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.sha = hashlib.sha256()
        self.parts: list[str] | None = None if path is not None else []
        self.file: Any = None
        if path is not None:
            self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.pending: list[bytes] = []
        self.size = 0

    def write(self, text: str) -> None:
        data = text.encode("utf-8")
        if self.parts is not None:
            self.parts.append(text)
        self.pending.append(data)
        self.size += len(data)
        if self.size >= BUFFER_BYTES:
            self.flush()

    def flush(self) -> None:
        """The bytes gathered go into the sha256 (one update per buffer, not per line: the
        same digest) and to the file."""
        if self.pending:
            chunk = b"".join(self.pending)
            self.sha.update(chunk)
            if self.file is not None:
                self.file.write(chunk)
            self.pending.clear()
            self.size = 0

    def close(self) -> None:
        self.flush()
        if self.file is not None:
            self.file.close()

    def text(self) -> str:
        assert self.parts is not None
        return "".join(self.parts)

    def placed(self) -> str:
        """What ``files`` holds for it: the temporary file's path, or the text in memory."""
        return str(self.path) if self.path is not None else self.text()

    def hexdigest(self) -> str:
        self.flush()
        return self.sha.hexdigest()


_REQUESTS_PLACEHOLDER = "\u0000promptc: the requests of the build\u0000"


def _produce(
    task: ir.Task,
    target: Target,
    out_dir: str | os.PathLike[str] | None,
    folder: Path | None,
    vllm_grammar: VllmGrammar = "gbnf",
) -> tuple[dict[str, str], dict[str, str], SelectionResult, dict[str, object], list[ir.Request]]:
    """Selects, renders, and writes every file of a build as it is produced.

    With ``folder``, the files go to temporary files there (``.NAME.tmp``), and nothing is
    kept in memory per request; without, into memory. Returns the temporary path (or the
    text) of every file by name, the sha256 of every file by name, the selection, the
    manifest as data (``requests`` left out when streamed) and the requests (only in memory).
    """
    from promptc.render.renderer import Renderer

    _check_target(target, vllm_grammar)
    selection = select(task)
    renderer = Renderer(task)
    nominal = batch_size(task)
    has_grammar = _grammar_available()

    def tmp(name: str) -> Path | None:
        return folder / f".{name}.tmp" if folder is not None else None

    from promptc.task_file import ITEMS_FILE

    items_in_order = _ItemsInOrder(task, tmp(ITEMS_FILE))
    requests_sink = _Sink(tmp(REQUESTS_FILE))
    batches_sink = _Sink(tmp(BATCHES_FILE))
    entries_sink = _Sink(tmp(MANIFEST_FILE + ".requests"))
    sinks = [requests_sink, batches_sink, entries_sink]
    kept: list[ir.Request] = []
    files_in_memory: dict[str, str] = {}
    counts: set[int] = set()
    n_requests = n_messages = request_bytes = 0
    stems: dict[int, str | None] = {}
    vllm_cache = ConstraintCache(task) if target == "vllm-batch" and has_grammar else None
    own_grammars = RequestGrammars(task) if has_grammar and RequestGrammars.needed(task) else None
    own_folder = folder / f".{REQUEST_GRAMMARS}.tmp" if folder is not None else None
    if own_grammars is not None and own_folder is not None:
        own_folder.mkdir()
    try:
        for r in renderer.iter_render(selection):
            n = len(r.batch.item_ids)
            stem = stems.get(n, "")
            if stem == "":
                stem = stems[n] = grammar_stem(n, nominal) if has_grammar else None
                counts.add(n)
            own: dict[str, str] | None = None
            own_constraint: dict[str, object] | None = None
            if own_grammars is not None:
                # The request's exact grammar in every form, written as it is made.
                own = {}
                for suffix, text in own_grammars.files(r).items():
                    name = request_grammar_name(r.id, suffix)
                    own[name] = sha256_text(text)
                    if own_folder is not None:
                        with open(
                            own_folder / name.split("/", 1)[1], "w", encoding="utf-8", newline="\n"
                        ) as f:
                            f.write(text)
                    else:
                        files_in_memory[name] = text
                    if suffix == ".gbnf" and vllm_grammar == "gbnf":
                        own_constraint = {"grammar": text}
                    elif suffix == ".schema.json" and vllm_grammar == "json_schema":
                        own_constraint = {"json": json.loads(text)}
            if target == "vllm-batch":
                # Each body carries its own grammar (vLLM's structured_outputs): with requests'
                # own grammars, the very text of grammars/<id>.gbnf or .schema.json.
                constraint = (
                    own_constraint
                    if own_constraint is not None
                    else structured_outputs(
                        task, r.kind, r.batch.item_ids, vllm_grammar, vllm_cache
                    )
                    if vllm_cache is not None
                    else None
                )
                line = dumps(request_record(r, stem, target, constraint))
                digest = prompt_hash(r)
            else:
                line, digest = encode_request(r, stem, target)
            requests_sink.write(line + "\n")
            request_bytes += len(line.encode("utf-8")) + 1
            batches_sink.write(dumps(batch_record(r.batch, r.id)) + "\n")
            entries_sink.write(
                ("" if n_requests == 0 else ",\n") + _manifest_entry(r, stem, digest, own)
            )
            items_in_order.add(r.batch)
            n_requests += 1
            n_messages += len(r.messages)
            if folder is None:
                kept.append(r)
        gram = grammars(task, sorted(counts)) if has_grammar else None
        items_sink = items_in_order.finished()
    except BaseException:
        items_in_order.give_up()
        raise
    finally:
        for sink in sinks:
            sink.close()

    files: dict[str, str] = dict(files_in_memory)
    if own_grammars is not None and own_folder is not None:
        # The folder of the requests' own grammars, put in place whole by build().
        files[REQUEST_GRAMMARS + "/"] = str(own_folder)
    hashes: dict[str, str] = {}
    for name, sink in ((REQUESTS_FILE, requests_sink), (BATCHES_FILE, batches_sink)):
        files[name] = sink.placed()
        hashes[name] = sink.hexdigest()
    if gram is not None:
        for name, text in gram.files.items():
            _place(files, tmp, name, text)

    _write_task_files(task, files, hashes, tmp, items_sink)
    if target in BATCH_TARGETS and (
        n_requests > BATCH_MAX_REQUESTS or request_bytes > BATCH_MAX_BYTES
    ):
        _shard(files, hashes, tmp)

    spec_dir = task.spec_dir
    templates = [
        {
            "name": t.name,
            "origin": t.origin,
            **({"path": relative(t.file, spec_dir)} if t.file is not None else {}),
            "sha256": t.sha256,
        }
        for t in sorted(renderer.loader.used.values(), key=lambda t: t.name)
    ]
    data = task.data
    manifest: dict[str, object] = {
        "promptc": VERSION,
        "name": task.name,
        "target": target,
        "strategy": {"kind": task.strategy.kind.name, "batch_size": nominal},
        "selection": dict(selection.info),
        "model": task.model.request_params(),
        "spec": {
            "path": relative(task.spec.path, spec_dir),
            "sha256": task.spec.sha256,
            **_path_from_build(task.spec.path, out_dir),
        },
        "extends": [{"path": relative(s.path, spec_dir), "sha256": s.sha256} for s in task.extends],
        "data": None
        if data is None
        else {"path": data.path, "format": data.format, "sha256": data.sha256},
        "templates": templates,
        "grammar": None
        if gram is None
        else {
            "stems": {str(n): s for n, s in sorted(gram.stems.items())},
            "files": {name: sha256_text(text) for name, text in sorted(gram.files.items())},
            # Only where the grammar depends on the items, so other builds stay as they were.
            **(
                {
                    "per_request": {
                        "folder": REQUEST_GRAMMARS,
                        "suffixes": list(GRAMMAR_SUFFIXES),
                        "note": "the shared answer files admit the union of every item's "
                        "choices; grammars/<request id>.* admit exactly that request's; "
                        "each request lists its own with their sha256 (grammar_files)",
                    }
                }
                if own_grammars is not None
                else {}
            ),
        },
        "requests": _REQUESTS_PLACEHOLDER,
        "counts": {
            "items": len(task.items),
            "requests": n_requests,
            "demos": len(task.demos),
            "messages": n_messages,
        },
        "cost": selection.info.get("cost"),
        "files": dict(sorted(hashes.items())),
    }
    if target == "vllm-batch" and gram is not None:
        # Which constraint each body carries: what collect's repair build writes again.
        manifest["structured_outputs"] = VLLM_FIELDS[vllm_grammar]
    text = (
        json.dumps(manifest, sort_keys=True, ensure_ascii=False, indent=2, default=_json_default)
        + "\n"
    )
    head, tail = text.split(json.dumps(_REQUESTS_PLACEHOLDER), 1)
    opening, closing = ("[\n", "\n  ]") if n_requests else ("[]", "")
    if folder is None:
        files[MANIFEST_FILE] = head + opening + entries_sink.text() + closing + tail
    else:
        assert entries_sink.path is not None
        path = folder / f".{MANIFEST_FILE}.tmp"
        with open(path, "wb") as out, open(entries_sink.path, "rb") as entries:
            out.write((head + opening).encode("utf-8"))
            while chunk := entries.read(1 << 20):
                out.write(chunk)
            out.write((closing + tail).encode("utf-8"))
        os.unlink(entries_sink.path)
        files[MANIFEST_FILE] = str(path)
    hashes[MANIFEST_FILE] = ""
    return files, hashes, selection, manifest, kept


def _check_target(target: str, vllm_grammar: str) -> None:
    if target not in TARGETS:
        raise UsageError(
            f"unknown build target {target!r}; expected " + " or ".join(map(repr, TARGETS)),
            code="unknown-target",
        )
    if vllm_grammar not in VLLM_GRAMMARS:
        raise UsageError(
            f"unknown vllm-batch grammar {vllm_grammar!r}; expected gbnf or json-schema",
            code="bad-grammar-mode",
        )


def iter_lines(
    task: ir.Task,
    file: str = REQUESTS_FILE,
    *,
    target: Target = "chat",
    vllm_grammar: VllmGrammar = "gbnf",
) -> Iterator[str]:
    """The lines of ``requests.jsonl`` or ``batches.jsonl`` (each with its ``\\n``), as
    :func:`build` writes them, one request at a time: ``promptc build --emit`` prints a
    million requests without holding them.

    Raises:
        UsageError: An unknown target or file name.
        PromptcError: A stage failed.
    """
    if target not in TARGETS or file not in (REQUESTS_FILE, BATCHES_FILE):
        raise UsageError(
            f"cannot emit {file!r} for target {target!r}; expected {REQUESTS_FILE} or "
            f"{BATCHES_FILE} and " + " or ".join(map(repr, TARGETS)),
            code="unknown-target",
        )
    _check_target(target, vllm_grammar)
    nominal = batch_size(task)
    has_grammar = _grammar_available()
    cache = ConstraintCache(task) if target == "vllm-batch" and has_grammar else None
    for r in iter_requests(task):
        if file == BATCHES_FILE:
            yield dumps(batch_record(r.batch, r.id)) + "\n"
            continue
        stem = grammar_stem(len(r.batch.item_ids), nominal) if has_grammar else None
        if target == "vllm-batch":
            constraint = (
                structured_outputs(task, r.kind, r.batch.item_ids, vllm_grammar, cache)
                if cache is not None
                else None
            )
            yield dumps(request_record(r, stem, target, constraint)) + "\n"
            continue
        yield encode_request(r, stem, target)[0] + "\n"


def _grammar_available() -> bool:
    try:
        import promptc.grammar.answer  # noqa: F401
    except ImportError:
        return False
    return True


@dataclass(frozen=True)
class BuildResult:
    """What a build produced.

    Attributes:
        out_dir: The folder written (``None`` for :func:`assemble`, which writes nothing).
        files: File name → text, every file of the build (manifest included). For
            :func:`build`, a mapping that reads each file back from ``out_dir`` when asked.
        requests: The rendered requests, in order. For :func:`build`, a sequence that
            renders each request again when read (nothing of a million requests is kept).
        selection: The batches and selection info.
        manifest: The manifest, as data. For :func:`build`, its ``requests`` list is read
            back from ``manifest.json`` when asked for.
    """

    out_dir: Path | None
    files: Mapping[str, str]
    requests: Sequence[ir.Request]
    selection: SelectionResult
    manifest: Mapping[str, object]

    @property
    def summary(self) -> str:
        """One line for people: what was built, and what it costs."""
        cost = self.manifest.get("cost")
        strategy = self.manifest.get("strategy")
        kind = strategy.get("kind") if isinstance(strategy, Mapping) else None
        where = f" → {self.out_dir}" if self.out_dir is not None else ""
        return f"built {self.manifest.get('name')} ({kind}): {cost}{where}"


def assemble(
    task: ir.Task,
    *,
    target: Target = "chat",
    out_dir: str | os.PathLike[str] | None = None,
    vllm_grammar: VllmGrammar = "gbnf",
) -> BuildResult:
    """Every file of a build, in memory: select → render → grammar → manifest.

    The same bytes :func:`build` writes (both run one producer); use it for small builds,
    ``--emit`` and tests. :func:`build` streams to disk instead.

    Raises:
        PromptcError: A stage failed (a template error at its file:line, a selection error…).
    """
    files, _, selection, manifest, requests = _produce(task, target, out_dir, None, vllm_grammar)
    data = json.loads(files[MANIFEST_FILE])
    manifest["requests"] = data["requests"]
    return BuildResult(None, files, tuple(requests), selection, manifest)


def iter_requests(task: ir.Task, selection: SelectionResult | None = None) -> Iterator[ir.Request]:
    """The rendered requests of a task, one at a time (nothing kept): for callers that need
    every request without holding them all, as ``promptc build --emit requests`` does."""
    from promptc.render.renderer import Renderer

    return Renderer(task).iter_render(selection if selection is not None else select(task))


class _Rendered(Sequence[ir.Request]):
    """A build's requests, rendered again when read."""

    def __init__(self, task: ir.Task, selection: SelectionResult) -> None:
        self.task = task
        self.selection = selection

    def __len__(self) -> int:
        return len(self.selection.batches)

    def __getitem__(self, index: Any) -> Any:
        from promptc.render.renderer import Renderer

        batches = self.selection.batches
        if isinstance(index, slice):
            picked = [batches[i] for i in range(*index.indices(len(batches)))]
        else:
            picked = [batches[index]]
        # The id width depends on the request count: render within the whole selection.
        one = SelectionResult(_Picked(picked, len(batches)), self.selection.info)
        out = tuple(Renderer(self.task).iter_render(one))
        return out if isinstance(index, slice) else out[0]

    def __iter__(self) -> Iterator[ir.Request]:
        return iter_requests(self.task, self.selection)


class _Picked(Sequence[ir.Batch]):
    """Some batches of a selection that still count as many as the whole (for id widths)."""

    def __init__(self, picked: list[ir.Batch], total: int) -> None:
        self.picked = picked
        self.total = total

    def __len__(self) -> int:
        return self.total

    def __getitem__(self, index: Any) -> Any:
        return self.picked[index]

    def __iter__(self) -> Iterator[ir.Batch]:
        return iter(self.picked)


class _FolderFiles(Mapping[str, str]):
    """The files of a build folder by name, each read when asked for."""

    def __init__(self, folder: Path, names: Sequence[str]) -> None:
        self.folder = folder
        self.names = sorted(names)

    def __getitem__(self, name: str) -> str:
        if name not in self.names:
            raise KeyError(name)
        return (self.folder / name).read_text(encoding="utf-8")

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)


class _ManifestView(Mapping[str, object]):
    """A written build's manifest: all but ``requests`` in memory, that read back on use."""

    def __init__(self, data: Mapping[str, object], path: Path) -> None:
        self.data = {k: v for k, v in data.items() if k != "requests"}
        self.path = path

    def __getitem__(self, key: str) -> object:
        if key == "requests":
            with open(self.path, encoding="utf-8") as f:
                return json.load(f)["requests"]
        return self.data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted([*self.data, "requests"]))

    def __len__(self) -> int:
        return len(self.data) + 1


def _remove_request_grammars(out: Path, folder: str = REQUEST_GRAMMARS) -> None:
    """Removes a build's folder of request grammars (its files, then the folder if that
    leaves it empty; files a user put there stay)."""
    where = out / folder
    if not where.is_dir() or where.is_symlink():
        return
    for old in where.iterdir():
        if _REQUEST_GRAMMAR.match(old.name) and old.is_file() and not old.is_symlink():
            old.unlink()
    try:
        where.rmdir()
    except OSError:
        pass  # not empty: the user's files stay, and the new folder cannot replace it


def _remove_temporary(out: Path) -> None:
    """Removes the temporary files a build writes before renaming them into place."""
    _remove_request_grammars(out, f".{REQUEST_GRAMMARS}.tmp")
    for old in out.iterdir():
        name = old.name
        if name.startswith(".") and name.endswith(".tmp"):
            real = name[1:-4].removesuffix(".requests")
            if _OWNED.match(real) and old.is_file():
                old.unlink(missing_ok=True)


def build(
    task: ir.Task,
    out_dir: str | os.PathLike[str],
    *,
    target: Target = "chat",
    vllm_grammar: VllmGrammar = "gbnf",
) -> BuildResult:
    """Builds a task into ``out_dir``: requests, batches, grammar files and the manifest.

    Every file is streamed to a temporary file in ``out_dir`` as it is produced (memory
    does not grow with the number of requests), then put in place by renaming: first the
    old ``manifest.json`` is removed, then the other files are renamed over the old ones,
    and the new manifest comes last. A build interrupted at any point (even killed) leaves
    either the previous complete build, or a folder without ``manifest.json`` — never a
    manifest beside files it does not describe, never a truncated file under its real name.

    Files an earlier build wrote that this one does not (``answer-3.lark`` when the last
    batch is now full) are removed, so the folder always holds exactly one build.

    Raises:
        PromptcError: A stage failed; the folder is left as it was then.
        UsageError: ``out_dir`` exists and is not a folder, or cannot be written.
    """
    _check_target(target, vllm_grammar)
    out = Path(out_dir)
    where = Location(str(out))
    if out.exists() and not out.is_dir():
        raise UsageError(
            f"output path {str(out)!r} exists and is not a folder",
            location=where,
            code="out-not-dir",
        )
    files: dict[str, str] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        _remove_temporary(out)  # of an interrupted build
        try:
            files, _, selection, manifest, _ = _produce(task, target, out_dir, out, vllm_grammar)
        except BaseException:
            _remove_temporary(out)
            raise
        manifest_path = out / MANIFEST_FILE
        manifest_path.unlink(missing_ok=True)  # from here on, no manifest until the new one
        for old in out.iterdir():
            if _OWNED.match(old.name) and old.name not in files and old.is_file():
                old.unlink()
        _remove_request_grammars(out)
        for name in sorted(files):
            if name != MANIFEST_FILE:
                os.replace(files[name], out / name.rstrip("/"))
        os.replace(files[MANIFEST_FILE], manifest_path)
    except OSError as e:
        raise UsageError(
            f"cannot write the build to {str(out)!r}: {e.strerror or e}",
            location=where,
            code="out-not-writable",
        ) from None
    return BuildResult(
        out,
        _FolderFiles(out, [n for n in files if not n.endswith("/")]),
        _Rendered(task, selection),
        selection,
        _ManifestView(manifest, out / MANIFEST_FILE),
    )


# ---------------------------------------------------------------- the IR as JSON (--emit ir)


def to_data(value: object) -> object:
    """A deterministic JSON-ready form of IR values: dataclasses become objects with a
    ``"node"`` key naming their class, in field order; mappings are sorted by key."""
    if is_dataclass(value) and not isinstance(value, type):
        if isinstance(value, Location):
            return str(value)
        out: dict[str, object] = {"node": type(value).__name__.rstrip("_")}
        for f in fields(value):
            out[f.name] = to_data(getattr(value, f.name))
        return out
    if isinstance(value, Mapping):
        return {str(k): to_data(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [to_data(v) for v in value]  # lists, tuples, and the items of a data file
    if isinstance(value, Decimal):
        return format(value, "f")
    return value


def ir_json(task: ir.Task) -> str:
    """The IR of a task as indented JSON (``promptc build --emit ir``)."""
    return json.dumps(to_data(task), ensure_ascii=False, indent=2, default=_json_default) + "\n"


# --------------------------------------------------------------------------------------------
# Reading a build back: the one reader of requests.jsonl, beside its writer
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltRequest:
    """One line of a build's ``requests.jsonl``, in either target's form.

    Attributes:
        id: The request id (``id``, or ``custom_id`` for ``--target openai-batch``).
        kind: The strategy, from the line or else the manifest.
        item_ids: The items answered, from the line or else the manifest (empty if neither
            lists them).
        messages: The chat messages.
        params: The sampling parameters (``params``, or the batch ``body`` without its messages).
        grammar: Stem of the request's grammar files, e.g. ``"answer"`` or ``"answer-4"``.
        location: ``requests.jsonl:line:1`` of the line.
    """

    id: str
    kind: Strategy
    item_ids: tuple[str, ...]
    messages: tuple[Mapping[str, Any], ...]
    params: Mapping[str, Any]
    grammar: str | None
    location: Location
    #: The item the request is *for* (``retrieval``: its batch is this item and its
    #: neighbours), from the line's ``target_item``; ``None`` when the batch is for all.
    target_item: str | None = None

    @property
    def line(self) -> int:
        """The line of ``requests.jsonl`` the request was read from."""
        return self.location.line


def read_requests(
    build_dir: str | os.PathLike[str],
    *,
    manifest: Mapping[str, Any] | None = None,
    errors: list[PromptcError] | None = None,
) -> list[BuiltRequest]:
    """The requests of a build, in file order, as :func:`build` wrote them for either target.

    Item ids, grammar stems and the strategy kind a line lacks (the OpenAI Batch form keeps
    them out of the body) come from ``manifest.json``'s ``requests`` and ``strategy``.

    Args:
        build_dir: The build's output folder.
        manifest: The build's manifest, if the caller has read it already (else it is read
            here, and an unreadable one counts as empty).
        errors: Collect mode: every malformed line's error is appended here and the line is
            skipped. Without it the first malformed line is raised.

    Raises:
        UsageError: The folder has no ``requests.jsonl`` (``not-a-build``), or (unless
            ``errors`` collects them) a line is malformed (``bad-requests-line``, at its
            file:line:col).
    """
    build_path = Path(build_dir)
    paths = request_paths(build_path)
    path = build_path / REQUESTS_FILE
    if not build_path.is_dir() or not paths:
        raise UsageError(
            f"{str(build_path)!r} is not a build: it has no {REQUESTS_FILE}",
            location=Location(str(path)),
            hint="run promptc build SPEC -o DIR first",
            code="not-a-build",
        )
    listed, kind = _manifest_requests(build_path if manifest is None else manifest)
    out: list[BuiltRequest] = []
    seen: set[str] = set()

    def bad(message: str, where: Location) -> None:
        error = UsageError(message, location=where, code="bad-requests-line")
        if errors is None:
            raise error
        errors.append(error)

    for path in paths:
        _read_request_lines(path, listed, kind, out, seen, bad)
    return out


def request_paths(build_path: Path) -> list[Path]:
    """The request files of a build: ``requests.jsonl``, or its shards in order."""
    whole = build_path / REQUESTS_FILE
    if whole.is_file():
        return [whole]
    shards = []
    k = 1
    while (build_path / SHARD_NAME.format(k)).is_file():
        shards.append(build_path / SHARD_NAME.format(k))
        k += 1
    return shards


def _read_request_lines(
    path: Path,
    listed: Mapping[str, Mapping[str, Any]],
    kind: str | None,
    out: list[BuiltRequest],
    seen: set[str],
    bad: Any,
) -> None:
    with path.open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = Location(str(path), lineno, 1)
            try:
                # Without its line end, so that a truncated line's error points into the line
                # (JSON would report the position after the newline: the next line, column 1).
                data = json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as e:
                bad(f"not JSON: {e.msg}", Location(str(path), lineno, e.colno))
                continue
            except (ValueError, RecursionError):  # too many digits, or nested too deeply
                bad("not JSON that can be read (too many digits, or nested too deeply)", where)
                continue
            if not isinstance(data, dict):
                bad("expected a JSON object", where)
                continue
            body = data.get("body")
            params: Mapping[str, Any]
            if isinstance(body, dict):  # --target openai-batch
                rid = data.get("custom_id")
                # vllm-batch carries its grammar in the body; promptc run sends it its own way.
                params = {
                    k: v for k, v in body.items() if k not in ("messages", "structured_outputs")
                }
                messages = body.get("messages")
            else:
                rid = data.get("id")
                raw_params = data.get("params")
                params = raw_params if isinstance(raw_params, dict) else {}
                messages = data.get("messages")
            if not isinstance(rid, (str, int)) or isinstance(rid, bool):
                bad("a request needs an 'id' (or 'custom_id')", where)
                continue
            rid = str(rid)
            if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
                bad(f"request {rid} has no list of chat 'messages'", where)
                continue
            if rid in seen:
                bad(f"request id {rid!r} appears twice", where)
                continue
            seen.add(rid)
            known = listed.get(rid, {})
            item_ids = data.get("item_ids", known.get("item_ids"))
            stem = data.get("grammar", known.get("grammar"))
            line_kind = find_strategy(data.get("kind") or kind)
            if line_kind is None:
                bad(
                    f"request {rid} names no strategy kind; expected " + or_list(NAMES),
                    where,
                )
                continue
            out.append(
                BuiltRequest(
                    id=rid,
                    kind=line_kind,
                    item_ids=tuple(str(i) for i in item_ids) if isinstance(item_ids, list) else (),
                    messages=tuple(messages),
                    params=params,
                    grammar=stem if isinstance(stem, str) else None,
                    location=where,
                    target_item=target
                    if isinstance(target := data.get("target_item", known.get("target_item")), str)
                    else None,
                )
            )


def _manifest_requests(
    source: Path | Mapping[str, Any],
) -> tuple[dict[str, dict[str, Any]], str | None]:
    """Item ids and grammar stem by request id, and the strategy kind, from a manifest."""
    manifest: object = source
    if isinstance(source, Path):
        try:
            manifest = json.loads((source / MANIFEST_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError, RecursionError):
            return {}, None
    if not isinstance(manifest, Mapping):
        return {}, None
    strategy = manifest.get("strategy")
    kind = strategy.get("kind") if isinstance(strategy, Mapping) else None
    out: dict[str, dict[str, Any]] = {}
    for r in manifest.get("requests") or []:
        if isinstance(r, Mapping) and "id" in r:
            out[str(r["id"])] = {
                "item_ids": r.get("item_ids"),
                "grammar": r.get("grammar"),
                "target_item": r.get("target_item"),
            }
    return out, kind if isinstance(kind, str) else None
