"""Answering requests: from the response cache, else from the engine — the grammar mode
resolved once, the server's context checked once, each request retried with backoff — and
every failure worded as a :class:`~promptc.run.result.RequestFailure`, never raised.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from promptc.run.bodies import Bodies, SendMode, ServerKind, cache_key
from promptc.run.context import fit_warning, largest_need
from promptc.run.engine import (
    FAILURES,
    MAX_OUTPUT_CHARS,
    RETRYABLE,
    Engine,
    Failure,
    Reply,
    backoff,
)
from promptc.run.progress import Events, items_of
from promptc.run.result import RequestFailure, RunResult

if TYPE_CHECKING:
    from promptc.build import BuiltRequest
    from promptc.run.cache import ResponseCache
    from promptc.run.options import RunOptions

#: Called with each answer as it arrives: the request, the cache key of what was sent, the
#: response (``output``, ``finish_reason``, ``usage``) and a note for the progress line.
Record = Callable[["BuiltRequest", str, Mapping[str, Any], str], None]

T = TypeVar("T")


class Sender:
    """Answers a run's requests (see the module's docstring).

    Args:
        engine: What requests are sent through.
        bodies: What is sent for each request, and its cache keys.
        cache: The response cache, or ``None``.
        options: The run's options (concurrency, retries, names for messages).
        events: Where progress and notes go.
        record: Called with each answer, from the cache or the engine.
        result: Where failures and empty answers are counted (and where the outputs go).
    """

    def __init__(
        self,
        engine: Engine,
        bodies: Bodies,
        cache: ResponseCache | None,
        options: RunOptions,
        events: Events,
        record: Record,
        result: RunResult,
    ) -> None:
        self.engine = engine
        self.bodies = bodies
        self.cache = cache
        self.options = options
        self.events = events
        self.record = record
        self.result = result
        #: The cache keys of every body asked in this run (from the cache or the engine).
        self.asked: set[str] = set()
        #: The answer (``None`` once it failed) of each body sent in this run, by cache key: a
        #: request of the same body in flight or later waits for it instead of paying again
        #: (items with the same text; a voting round's one-item repair, same in every round),
        #: as the cache would answer it once written. Not used without the cache.
        self.sending: dict[str, asyncio.Future[Mapping[str, Any] | None]] = {}
        #: Requests answered with another request's answer to the same body (not sent).
        self.twins = 0
        self._context_checked = False

    async def answer(self, requests: Sequence[BuiltRequest], label: str) -> tuple[int, int]:
        """Answers ``requests`` (a pass of the run called ``label``) from the cache, else
        from the engine.

        Returns:
            How many were answered from the cache, and how many by the engine.
        """
        self.events.start(len(requests), sum(items_of(r) for r in requests), label)
        to_send: list[BuiltRequest] = []
        cached = 0
        for r in requests:
            hit = self.cache.lookup(self.bodies.keys(r)) if self.cache is not None else None
            if hit is None:
                to_send.append(r)
                continue
            key, response = hit
            self.asked.add(key)
            self.record(r, key, response, "from cache")
            cached += 1
        twins = self.twins
        sent = await self._send_all(to_send) if to_send else 0
        # A request answered by its twin's answer was not sent: it counts as from the cache.
        shared = self.twins - twins
        return cached + shared, sent - shared

    async def _send_all(self, requests: Sequence[BuiltRequest]) -> int:
        if self.bodies.resolved is None:
            resolved = await self._resolve(requests)
            if resolved is None:
                return 0
            self.bodies.resolved = resolved
            self.result.grammar = resolved[0]
        mode, server = self.bodies.resolved
        if not self._context_checked:
            self._context_checked = True  # once a run: the server's context does not change
            await self._check_context(requests, mode)
        concurrency = min(self.options.concurrency, self.engine.slots or self.options.concurrency)
        self.events.note(
            f"sending {len(requests)} request(s) to {self.engine.name} "
            f"(grammar: {mode}, concurrency {concurrency})"
        )
        gate = asyncio.Semaphore(concurrency)
        ended: list[BaseException] = []

        async def one(r: BuiltRequest) -> bool:
            async with gate:
                if ended:  # the pass ended (a full disk) while this one waited: not sent
                    return False
                try:
                    return await self._send_one(r, mode, server)
                except BaseException as e:
                    ended.append(e)  # before the gate lets the next one in
                    raise

        tasks = [asyncio.ensure_future(one(r)) for r in requests]
        try:
            return sum(await asyncio.gather(*tasks))
        finally:
            # The first error (a full disk, Ctrl-C) ends the pass: the other requests are
            # stopped and awaited here, while outputs.jsonl is still open. Left to asyncio.run's
            # shutdown, one that was mid-answer could reach the outputs file after it closed
            # and print a traceback at exit (tests/test_disk_errors.py saw it now and then).
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _resolve(
        self, requests: Sequence[BuiltRequest]
    ) -> tuple[SendMode, ServerKind] | None:
        """The grammar mode and engine form to send with (asks the engine when it matters);
        ``None`` when the engine could not be asked (every request then failed)."""
        mode = self.bodies.mode
        if mode != "auto" and mode != "json_schema":
            return mode, "other"
        try:
            server = await self._retrying(self.engine.constraints)
        except Failure as e:
            for r in requests:
                self._fail(r, e, during="asking it which grammar it takes (GET /models)")
            return None
        if mode == "json_schema":
            return "json_schema", server
        # A repair request or a voting stand-in has no grammar file of the build's: its
        # grammar is made for its items (bodies.made), so it takes one as any request does.
        grammars = server != "other" and all(
            r.grammar or r.id in self.bodies.made for r in requests
        )
        return ("gbnf" if grammars else "none"), server

    async def _check_context(self, requests: Sequence[BuiltRequest], mode: SendMode) -> None:
        """Warns when the largest request may not fit the engine's context, if it says
        (:mod:`promptc.run.context`), with each request's ``max_tokens`` as sent in ``mode``;
        silent when it does not."""
        need = largest_need(requests, lambda r: self.bodies.params(r, mode))
        if need is None:
            return
        model = self.bodies.model or requests[0].params.get("model")
        context = await self.engine.context(str(model) if model is not None else None)
        warning = fit_warning(need, context) if context is not None else None
        if warning is not None:
            self.events.note(warning)

    async def _send_one(self, r: BuiltRequest, mode: SendMode, server: ServerKind) -> bool:
        body = self.bodies.body(r, mode, server)
        key = cache_key(self.engine.cache_scope, body)
        self.asked.add(key)
        # Without the cache (--no-cache: samples at temperature > 0), every ask is its own.
        twin = self.sending.get(key) if self.cache is not None else None
        if twin is not None:
            response = await asyncio.shield(twin)
            if response is not None:
                self.twins += 1
                self.record(r, key, response, "the answer to the same prompt, asked once")
                return True
        sent: asyncio.Future[Mapping[str, Any] | None] = asyncio.get_running_loop().create_future()
        self.sending[key] = sent
        try:
            return await self._ask(r, body, key, sent)
        finally:
            if not sent.done():
                sent.set_result(None)

    async def _ask(
        self,
        r: BuiltRequest,
        body: Mapping[str, Any],
        key: str,
        sent: asyncio.Future[Mapping[str, Any] | None],
    ) -> bool:
        """Sends ``body`` for ``r``, records its answer and hands it to ``sent`` (for the
        requests of the same body); False if it failed."""
        started = time.monotonic()

        async def send() -> Reply:
            reply = await self.engine.send(body)
            if len(reply.text) > MAX_OUTPUT_CHARS:
                raise Failure("too-large", None, f"{len(reply.text):,} characters")
            return reply

        def retrying_note(failure: Failure, delay: float) -> None:
            self.events.note(
                f"request {r.id}: {failure.kind} ({failure.detail}); retrying in {delay:.1f} s"
            )

        try:
            reply = await self._retrying(send, retrying_note)
        except Failure as e:
            self._fail(r, e)
            return False
        response = reply.response()
        if not reply.text.strip():  # white space alone says nothing either
            # Recorded (it is what the server said) but not cached: the next run asks again.
            self.result.empty += 1
            said = (
                f"the model refused: {reply.refusal}"
                if reply.refusal
                else "the server's answer is empty"
            )
            self.events.note(f"request {r.id}: {said}")
        elif self.cache is not None and not self.cache.put(key, response):
            self.events.note(
                f"request {r.id}: could not write the response cache "
                f"{self.cache.path}; the answer is kept in {self.result.outputs_path.name}"
            )
        if reply.text.strip():
            sent.set_result(response)  # an answer: the requests of the same prompt take it
        elapsed = time.monotonic() - started
        self.record(r, key, response, f"{elapsed:.1f} s, finish {reply.finish_reason}")
        return True

    async def _retrying(
        self,
        call: Callable[[], Awaitable[T]],
        on_retry: Callable[[Failure, float], None] | None = None,
    ) -> T:
        """``call()``, again after a retryable failure, at most ``max_retries`` more times.

        Raises:
            Failure: The last attempt's (with the number of attempts), or a failure not worth
                another.
        """
        attempts = 0
        while True:
            attempts += 1
            try:
                return await call()
            except Failure as failure:
                if failure.kind not in RETRYABLE or attempts > self.options.max_retries:
                    failure.attempts = attempts
                    raise
                delay = backoff(attempts - 1, failure.retry_after)
                if on_retry is not None:
                    on_retry(failure, delay)
                await asyncio.sleep(delay)

    def _fail(self, r: BuiltRequest, failure: Failure, during: str = "") -> None:
        # The grammar as sent: ``auto`` may have resolved to none (then no hint to drop it).
        sent = self.bodies.resolved[0] if self.bodies.resolved is not None else self.bodies.mode
        fill = {
            "base_url": self.engine.name,
            "timeout": self.options.timeout,
            "api_key_env": self.options.api_key_env,
            "model": str(self.bodies.model or r.params.get("model", "")),
            "detail": failure.detail,
            "status": failure.status,
            "grammar_hint": ", or try --grammar none (the server may not accept a grammar)"
            if sent != "none"
            else "",
        }
        what_t, check_t = FAILURES[failure.kind]
        what = what_t.format(**fill)
        if during:
            what = f"{what} while {during}"
            if failure.kind == "timeout":  # no answer was asked for: max_tokens is no cause
                check_t = "raise --timeout, or check the server's log (it did not answer)"
        self.result.failed.append(
            RequestFailure(r.id, failure.kind, what, check_t.format(**fill), failure.attempts)
        )
        self.events.failed(r.id, items_of(r), failure.kind)
