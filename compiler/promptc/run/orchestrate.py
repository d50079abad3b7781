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
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc.errors import BackendError, UsageError
from promptc.run.bodies import (
    GRAMMAR_MODES,
    BuildRequest,
    ServerKind,
    build_task,
    cache_key,
    read_requests,
    request_body,
)
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
    output_record,
    read_outputs,
)
from promptc.text import canonical_json, write_atomic

if TYPE_CHECKING:
    from promptc.ir import Task
    from promptc.parse.results import ItemResult

# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestFailure:
    """A request that got no answer after every retry.

    Attributes:
        request_id: The request's id in ``requests.jsonl``.
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
        statuses: Items per parse status, when the run parsed the answers.
        dropped_stale: Answers moved from ``outputs.jsonl`` to ``outputs.replaced.jsonl``
            because their request changed.
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

    @property
    def answered(self) -> int:
        return self.skipped + self.cached + self.sent

    @property
    def ok(self) -> bool:
        """True when every request considered has an answer."""
        return not self.failed and self.answered == self.total

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
        if self.statuses is not None:
            n = sum(self.statuses.values())
            parts.append(
                f"{n} items parsed: "
                + ", ".join(f"{c} {s}" for s, c in self.statuses.items() if c or s == "ok")
            )
        return "; ".join(parts)


# --------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------


Progress = Callable[[str], None]


def run_build(
    build_dir: str | os.PathLike[str],
    *,
    base_url: str,
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
    spec: str | os.PathLike[str] | None = None,
    outputs_path: str | os.PathLike[str] | None = None,
    progress: Progress | None = None,
) -> RunResult:
    """Sends the requests of a build and writes their answers to ``outputs.jsonl``.

    Args:
        build_dir: A folder written by ``promptc build``.
        base_url: The API's base URL, e.g. ``https://api.openai.com/v1`` or
            ``http://127.0.0.1:8080/v1``.
        api_key_env: The environment variable holding the API key (read, never written).
        concurrency: Requests in flight at once.
        grammar: ``auto``, ``gbnf``, ``json_schema`` (or ``json-schema``) or ``none``.
        cache_path: The SQLite response cache; default :func:`default_cache_path`.
        use_cache: False to neither read nor write the cache.
        timeout: Seconds to wait for one answer.
        max_retries: Retries of a request after a retryable failure (connection, timeout,
            rate limit, 5xx), with exponential backoff.
        limit: Only the first ``limit`` requests of the build.
        model: Send this model name instead of the build's (e.g. a local server's alias).
        parse: Also parse every answer (:func:`promptc.parse.output.parse_output`) and write
            ``results.jsonl`` next to the outputs, in request order.
        spec: The spec to parse with, and to pin Auto-Demo questions in GBNF grammars with;
            default the one named by the build's manifest.
        outputs_path: Where to write the answers; default ``BUILD_DIR/outputs.jsonl``.
        progress: Called with one line of progress per event (the CLI prints it on stderr).

    Returns:
        What was done; failed requests are in :attr:`RunResult.failed`, not raised.

    Raises:
        UsageError: Bad arguments, not a build, a grammar file missing, an unusable cache.
        BackendError: The ``openai`` package is not installed.
        PromptcError: ``parse=True`` and the spec cannot be compiled.
    """
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
    build = Path(build_dir)
    requests = read_requests(build)
    if limit is not None:
        requests = requests[: max(limit, 0)]
    out_path = Path(outputs_path) if outputs_path is not None else build / OUTPUTS_FILE
    try:
        import openai  # noqa: F401 - imported here: promptc itself does not need it
    except ImportError:
        raise BackendError(
            "promptc run needs the openai package, which is not installed",
            hint="pip install 'promptc[openai]'",
            code="missing-openai",
        ) from None
    parser = _Parser(build, spec) if parse else None
    cache = ResponseCache(cache_path or default_cache_path()) if use_cache else None
    try:
        return asyncio.run(
            _Run(
                build=build,
                requests=requests,
                out_path=out_path,
                base_url=base_url,
                api_key_env=api_key_env,
                concurrency=concurrency,
                mode=mode,
                cache=cache,
                timeout=timeout,
                max_retries=max_retries,
                model=model,
                parser=parser,
                progress=progress or (lambda _line: None),
                spec=spec,
            ).run()
        )
    finally:
        if cache is not None:
            cache.close()


class _Parser:
    """Parses answers with the build's task, for ``parse=True``."""

    def __init__(self, build: Path, spec: str | os.PathLike[str] | None) -> None:
        from promptc.parse.build_input import load_build

        try:
            loaded = load_build(build if spec is None else Path(spec))
        except UsageError as e:
            if spec is None and e.code in ("spec-not-found", "no-spec-in-manifest"):
                # Checked before anything is sent, so that no answer is paid for in vain.
                raise UsageError(
                    e.message,
                    location=e.location,
                    hint="pass the spec with --spec SPEC",
                    code=e.code,
                ) from None
            raise
        self.task = loaded.task
        self.shapes = loaded.requests

    def parse(self, request: BuildRequest, output: str, mode: str | None) -> list[ItemResult]:
        from promptc.parse.output import parse_output, target_results
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
        return target_results(parse_output(self.task, shape, output), {shape.id: shape})


