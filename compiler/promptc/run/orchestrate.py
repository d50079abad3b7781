"""Send a build's requests to an OpenAI-compatible chat API: ``build/`` → ``outputs.jsonl``.

The one stage of promptc that talks to a model. It reads ``requests.jsonl`` (either build
target), sends every request with :class:`openai.AsyncOpenAI` to any OpenAI-compatible
``base_url`` (OpenAI, a local llama.cpp server, vLLM, …), optionally constrained by the build's
answer grammar, and writes one line per answered request to ``outputs.jsonl``::

    {"finish_reason": "stop", "id": "r0001", "output": "A[1]: …", "request_sha256": "…",
     "usage": {"completion_tokens": 87, "prompt_tokens": 611, "total_tokens": 698}}

Guarantees:

- **Nothing received is lost.** Each answer is appended and flushed as it arrives; a run that
  is interrupted (Ctrl-C, a crash, a dead server) keeps every answer written so far, and the
  next run resumes: requests already answered (same request, same ``request_sha256``) are
  skipped. Answers to requests that have since changed (a rebuild, another model or grammar
  mode) are moved to ``outputs.replaced.jsonl`` and the requests sent again.
- **Nothing is paid twice.** Responses are cached in SQLite, keyed by the sha256 of the
  canonical JSON of what is sent (endpoint, model, messages, parameters, grammar).
- **Secrets stay in the environment.** The API key is read from the environment variable
  named by ``api_key_env`` and sent in the ``Authorization`` header only; it is never part of a
  cache key, an output, a cache entry or a message (server messages are scrubbed of it).
- **Failures are reported, not raised.** Connection errors, timeouts, rate limits and 5xx
  answers are retried with exponential backoff; a request that still fails becomes a
  :class:`RequestFailure` (request id, what failed, what to check) in the :class:`RunResult`.

Grammar modes (``grammar=``):

==============  ================================================================================
``none``        plain chat requests
``gbnf``        the build's ``<stem>.gbnf`` as the request body's ``grammar`` field (llama.cpp's
                servers: ``llama-server`` and ``python -m llama_cpp.server``); an Auto-Demo
                request's grammar pins its own questions, which needs the build's spec
``json_schema`` the build's ``<stem>.schema.json`` as ``response_format`` (OpenAI structured
                outputs; for llama-cpp-python's server, ``{"type": "json_object", "schema": …}``).
                The model then answers in JSON, which the answer parser reads through the
                grammar's reader of that form (``AnswerGrammar.text_of_json``).
``auto``        ``gbnf`` when the server says it is llama.cpp (``GET /models`` lists a model owned
                by ``llamacpp`` or, for llama-cpp-python, ``me``); ``none`` otherwise
==============  ================================================================================

The module imports only the standard library and promptc's own light modules; ``openai`` is
imported when a run starts, and its absence is a :class:`~promptc.errors.BackendError` that says
what to install.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc import markers
from promptc.build import BuiltRequest as BuildRequest
from promptc.build import read_requests, read_task
from promptc.errors import BackendError, PromptcError, UsageError
from promptc.run.bodies import GRAMMAR_MODES, ServerKind, cache_key, request_body
from promptc.run.cache import ResponseCache, default_cache_path
from promptc.run.client import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_TIMEOUT,
    FAILURES,
    NO_KEY,
    NO_MODELS_STATUS,
    RETRYABLE,
    Failure,
    backoff,
    classify,
    response_data,
    server_kind,
    split_params,
)
from promptc.run.outputs import (
    OUTPUTS_FILE,
    REPLACED_FILE,
    RESULTS_FILE,
    output_line,
    output_record,
    outputs_lock,
    read_outputs,
)
from promptc.run.progress import Events, events_for
from promptc.run.repair import (
    Merged,
    RepairRequest,
    merge_answers,
    parse_answer,
    repair_grammar,
    repair_requests,
    repair_shape,
    result_line,
)
from promptc.text import write_atomic

if TYPE_CHECKING:
    from promptc.ir import Task
    from promptc.parse.results import ItemResult

#: The largest answer stored for one request (characters): a runaway server is refused per
#: request instead of filling the disk (a 135M model at max_tokens 2048 writes ~10 kB).
MAX_OUTPUT_CHARS = 8_000_000

#: Repair rounds when neither the spec (``run.repair.max_attempts``) nor the caller says.
DEFAULT_REPAIR = 2

#: Hosts whose chat API takes ``max_completion_tokens`` (its o-series models refuse
#: ``max_tokens``); every other server gets ``max_tokens``, which they all know.
COMPLETION_TOKENS_HOSTS = ("api.openai.com",)

TOKEN_FIELDS = ("auto", "max_tokens", "max_completion_tokens")

# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFailure:
    """A request that got no answer after every retry.

    Attributes:
        request_id: The request's id in ``requests.jsonl`` (or a repair request's id).
        kind: A key of :data:`FAILURES` (``connection``, ``timeout``, ``auth``…).
        what: What failed, one sentence.
        check: What to check or do about it.
        attempts: How many times the request was sent.
    """

    request_id: str
    kind: str
    what: str
    check: str
    attempts: int

    def format(self) -> str:
        """``request r0003: could not connect to … after 4 attempts; check that …``"""
        tries = "1 attempt" if self.attempts == 1 else f"{self.attempts} attempts"
        return f"request {self.request_id}: {self.what} after {tries}; {self.check}"


@dataclass
class RunResult:
    """What a run did.

    Attributes:
        build_dir: The build that was run.
        outputs_path: Where the answers are (``outputs.jsonl``).
        total: Requests considered (all of the build's, or the first ``limit``).
        skipped: Already answered in ``outputs.jsonl`` by an earlier run (resumed).
        cached: Answered from the response cache.
        sent: Answered by the API in this run.
        failed: Requests with no answer, each with what failed and what to check.
        grammar: The grammar mode used (``auto`` resolved), or ``None`` if nothing was sent.
        results_path: ``results.jsonl`` when the run parsed the answers, else ``None``.
        statuses: Result rows per parse status (after repair), when the run parsed.
        dropped_stale: Answers moved from ``outputs.jsonl`` to ``outputs.replaced.jsonl``
            because their request changed.
        base_url: The API the run talked to (the embedded server's, for a local run).
        local: True when the run started the embedded model.
        prompt_tokens: Prompt tokens of every answer of the run (as the server counted).
        completion_tokens: Completion tokens of every answer of the run.
        empty: Answers that were empty (recorded, never cached).
        repair_rounds: Repair rounds that asked something.
        repair_requests: Repair requests answered.
        repaired: Items ok only thanks to repair.
        not_ok: Items still not ok after repair (``None`` when not parsed).
        items: Items of the requests considered.
        elapsed: Seconds the run took.
    """

    build_dir: Path
    outputs_path: Path
    total: int = 0
    skipped: int = 0
    cached: int = 0
    sent: int = 0
    failed: list[RequestFailure] = field(default_factory=list)
    grammar: str | None = None
    results_path: Path | None = None
    statuses: dict[str, int] | None = None
    dropped_stale: int = 0
    base_url: str | None = None
    local: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    empty: int = 0
    repair_rounds: int = 0
    repair_requests: int = 0
    repaired: int = 0
    not_ok: int | None = None
    items: int = 0
    elapsed: float = 0.0

    @property
    def answered(self) -> int:
        """Requests of the build with an answer (repair requests not counted)."""
        return self.skipped + self.cached + self.sent

    @property
    def ok(self) -> bool:
        """True when every request considered has an answer and, if parsed, every item is ok."""
        return not self.failed and self.answered == self.total and not self.not_ok

    def summary(self) -> str:
        """One line for people."""
        parts = [
            (
                f"{self.answered}/{self.total} requests answered "
                f"({self.sent} sent, {self.cached} from cache, {self.skipped} already in "
                f"{self.outputs_path.name})"
            )
        ]
        if self.failed:
            parts.append(f"{len(self.failed)} failed")
        if self.empty:
            parts.append(f"{self.empty} empty answer(s)")
        if self.repair_requests:
            parts.append(
                f"repair: {self.repair_requests} request(s) in {self.repair_rounds} round(s), "
                f"{self.repaired} item(s) repaired"
            )
        if self.statuses is not None:
            n = sum(self.statuses.values())
            parts.append(
                f"{n} results: "
                + ", ".join(f"{c} {s}" for s, c in self.statuses.items() if c or s == "ok")
            )
        if self.not_ok:
            parts.append(f"{self.not_ok} of {self.items} item(s) not ok")
        if self.prompt_tokens or self.completion_tokens:
            parts.append(f"tokens {self.prompt_tokens} in / {self.completion_tokens} out")
        return "; ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The summary as data (``promptc run --format json``)."""
        return {
            "build": str(self.build_dir),
            "outputs": str(self.outputs_path),
            "results": str(self.results_path) if self.results_path is not None else None,
            "base_url": self.base_url,
            "local": self.local,
            "grammar": self.grammar,
            "requests": {
                "total": self.total,
                "answered": self.answered,
                "sent": self.sent,
                "cached": self.cached,
                "skipped": self.skipped,
                "failed": len(self.failed),
                "empty": self.empty,
                "replaced": self.dropped_stale,
            },
            "items": {"total": self.items, "not_ok": self.not_ok, "statuses": self.statuses},
            "repair": {
                "rounds": self.repair_rounds,
                "requests": self.repair_requests,
                "repaired": self.repaired,
            },
            "tokens": {"prompt": self.prompt_tokens, "completion": self.completion_tokens},
            "failures": [
                {"request": f.request_id, "kind": f.kind, "message": f.format()}
                for f in self.failed
            ],
            "elapsed_s": round(self.elapsed, 3),
            "ok": self.ok,
        }


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


Progress = Callable[[str], None]


def run_build(
    build_dir: str | os.PathLike[str],
    *,
    base_url: str | None = None,
    local: bool | None = None,
    model_path: str | os.PathLike[str] | None = None,
    api_key_env: str = "OPENAI_API_KEY",
    concurrency: int = 4,
    grammar: str = "auto",
    cache_path: str | os.PathLike[str] | None = None,
    use_cache: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    max_retries: int = DEFAULT_MAX_RETRIES,
    limit: int | None = None,
    model: str | None = None,
    parse: bool = False,
    outputs_path: str | os.PathLike[str] | None = None,
    results_path: str | os.PathLike[str] | None = None,
    repair: int | None = None,
    max_tokens_field: str = "auto",
    progress: Events | Progress | None = None,
    on_server_start: Callable[[int], None] | None = None,
) -> RunResult:
    """Sends the requests of a build, repairs failed items, and writes ``outputs.jsonl``.

    Where the requests go: ``base_url``, else ``$OPENAI_BASE_URL``, else the embedded model
    (:mod:`promptc.run.local`) when ``local`` is true, the spec says
    ``model: {provider: local}``, or the ``local`` extra is installed and ``local`` is not
    false.

    Args:
        build_dir: A folder written by ``promptc build``.
        base_url: The API's base URL, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8080/v1``.
        local: True to run the embedded llama.cpp server (refused with ``base_url``);
            False never to.
        model_path: The GGUF file of the embedded server (default the bundled SmolLM2).
        api_key_env: The environment variable holding the API key (read, never written).
        concurrency: Requests in flight at once.
        grammar: ``auto``, ``gbnf``, ``json_schema`` (or ``json-schema``) or ``none``.
        cache_path: The SQLite response cache; default :func:`default_cache_path`.
        use_cache: False to neither read nor write the cache.
        timeout: Seconds to wait for one answer.
        max_retries: Retries of a request after a retryable failure (connection, timeout,
            rate limit, 5xx), with backoff (the server's ``Retry-After`` when it sends one).
        limit: Only the first ``limit`` requests of the build.
        model: Send this model name instead of the build's (e.g. a local server's alias).
        parse: Write ``results.jsonl``: one parse result per item, after repair.
        outputs_path: Where to write the answers; default ``BUILD_DIR/outputs.jsonl``.
        results_path: Where to write the results; default ``results.jsonl`` beside the
            outputs.
        repair: Repair rounds (:mod:`promptc.run.repair`); default the spec's
            ``run.repair.max_attempts`` (2 if it says nothing); 0 for none.
        max_tokens_field: ``max_tokens``, ``max_completion_tokens`` or ``auto`` (the spec's
            ``model.max_tokens_field``, else ``max_completion_tokens`` for api.openai.com and
            ``max_tokens`` elsewhere).
        progress: An :class:`~promptc.run.progress.Events` (a bar, lines), or a callable
            given one line per event.
        on_server_start: Called with the embedded server's process id when it runs.

    Returns:
        What was done; failed requests are in :attr:`RunResult.failed`, not raised.

    Raises:
        UsageError: Bad arguments, not a build, no server to send to, a grammar file
            missing, an unusable cache, another run writing the same outputs.
        BackendError: ``openai`` (or, for the embedded model, ``llama_cpp``) not installed.
    """
    started = time.monotonic()
    mode = grammar.replace("-", "_")
    if mode not in GRAMMAR_MODES:
        raise UsageError(
            f"unknown grammar mode {grammar!r}; expected auto, gbnf, json-schema or none",
            code="bad-grammar-mode",
        )
    if concurrency < 1:
        raise UsageError(
            f"concurrency must be at least 1, not {concurrency}", code="bad-concurrency"
        )
    if max_retries < 0 or timeout <= 0:
        raise UsageError("max_retries must be 0 or more and timeout above 0", code="bad-retries")
    if repair is not None and repair < 0:
        raise UsageError(f"repair must be 0 or more, not {repair}", code="bad-repair")
    if max_tokens_field not in TOKEN_FIELDS:
        raise UsageError(
            f"unknown max_tokens field {max_tokens_field!r}; expected " + ", ".join(TOKEN_FIELDS),
            code="bad-token-field",
        )
    build = Path(build_dir)
    requests = read_requests(build)
    if limit is not None:
        requests = requests[: max(limit, 0)]
    out_path = Path(outputs_path) if outputs_path is not None else build / OUTPUTS_FILE
    res_path = Path(results_path) if results_path is not None else out_path.with_name(RESULTS_FILE)
    events = events_for(progress)
    try:
        import openai  # noqa: F401 - imported here: promptc itself does not need it
    except ImportError:
        raise BackendError(
            "promptc run needs the openai package, which is not installed",
            hint="pip install 'promptc[openai]'",
            code="missing-openai",
        ) from None
    task = read_task(build)
    rounds = repair if repair is not None else (task.run.repair_max_attempts if task else 0)
    if repair is None and task is None:
        rounds = 0
    parser = _Parser(build, task) if (parse or rounds) and task is not None else None
    provider = task.model.provider if task is not None else None
    token_field = max_tokens_field
    if token_field == "auto" and task is not None and task.model.max_tokens_field:
        token_field = task.model.max_tokens_field
    url, use_local = _server(base_url, local, provider)
    cache = ResponseCache(cache_path or default_cache_path()) if use_cache else None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(outputs_lock(out_path))
            cache_url = url or ""
            if use_local:
                from promptc.run.context import (
                    ServerContext,
                    fit_warning,
                    largest_need,
                    prompt_chars,
                )
                from promptc.run.local import (
                    LOCAL_ALIAS,
                    MAX_CONTEXT,
                    context_for,
                    context_need,
                    local_server,
                )

                longest = max((prompt_chars(r) for r in requests), default=0)
                n_ctx = context_for(longest, _max_tokens(requests))
                need = largest_need(requests)
                if need is not None and context_need(longest, _max_tokens(requests)) > MAX_CONTEXT:
                    # The context is made to fit, up to the model's own: past that, say so.
                    warning = fit_warning(
                        need,
                        ServerContext(MAX_CONTEXT, "the most it was trained for"),
                        "the embedded model's",
                    )
                    if warning is not None:
                        events.note(warning)
                url = stack.enter_context(
                    local_server(model_path, n_ctx=n_ctx, say=events.note, on_start=on_server_start)
                )
                # The port changes every run; the cache is keyed by the model file instead.
                cache_url = "local:" + (Path(model_path).name if model_path else LOCAL_ALIAS)
                model = model or LOCAL_ALIAS
            assert url is not None
            run = _Run(
                build=build,
                requests=requests,
                out_path=out_path,
                results_path=res_path if parse else None,
                base_url=url,
                cache_url=cache_url,
                api_key_env=api_key_env,
                concurrency=concurrency,
                mode=mode,
                cache=cache,
                timeout=timeout,
                max_retries=max_retries,
                model=model,
                parser=parser,
                events=events,
                task=task,
                repair=rounds,
                token_field=token_field,
                probe_context=not use_local,
            )
            result = asyncio.run(run.run())
            result.base_url = url
            result.local = use_local
            result.elapsed = time.monotonic() - started
            return result
    finally:
        events.close()
        if cache is not None:
            cache.close()


def _max_tokens(requests: list[BuildRequest]) -> int | None:
    values = [r.params.get("max_tokens") for r in requests]
    ints = [v for v in values if isinstance(v, int)]
    return max(ints) if ints else None


def _server(
    base_url: str | None, local: bool | None, provider: str | None
) -> tuple[str | None, bool]:
    """Where to send: (base URL, start the embedded model?)."""
    from promptc.run.local import local_available

    if local and base_url:
        raise UsageError(
            "--local and --base-url exclude each other: the embedded model has its own URL",
            code="local-and-base-url",
        )
    if local:
        return None, True
    if base_url:
        return base_url, False
    env_url = os.environ.get("OPENAI_BASE_URL")
    if provider == "local" and local is not False:
        return None, True
    if env_url:
        return env_url, False
    if local is not False and provider != "openai" and local_available():
        return None, True
    if provider == "openai":
        return "https://api.openai.com/v1", False
    raise UsageError(
        "no server to send to: neither --base-url nor OPENAI_BASE_URL is set, and the "
        "embedded model is not installed",
        hint="pass --base-url URL, set OPENAI_BASE_URL, or pip install 'promptc[local]' "
        "and use --local",
        code="no-server",
    )


class _Parser:
    """Parses answers with the build's task."""

    def __init__(self, build: Path, task: Task) -> None:
        from promptc.parse.build_input import load_build

        self.task = task
        try:
            self.shapes = load_build(build).requests
        except PromptcError:
            self.shapes = {}

    def parse(self, request: BuildRequest, output: str, mode: str | None) -> list[ItemResult]:
        from promptc.parse.shape import request_shape

        shape = self.shapes.get(request.id)
        if shape is None:
            shape = request_shape(
                self.task,
                {
                    "id": request.id,
                    "kind": request.kind,
                    "item_ids": list(request.item_ids),
                    "target_item": request.target_item,
                },
            )
        # An answer in the JSON form (mode json_schema) is read by parse_output itself.
        # A retrieval request is for its target item: only that item's result is kept, so
        # results.jsonl has exactly one result per item, as promptc parse writes by default.
        return parse_answer(self.task, shape, output)


@dataclass
class _Run:
    build: Path
    requests: list[BuildRequest]
    out_path: Path
    results_path: Path | None
    base_url: str
    cache_url: str
    api_key_env: str
    concurrency: int
    mode: str
    cache: ResponseCache | None
    timeout: float
    max_retries: int
    model: str | None
    parser: _Parser | None
    events: Events
    task: Task | None
    repair: int
    token_field: str
    #: Ask the server its context before sending (not the embedded one: promptc sized it).
    probe_context: bool = True
    result: RunResult = field(init=False)
    _secret: str | None = field(init=False, default=None)
    _client: Any = field(init=False, default=None)
    _parsed: dict[str, list[ItemResult]] = field(init=False, default_factory=dict)
    _modes: dict[str, str] = field(init=False, default_factory=dict)
    _repairs: dict[str, RepairRequest] = field(init=False, default_factory=dict)
    _resolved: tuple[str, ServerKind] | None = field(init=False, default=None)
    _asked: set[str] = field(init=False, default_factory=set)
    _old_repairs: dict[str, Mapping[str, Any]] = field(init=False, default_factory=dict)

    async def run(self) -> RunResult:
        self.result = RunResult(self.build, self.out_path, total=len(self.requests))
        # A retrieval request is for its target alone: its other items are demonstrations.
        self.result.items = len(
            {i for r in self.requests for i in ((r.target_item,) if r.target_item else r.item_ids)}
        )
        self._secret = os.environ.get(self.api_key_env) or None
        existing = read_outputs(self.out_path)
        pending: list[BuildRequest] = []
        keep: dict[str, dict[str, Any]] = {}
        empty: set[str] = set()
        for r in self.requests:
            old = existing.get(r.id)
            if old is not None and old.get("request_sha256") in self._candidate_keys(r):
                if old.get("output"):
                    keep[r.id] = old
                    self._modes[r.id] = self._mode_of(r, str(old.get("request_sha256")))
                    continue
                empty.add(r.id)  # recorded as it came, and asked again
            pending.append(r)
        considered = {r.id for r in self.requests}
        stale = [
            rid for rid in existing if rid in considered and rid not in keep and rid not in empty
        ]
        if stale:
            # Answers to requests that have changed since (another prompt, model or grammar
            # mode): moved aside, never deleted, so that outputs.jsonl matches the build and
            # nothing paid for is lost. Appended there first: a crash in between duplicates.
            self.result.dropped_stale = len(stale)
            replaced = self.out_path.with_name(REPLACED_FILE)
            with open(replaced, "a", encoding="utf-8", newline="\n") as f:  # noqa: ASYNC230
                f.writelines(output_line(existing[k]) + "\n" for k in stale)
            write_atomic(
                self.out_path, (output_line(v) for k, v in existing.items() if k not in stale)
            )
            self.events.note(
                f"{len(stale)} answer(s) in {self.out_path.name} are for requests "
                "that have changed since (prompt, model or grammar mode); moved to "
                f"{replaced.name} and sent again: {', '.join(sorted(stale)[:5])}"
                + (" …" if len(stale) > 5 else "")
            )
        self.result.skipped = len(keep)
        if keep:
            self.events.note(
                f"resuming: {len(keep)} of {len(self.requests)} request(s) already "
                f"answered in {self.out_path}"
            )
        for r in self.requests:
            if r.id in keep:
                self._count_usage(keep[r.id])
                self._parse(r, keep[r.id]["output"])

        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        # Blocking file writes are fine here: one short line per answer, and they must be
        # flushed before the next answer is awaited.
        with open(self.out_path, "a", encoding="utf-8", newline="\n") as out:  # noqa: ASYNC230
            if pending:
                items = sum(_answered_items(r) for r in pending)
                self.events.start(len(pending), items, "promptc run")
                answered = await self._answer(out, pending)
                self.result.cached += answered[0]
                self.result.sent += answered[1]
            if self.parser is not None and self.repair > 0 and not self._fatal():
                await self._repair_rounds(out, existing)
        self._finish()
        return self.result

    def _fatal(self) -> bool:
        """True when every request failed the same way: repair would only fail again."""
        return bool(self.result.failed) and self.result.answered == 0

    # -- repair -----------------------------------------------------------------------------

    def _merged(self) -> Merged:
        """The results so far, repair answers merged (:func:`merge_answers`)."""
        repairs: dict[str, Mapping[str, Any]] = {
            rid: rr.record() for rid, rr in self._repairs.items() if rid in self._parsed
        }
        for rid, record in self._old_repairs.items():
            repairs.setdefault(rid, record)
        return merge_answers([r.id for r in self.requests], self._parsed, repairs)

    async def _repair_rounds(self, out: Any, existing: Mapping[str, dict[str, Any]]) -> None:
        assert self.parser is not None and self.task is not None
        by_id = {r.id: r for r in self.requests}
        for attempt in range(1, self.repair + 1):
            failed = self._merged().failed()
            if not failed:
                return
            planned, refused = repair_requests(self.task, failed, by_id, attempt)
            if refused:
                self.events.note(
                    "cannot repair request(s) "
                    + ", ".join(refused[:5])
                    + ": their prompt does not show its questions as "
                    + markers.question_block(
                        self.task.inputs,
                        {f.name: "…" for f in self.task.inputs},
                        "i",
                        self.task.markers,
                    ).replace(markers.FIELD_SEPARATOR, " ")
                )
            fresh: list[RepairRequest] = []
            for rr in planned:
                self._repairs[rr.request.id] = rr
                keys = self._candidate_keys(rr.request)
                if keys and all(k in self._asked for k in keys):
                    continue  # the very prompt was asked already: same answer again
                fresh.append(rr)
            if not fresh:
                return
            self.result.repair_rounds += 1
            todo: list[BuildRequest] = []
            for rr in fresh:
                old = existing.get(rr.request.id)
                if (
                    old is not None
                    and old.get("output")
                    and old.get("request_sha256") in self._candidate_keys(rr.request)
                ):
                    self._modes[rr.request.id] = self._mode_of(
                        rr.request, str(old.get("request_sha256"))
                    )
                    self._asked.add(str(old.get("request_sha256")))
                    self._count_usage(old)
                    self._parse(rr.request, str(old.get("output", "")))
                    self.result.repair_requests += 1
                else:
                    todo.append(rr.request)
            if todo:
                self.events.start(
                    len(todo), sum(_answered_items(r) for r in todo), f"repair round {attempt}"
                )
                cached, sent = await self._answer(out, todo)
                self.result.repair_requests += cached + sent

    # -- bodies -----------------------------------------------------------------------------

    def _modes_to_try(self) -> list[tuple[str, ServerKind]]:
        if self._resolved is not None:
            return [self._resolved]
        if self.mode == "auto":
            return [("gbnf", "other"), ("none", "other")]
        if self.mode == "json_schema":
            return [("json_schema", "other"), ("json_schema", "llama-cpp-python")]
        return [(self.mode, "other")]

    def _body(self, r: BuildRequest, mode: str, server: ServerKind) -> dict[str, Any]:
        task = None
        constrained = mode in ("gbnf", "json_schema")
        if constrained and r.kind.repeats_questions:  # its questions are pinned in its grammar
            if self.task is None:
                self.task = read_task(self.build)
            task = self.task
        elif constrained and self.task is not None:  # per-item options, if any
            task = self.task
        files = None
        rr = self._repairs.get(r.id)
        if rr is not None and mode in ("gbnf", "json_schema"):
            assert self.task is not None
            suffix = ".gbnf" if mode == "gbnf" else ".schema.json"
            files = {suffix: repair_grammar(self.task, r, suffix)}
        body = request_body(
            r,
            self.build,
            mode,  # type: ignore[arg-type]
            server,
            self.model,
            task,
            files,
        )
        if self._token_field() == "max_completion_tokens" and "max_tokens" in body:
            body["max_completion_tokens"] = body.pop("max_tokens")
        return body

    def _token_field(self) -> str:
        if self.token_field != "auto":
            return self.token_field
        from urllib.parse import urlparse

        host = urlparse(self.base_url).hostname or ""
        return "max_completion_tokens" if host in COMPLETION_TOKENS_HOSTS else "max_tokens"

    def _candidate_keys(self, r: BuildRequest) -> dict[str, str]:
        """Cache key → grammar mode, for every body this run might send for ``r``."""
        out: dict[str, str] = {}
        for mode, server in self._modes_to_try():
            try:
                out[cache_key(self.cache_url, self._body(r, mode, server))] = mode
            except UsageError:
                if self.mode != "auto":
                    raise  # auto falls back to no grammar when a build has none
        return out

    def _mode_of(self, r: BuildRequest, key: str) -> str:
        return self._candidate_keys(r).get(key, self.mode)

    def _cached(self, r: BuildRequest) -> tuple[str, dict[str, Any]] | None:
        if self.cache is None:
            return None
        for key, mode in self._candidate_keys(r).items():
            hit = self.cache.get(key)
            if hit is not None and hit.get("output"):  # an empty answer is never a hit
                self._modes[r.id] = mode
                return key, hit
        return None

    # -- sending ----------------------------------------------------------------------------

    async def _answer(self, out: Any, requests: list[BuildRequest]) -> tuple[int, int]:
        """Answers ``requests`` from the cache, else from the API: (cached, sent)."""
        to_send: list[BuildRequest] = []
        cached = 0
        for r in requests:
            hit = self._cached(r)
            if hit is None:
                to_send.append(r)
                continue
            key, response = hit
            self._asked.add(key)
            self._record(out, r, key, response)
            cached += 1
            self._tick(r, response, "from cache")
        sent = await self._send_all(out, to_send) if to_send else 0
        return cached, sent

    async def _send_all(self, out: Any, requests: list[BuildRequest]) -> int:
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._secret or NO_KEY,
            timeout=self.timeout,
            max_retries=0,  # retried here, to count attempts and say what failed
        )
        sent = [0]
        try:
            if self._resolved is None:
                mode, server = await self._resolve(requests)
                if mode is None:
                    return 0
                self._resolved = (mode, server)
                self.result.grammar = mode
            mode, server = self._resolved
            if self.probe_context:
                self.probe_context = False  # once a run: the server's context does not change
                await self._check_context(requests)
            self.events.note(
                f"sending {len(requests)} request(s) to {self.base_url} "
                f"(grammar: {mode}, concurrency {self.concurrency})"
            )
            gate = asyncio.Semaphore(self.concurrency)

            async def one(r: BuildRequest) -> None:
                async with gate:
                    if await self._send_one(out, r, mode, server):
                        sent[0] += 1

            await asyncio.gather(*(one(r) for r in requests))
        finally:
            await self._client.close()
        return sent[0]

    async def _check_context(self, requests: list[BuildRequest]) -> None:
        """Warns (once) when the largest request may not fit the server's context, if the
        server says what it is (:mod:`promptc.run.context`); silent when it does not."""
        from promptc.run.context import PROBE_TIMEOUT, fit_warning, largest_need, server_context

        need = largest_need(requests)
        if need is None:
            return
        model = self.model or requests[0].params.get("model")
        context = await asyncio.to_thread(
            server_context,
            self.base_url,
            self._secret,
            str(model) if model is not None else None,
            min(PROBE_TIMEOUT, self.timeout),
        )
        warning = fit_warning(need, context) if context is not None else None
        if warning is not None:
            self.events.note(warning)

    async def _resolve(self, requests: list[BuildRequest]) -> tuple[str | None, ServerKind]:
        """The grammar mode and server kind to send with (asks the server when it matters)."""
        if self.mode not in ("auto", "json_schema"):
            return self.mode, "other"
        attempts = 0
        while True:
            attempts += 1
            try:
                models = await self._client.models.list()
                break
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
                failure = exc if isinstance(exc, Failure) else classify(exc, self._secret)
                if failure.status in NO_MODELS_STATUS or failure.kind == "bad-response":
                    # An API without GET /models (or an odd one): not llama.cpp, then.
                    models = None
                    break
                if failure.kind in RETRYABLE and attempts <= self.max_retries:
                    await asyncio.sleep(backoff(attempts - 1, failure.retry_after))
                    continue
                for r in requests:
                    self._fail(
                        r,
                        failure,
                        attempts,
                        during="asking it which grammar it takes (GET /models)",
                    )
                return None, "other"
        server = server_kind(models)
        if self.mode == "json_schema":
            return "json_schema", server
        chosen = "gbnf" if server != "other" and all(r.grammar for r in requests) else "none"
        return chosen, server

    async def _send_one(self, out: Any, r: BuildRequest, mode: str, server: ServerKind) -> bool:
        body = self._body(r, mode, server)
        key = cache_key(self.cache_url, body)
        self._asked.add(key)
        kwargs = split_params(self._client.chat.completions.create, body)
        attempts = 0
        started = time.monotonic()
        while True:
            attempts += 1
            try:
                completion = await self._client.chat.completions.create(**kwargs)
                response = response_data(completion, self._secret)
                size = len(str(response.get("output", "")))
                if size > MAX_OUTPUT_CHARS:
                    raise Failure("too-large", None, f"{size:,} characters")
                break
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
                failure = exc if isinstance(exc, Failure) else classify(exc, self._secret)
                if failure.kind in RETRYABLE and attempts <= self.max_retries:
                    delay = backoff(attempts - 1, failure.retry_after)
                    self.events.note(
                        f"request {r.id}: {failure.kind} ({failure.detail}); "
                        f"retrying in {delay:.1f} s"
                    )
                    await asyncio.sleep(delay)
                    continue
                self._fail(r, failure, attempts)
                return False
        empty = not response.get("output")
        if empty:
            # Recorded (it is what the server said) but not cached: the next run asks again.
            self.result.empty += 1
            self.events.note(f"request {r.id}: the server's answer is empty")
        elif self.cache is not None and not self.cache.put(key, response):
            self.events.note(
                f"request {r.id}: could not write the response cache "
                f"{self.cache.path}; the answer is kept in {self.out_path.name}"
            )
        self._modes[r.id] = mode
        self._record(out, r, key, response)
        self._tick(
            r,
            response,
            f"{time.monotonic() - started:.1f} s, finish {response.get('finish_reason')}",
        )
        return True

    def _fail(self, r: BuildRequest, failure: Failure, attempts: int, during: str = "") -> None:
        model = str(self.model or r.params.get("model", ""))
        fill = {
            "base_url": self.base_url,
            "timeout": self.timeout,
            "api_key_env": self.api_key_env,
            "model": model,
            "detail": failure.detail,
            "status": failure.status,
            "grammar_hint": ", or try --grammar none (the server may not accept a grammar)"
            if self.mode != "none"
            else "",
        }
        what_t, check_t = FAILURES[failure.kind]
        what = what_t.format(**fill)
        if during:
            what = f"{what} while {during}"
        self.result.failed.append(
            RequestFailure(r.id, failure.kind, what, check_t.format(**fill), attempts)
        )
        self.events.failed(r.id, _answered_items(r), failure.kind)

    # -- writing ----------------------------------------------------------------------------

    def _record(self, out: Any, r: BuildRequest, key: str, response: Mapping[str, Any]) -> None:
        record = output_record(r.id, key, response)
        rr = self._repairs.get(r.id)
        if rr is not None:
            record["repair"] = rr.record()
        out.write(output_line(record) + "\n")
        out.flush()  # an interrupted run keeps every answer received
        self._count_usage(record)
        self._parse(r, str(response.get("output", "")))

    def _count_usage(self, record: Mapping[str, Any]) -> None:
        usage = record.get("usage")
        if isinstance(usage, Mapping):
            self.result.prompt_tokens += _int(usage.get("prompt_tokens"))
            self.result.completion_tokens += _int(usage.get("completion_tokens"))

    def _parse(self, r: BuildRequest, output: str) -> None:
        if self.parser is not None:
            self._parsed[r.id] = self.parser.parse(r, output, self._modes.get(r.id, self.mode))

    def _tick(self, r: BuildRequest, response: Mapping[str, Any], note: str) -> None:
        parsed = self._parsed.get(r.id)
        ok = None
        if parsed is not None:
            ok = sum(1 for x in parsed if x.status == "ok")
        usage = response.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        self.events.done(
            r.id,
            items=_answered_items(r),
            ok=ok,
            prompt_tokens=_int(usage.get("prompt_tokens")),
            completion_tokens=_int(usage.get("completion_tokens")),
            note=note,
        )

    def _finish(self) -> None:
        """Rewrites outputs.jsonl in request order (repair answers after, by id) and writes
        results.jsonl."""
        existing = read_outputs(self.out_path)
        order = {r.id: k for k, r in enumerate(self.requests)}
        ordered = sorted(existing.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        self.result.failed.sort(key=lambda f: (order.get(f.request_id, len(order)), f.request_id))
        if ordered:
            write_atomic(self.out_path, (output_line(v) for _, v in ordered))
        else:  # nothing answered: no empty file to mistake for a run's answers
            self.out_path.unlink(missing_ok=True)
        if self.parser is None:
            return
        from promptc.parse.results import summarize

        assert self.task is not None
        # Repair answers of an earlier run that this one did not plan again are merged too,
        # so that results.jsonl is what promptc parse and collect make of outputs.jsonl.
        considered = {r.id for r in self.requests}
        for rid, record in existing.items():
            rep = record.get("repair")
            if (
                rid not in self._parsed
                and isinstance(rep, Mapping)
                and str(rep.get("of")) in considered
                and isinstance(record.get("output"), str)
            ):
                self._old_repairs[rid] = rep
                shape = repair_shape(self.task, rep, rid)
                self._parsed[rid] = parse_answer(self.task, shape, record["output"])
        merged = self._merged()
        self.result.repaired = merged.repaired
        rows = merged.rows
        self.result.not_ok = sum(1 for x, _ in rows if x.item_id is not None and x.status != "ok")
        self.result.statuses = summarize(x for x, _ in rows)
        if self.results_path is not None:
            write_atomic(
                self.results_path,
                (result_line(x, n) for x, n in rows),
            )
            self.result.results_path = self.results_path


def _answered_items(r: BuildRequest) -> int:
    """The items a request answers for: a retrieval request's target alone."""
    return 1 if r.target_item is not None else len(r.item_ids)


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0