@dataclass
class _Run:
    build: Path
    requests: list[BuildRequest]
    out_path: Path
    base_url: str
    api_key_env: str
    concurrency: int
    mode: str
    cache: ResponseCache | None
    timeout: float
    max_retries: int
    model: str | None
    parser: _Parser | None
    progress: Progress
    spec: str | os.PathLike[str] | None = None
    result: RunResult = field(init=False)
    _secret: str | None = field(init=False, default=None)
    _client: Any = field(init=False, default=None)
    _done: int = field(init=False, default=0)
    _parsed: dict[str, list[ItemResult]] = field(init=False, default_factory=dict)
    _modes: dict[str, str] = field(init=False, default_factory=dict)
    _task: Task | None = field(init=False, default=None)

    async def run(self) -> RunResult:
        self.result = RunResult(self.build, self.out_path, total=len(self.requests))
        self._secret = os.environ.get(self.api_key_env) or None
        existing = read_outputs(self.out_path)
        pending: list[BuildRequest] = []
        keep: dict[str, dict[str, Any]] = {}
        for r in self.requests:
            old = existing.get(r.id)
            if old is not None and old.get("request_sha256") in self._candidate_keys(r):
                keep[r.id] = old
                self._modes[r.id] = self._mode_of(r, str(old.get("request_sha256")))
            else:
                pending.append(r)
        considered = {r.id for r in self.requests}
        stale = [rid for rid in existing if rid in considered and rid not in keep]
        if stale:
            # Answers to requests that have changed since (another prompt, model or grammar
            # mode): moved aside, never deleted, so that outputs.jsonl matches the build and
            # nothing paid for is lost. Appended there first: a crash in between duplicates.
            self.result.dropped_stale = len(stale)
            replaced = self.out_path.with_name(REPLACED_FILE)
            with open(replaced, "a", encoding="utf-8", newline="\n") as f:  # noqa: ASYNC230
                f.writelines(canonical_json(existing[k]) + "\n" for k in stale)
            write_atomic(
                self.out_path, (canonical_json(v) for k, v in existing.items() if k not in stale)
            )
            self.progress(
                f"{len(stale)} answer(s) in {self.out_path.name} are for requests "
                "that have changed since (prompt, model or grammar mode); moved to "
                f"{replaced.name} and sent again: {', '.join(sorted(stale)[:5])}"
                + (" …" if len(stale) > 5 else "")
            )
        self.result.skipped = len(keep)
        if keep:
            self.progress(
                f"resuming: {len(keep)} of {len(self.requests)} request(s) already "
                f"answered in {self.out_path}"
            )
        for r in self.requests:
            if r.id in keep:
                self._parse(r, keep[r.id]["output"])

        self.out_path.parent.mkdir(parents=True, exist_ok=True)
        # Blocking file writes are fine here: one short line per answer, and they must be
        # flushed before the next answer is awaited.
        with open(self.out_path, "a", encoding="utf-8", newline="\n") as out:  # noqa: ASYNC230
            to_send: list[BuildRequest] = []
            for r in pending:  # answers cached under any body this run could send
                hit = self._cached(r)
                if hit is None:
                    to_send.append(r)
                    continue
                key, response = hit
                self._record(out, r, key, response)
                self.result.cached += 1
                self._tick(r, "from cache")
            if to_send:
                await self._send_all(out, to_send)
        self._finish()
        return self.result

    # -- bodies -----------------------------------------------------------------------------

    def _modes_to_try(self) -> list[tuple[str, ServerKind]]:
        if self.mode == "auto":
            return [("gbnf", "other"), ("none", "other")]
        if self.mode == "json_schema":
            return [("json_schema", "other"), ("json_schema", "llama-cpp-python")]
        return [(self.mode, "other")]

    def _body(self, r: BuildRequest, mode: str, server: ServerKind) -> dict[str, Any]:
        task = None
        if mode == "gbnf" and r.kind == "auto-demo":  # its questions are pinned in its grammar
            if self._task is None:
                self._task = (
                    self.parser.task
                    if self.parser is not None
                    else build_task(self.build, self.spec)
                )
            task = self._task
        elif mode == "gbnf" and self.parser is not None:  # per-item options, if any
            task = self.parser.task
        return request_body(
            r,
            self.build,
            mode,  # type: ignore[arg-type]
            server,
            self.model,
            task,
        )

    def _candidate_keys(self, r: BuildRequest) -> dict[str, str]:
        """Cache key → grammar mode, for every body this run might send for ``r``."""
        out: dict[str, str] = {}
        for mode, server in self._modes_to_try():
            try:
                out[cache_key(self.base_url, self._body(r, mode, server))] = mode
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
            if hit is not None:
                self._modes[r.id] = mode
                return key, hit
        return None

    # -- sending ----------------------------------------------------------------------------

    async def _send_all(self, out: Any, requests: list[BuildRequest]) -> None:
        import openai

        self._client = openai.AsyncOpenAI(
            base_url=self.base_url,
            api_key=self._secret or NO_KEY,
            timeout=self.timeout,
            max_retries=0,  # retried here, to count attempts and say what failed
        )
        try:
            mode, server = await self._resolve(requests)
            if mode is None:
                return
            self.result.grammar = mode
            self.progress(
                f"sending {len(requests)} request(s) to {self.base_url} "
                f"(grammar: {mode}, concurrency {self.concurrency})"
            )
            gate = asyncio.Semaphore(self.concurrency)

            async def one(r: BuildRequest) -> None:
                async with gate:
                    await self._send_one(out, r, mode, server)

            await asyncio.gather(*(one(r) for r in requests))
        finally:
            await self._client.close()

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

    async def _send_one(self, out: Any, r: BuildRequest, mode: str, server: ServerKind) -> None:
        body = self._body(r, mode, server)
        key = cache_key(self.base_url, body)
        kwargs = split_params(self._client.chat.completions.create, body)
        attempts = 0
        started = time.monotonic()
        while True:
            attempts += 1
            try:
                completion = await self._client.chat.completions.create(**kwargs)
                response = response_data(completion, self._secret)
                break
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none raised
                failure = exc if isinstance(exc, Failure) else classify(exc, self._secret)
                if failure.kind in RETRYABLE and attempts <= self.max_retries:
                    delay = backoff(attempts - 1, failure.retry_after)
                    self.progress(
                        f"request {r.id}: {failure.kind} ({failure.detail}); "
                        f"retrying in {delay:.1f} s"
                    )
                    await asyncio.sleep(delay)
                    continue
                self._fail(r, failure, attempts)
                return
        if self.cache is not None and not self.cache.put(key, response):
            self.progress(
                f"request {r.id}: could not write the response cache "
                f"{self.cache.path}; the answer is kept in {self.out_path.name}"
            )
        self._modes[r.id] = mode
        self._record(out, r, key, response)
        self.result.sent += 1
        self._tick(r, f"{time.monotonic() - started:.1f} s, finish {response.get('finish_reason')}")

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
        self._done += 1
        self.progress(f"[{self._done}/{self.result.total}] {r.id} failed ({failure.kind})")

    # -- writing ----------------------------------------------------------------------------

    def _record(self, out: Any, r: BuildRequest, key: str, response: Mapping[str, Any]) -> None:
        out.write(canonical_json(output_record(r.id, key, response)) + "\n")
        out.flush()  # an interrupted run keeps every answer received
        self._parse(r, str(response.get("output", "")))

    def _parse(self, r: BuildRequest, output: str) -> None:
        if self.parser is not None:
            self._parsed[r.id] = self.parser.parse(r, output, self._modes.get(r.id, self.mode))

    def _tick(self, r: BuildRequest, note: str) -> None:
        self._done += 1
        parsed = self._parsed.get(r.id)
        if parsed is not None:
            ok = sum(1 for x in parsed if x.status == "ok")
            note += f", {ok}/{len(parsed)} items ok"
        self.progress(f"[{self._done}/{self.result.total}] {r.id} answered ({note})")

    def _finish(self) -> None:
        """Rewrites outputs.jsonl in request order (stable diffs) and writes results.jsonl."""
        existing = read_outputs(self.out_path)
        order = {r.id: k for k, r in enumerate(self.requests)}
        ordered = sorted(existing.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0]))
        self.result.failed.sort(key=lambda f: order.get(f.request_id, len(order)))
        write_atomic(self.out_path, (canonical_json(v) for _, v in ordered))
        if self.parser is None:
            return
        from promptc.parse.results import summarize

        results = [x for r in self.requests for x in self._parsed.get(r.id, [])]
        path = self.out_path.with_name(RESULTS_FILE)
        write_atomic(path, (x.to_json() for x in results))
        self.result.results_path = path
        self.result.statuses = summarize(results)
