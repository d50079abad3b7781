"""The ``chat-api`` engine: any OpenAI-compatible chat API through :class:`openai.AsyncOpenAI`.

OpenAI, vLLM, a llama.cpp server (``llama-server``, ``python -m llama_cpp.server``), a proxy:
anything that answers ``POST {base_url}/chat/completions``. The API key is read from the
environment variable the run names (:func:`promptc.apikeys.api_key`: one a header cannot
carry is a usage error) and sent in the ``Authorization`` header only; every message is
scrubbed of it. The response body is read as it arrives, at most
:data:`~promptc.run.engine.MAX_BODY_BYTES`, and its JSON read here, each part checked: a
server's wrong types fail that request (``bad-response``) or leave out its usage, never more.
``openai`` is imported when a run starts (it is a heavy optional dependency: about 0.7 s), and
its absence is a :class:`~promptc.errors.BackendError` that says what to install.

No body is read whole by the client (:mod:`promptc.replies`): the answers and ``GET /models``
are read through its streamed responses, each within its cap, and an error status's body
(which the client would read whole before raising) is read by the HTTP client's response
hook (:func:`error_hook`), at most :data:`~promptc.replies.MAX_ERROR_BYTES`, and raised as an
:class:`ErrorReply`.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptc.apikeys import BadKeyError, api_key, redact_reply
from promptc.build.targets import finish_reason, message_text
from promptc.errors import BackendError, Location, UsageError
from promptc.replies import MAX_ERROR_BYTES, ReplyTooLarge, ajoin_chunks, join_chunks
from promptc.run.context import PROBE_MAX_BYTES, PROBE_TIMEOUT, ServerContext, server_context
from promptc.run.engine import (
    MAX_BODY_BYTES,
    Failure,
    Reply,
    retry_after_seconds,
    scrub,
    usage_counts,
)
from promptc.spec.load import COMMAND_LINE
from promptc.text import canonical_json, json_int, public_url

if TYPE_CHECKING:
    from promptc.build import BuiltRequest
    from promptc.run.bodies import ServerKind
    from promptc.run.options import RunOptions

#: ``owned_by`` values of ``GET /models`` that identify a llama.cpp server (``llama-server``
#: says ``llamacpp``; llama-cpp-python's ``python -m llama_cpp.server`` says ``me``).
LLAMA_CPP_OWNERS = frozenset({"llamacpp", "me"})


#: A placeholder sent when the key's environment variable is unset: local servers ignore it,
#: and a server that needs a key answers 401, which is reported with the variable's name.
NO_KEY = "no-key-set"


#: Answers to ``GET /models`` that mean "this API has no model list": not a llama.cpp server,
#: so ``auto`` sends no grammar (and ``json_schema`` OpenAI's form) instead of failing. 401 and
#: 403 too: llama.cpp's server lists its models to anyone, even with ``--api-key``, while a key
#: may be allowed to chat and not to list models (OpenAI's restricted keys, a gateway's per
#: model keys); a key refused outright is said by the chat requests themselves.
NO_MODELS_STATUS = frozenset({400, 401, 403, 404, 405, 422, 501})


#: The most of ``GET /models`` read (bytes): the context probe's cap for the same list
#: (OpenAI's is about 10 kB; a router's of hundreds of models, about 1 MB).
MAX_MODELS_BYTES = PROBE_MAX_BYTES


def openai_module() -> Any:
    """The ``openai`` module, imported on first use (see the module's docstring).

    Raises:
        BackendError: It is not installed.
    """
    try:
        import openai  # a heavy optional dependency (see the module's docstring)
    except ImportError:
        raise BackendError(
            "promptc run needs the openai package, which is not installed",
            hint="pip install 'promptc-compiler[openai]'",
            code="missing-openai",
        ) from None
    return openai


def read_api_key(variable: str, option: str = "--api-key-env") -> str | None:
    """The API key in environment variable ``variable`` (:func:`promptc.apikeys.api_key`),
    for the command-line ``option`` that names where it comes from.

    Raises:
        UsageError: ``bad-api-key``: it holds a character an HTTP header cannot carry (the
            message names the variable, never the key).
    """
    try:
        return api_key(variable)
    except BadKeyError as e:
        raise UsageError(
            str(e),
            location=Location(COMMAND_LINE),
            path=(option,),
            hint=e.hint,
            code="bad-api-key",
        ) from None


class ChatAPI:
    """An OpenAI-compatible chat API (see the module's docstring): the ``chat-api`` engine of
    a run sending to ``url``.

    Args:
        options: The run's options (the API key's environment variable, the timeout).
        url: The API's base URL, e.g. ``https://api.openai.com/v1``.
        requests: The requests of the run.
        say: Where to report what the engine does.

    Raises:
        BackendError: ``openai`` is not installed.
        UsageError: The API key's variable holds a key a header cannot carry.
    """

    #: Whether requests carry the API key of ``options.api_key_env``.
    sends_key = True

    def __init__(
        self,
        options: RunOptions,
        url: str | None,
        requests: Sequence[BuiltRequest],
        say: Callable[[str], None],
    ) -> None:
        openai_module()  # refused now, before anything is locked, opened or started
        # Sent to; named (in messages, the summary and cache keys) without a user name or
        # password a URL may carry.
        self.url = url or ""
        self.name = public_url(self.url) if self.url else ""
        self.cache_scope = self.name
        self.answer_scope = ""
        self.model: str | None = None
        self.slots: int | None = None
        self.api_key_env = options.api_key_env
        self.timeout = options.timeout
        self.say = say
        # Refused now too, if it must be; an engine that needs no key reads none.
        self._secret = read_api_key(options.api_key_env) if self.sends_key else None
        self._usage_said = False
        self._client: Any = None
        #: The connections (network streams) answers came on, the last ones.
        self._streams: collections.deque[object] = collections.deque(maxlen=256)
        #: Clients left for new ones (:meth:`_check_replayed`), closed with the engine.
        self._retired: list[Any] = []
        #: The body asked and the reply received, by completion id (sha256 digests of each).
        self._answered: dict[str, tuple[bytes, bytes]] = {}

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def _connected(self) -> Any:
        if self._client is None:
            openai = openai_module()
            self._client = openai.AsyncOpenAI(
                base_url=self.url,
                api_key=self._secret or NO_KEY,
                timeout=self.timeout,
                max_retries=0,  # retried by the run, to count attempts and say what failed
                http_client=openai.DefaultAsyncHttpxClient(
                    event_hooks={"response": [async_error_hook]}
                ),
            )
        return self._client

    async def constraints(self) -> ServerKind:
        """``GET /models``: a model owned by ``llamacpp`` or ``me`` is llama.cpp's; an API
        without that endpoint (:data:`NO_MODELS_STATUS`) is ``other``."""
        try:
            models = await asyncio.wait_for(self._models(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is worded, none raised as is
            failure = self._failure(exc)
            if failure.status in NO_MODELS_STATUS or failure.kind == "bad-response":
                return "other"  # an API without GET /models (or an odd one): not llama.cpp
            raise failure from None
        return server_kind(models)

    async def _models(self) -> object:
        """``GET /models``, read as it arrives (at most :data:`MAX_MODELS_BYTES`), as JSON.

        Raises:
            Failure: ``bad-response``: not JSON.
            ReplyTooLarge: Longer than its cap.
        """
        async with self._connected().models.with_streaming_response.list() as response:
            data = await ajoin_chunks(
                response.iter_bytes(), MAX_MODELS_BYTES, "the reply of GET /models", self.url
            )
        try:
            return json.loads(data.decode("utf-8-sig"))
        except (ValueError, RecursionError) as e:
            raise Failure("bad-response", None, f"GET /models is not JSON: {e}") from None

    async def context(self, model: str | None) -> ServerContext | None:
        return await asyncio.to_thread(
            server_context, self.url, self._secret, model, min(PROBE_TIMEOUT, self.timeout)
        )

    async def send(self, body: Mapping[str, Any]) -> Reply:
        try:
            # The whole answer within the timeout: the client's own timeout bounds each read,
            # and a server trickling a byte at a time would never trip it.
            data, reused = await asyncio.wait_for(self._post(body), self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is worded, none raised as is
            raise self._failure(exc) from None
        reply, dropped = reply_of(data, self._secret)
        self._check_replayed(body, data, reply, reused)
        if dropped is not None and not self._usage_said:
            self._usage_said = True
            self.say(
                f"{self.name} answered with token usage promptc cannot read ({dropped}): "
                "left out, the answers kept (said once)"
            )
        return reply

    def _check_replayed(
        self, body: Mapping[str, Any], data: bytes, reply: Reply, reused: bool
    ) -> None:
        """Refuses a reply, read on a kept-alive connection, that is, byte for byte and by
        its completion ``id``, one received in this run for another body: a proxy (or
        server) that sent a response twice, whose copy the HTTP client took for the next
        request's answer. The connections are then left for new ones (the copies wait in
        them). (A server that gives every request the same answer on a new connection
        each time is no such case.)

        Raises:
            Failure: ``replayed`` (retried).
        """
        if reply.completion_id is None:
            return
        asked = hashlib.sha256(canonical_json(body).encode()).digest()
        received = hashlib.sha256(data).digest()
        first = self._answered.setdefault(reply.completion_id, (asked, received))
        if reused and first[0] != asked and first[1] == received:
            if self._client is not None:
                self._retired.append(self._client)
                self._client = None
            what = f"completion id {reply.completion_id}"
            raise Failure("replayed", None, scrub(what, self._secret))

    async def _post(self, body: Mapping[str, Any]) -> tuple[bytes, bool]:
        """``POST /chat/completions`` with ``body`` as it is, and the response body, read as
        it arrives (the client's streamed response, which its README documents); and
        whether it came on a connection that had answered before (its network stream,
        which the HTTP library names in the response's extensions)."""
        openai = openai_module()
        create = self._connected().chat.completions.with_streaming_response.create
        # create() wants model and messages; the body, as extra_body, goes over them as it
        # is, with the parameters create() does not know (grammar, top_k…).
        async with create(
            model=body.get("model", openai.NOT_GIVEN),
            messages=body.get("messages", []),
            extra_body=dict(body),
        ) as response:
            stream = response.http_response.extensions.get("network_stream")
            reused = stream is not None and any(stream is s for s in self._streams)
            if stream is not None and not reused:
                self._streams.append(stream)
            return await read_body(response.iter_bytes(), self.url), reused

    async def close(self) -> None:
        if self._client is not None:
            self._retired.append(self._client)
            self._client = None
        while self._retired:
            await self._retired.pop().close()

    def _failure(self, exc: BaseException) -> Failure:
        if isinstance(exc, TimeoutError):
            return Failure("timeout", None, f"no complete answer within {self.timeout:g} s")
        if isinstance(exc, ReplyTooLarge):
            return Failure("reply-too-large", None, exc.message)
        return exc if isinstance(exc, Failure) else classify(exc, self._secret)


# --------------------------------------------------------------------------------------------
# Error statuses, read by the HTTP client's response hook
# --------------------------------------------------------------------------------------------


class ErrorReply(Exception):
    """An error status (4xx, 5xx) and what its body says, read by :func:`error_hook` in place
    of the openai client (which would read the body whole before raising its own error).

    Attributes:
        status: The HTTP status.
        headers: The response's headers (``Retry-After``).
        detail: The body's ``error.message`` (or its text), or what cut it short.
    """

    def __init__(self, status: int, headers: Mapping[str, str], detail: str) -> None:
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.headers = headers
        self.detail = detail


def error_hook(response: Any, seconds: float | None = None) -> None:
    """The response hook (``event_hooks``, httpx's public interface) of the clients the
    engines talk through: an error status's body read here, at most
    :data:`~promptc.replies.MAX_ERROR_BYTES` (within ``seconds`` when given), and raised as an
    :class:`ErrorReply`; other responses are left to their readers.

    Raises:
        ErrorReply: The status is 400 or more, or a redirect's body may be longer than the
            cap (:func:`check_redirect`).
        ReplyTooSlow: The error body took longer than ``seconds``.
    """
    check_redirect(response)
    if response.status_code < 400:
        return
    try:
        body = join_chunks(
            response.iter_bytes(), MAX_ERROR_BYTES, *_error_source(response), seconds
        )
    except ReplyTooLarge as e:
        raise ErrorReply(response.status_code, dict(response.headers), e.message) from None
    raise ErrorReply(response.status_code, dict(response.headers), error_detail(body))


async def async_error_hook(response: Any) -> None:
    """:func:`error_hook` of an asynchronous client.

    Raises:
        ErrorReply: The status is 400 or more, or a redirect's body may be longer than the
            cap (:func:`check_redirect`).
    """
    check_redirect(response)
    if response.status_code < 400:
        return
    try:
        body = await ajoin_chunks(response.aiter_bytes(), MAX_ERROR_BYTES, *_error_source(response))
    except ReplyTooLarge as e:
        raise ErrorReply(response.status_code, dict(response.headers), e.message) from None
    raise ErrorReply(response.status_code, dict(response.headers), error_detail(body))


#: The redirects a client follows with a GET, whatever the request's method was.
POST_TO_GET = (301, 302, 303)


def check_redirect(response: Any) -> None:
    """A redirect the client would follow, refused when it would turn the request into a GET
    (:data:`POST_TO_GET`: 307 and 308 keep the method and the body, and are followed), or
    unless its body declares a length within :data:`~promptc.replies.MAX_ERROR_BYTES`: the
    client reads that body whole before it follows (a declared length bounds that read; a
    chunked body or one read to the end of the connection has none).

    Raises:
        ErrorReply: A redirect that would make the request a GET (its status and where it
            points), or whose body may be longer than the cap.
    """
    if not response.has_redirect_location:
        return
    request = response.request
    if response.status_code in POST_TO_GET and request.method not in ("GET", "HEAD"):
        # The client would follow it as a GET, without the body: the server there answers
        # something else (a 404, a page), which would be reported as the URL's own answer.
        location = request.url.join(response.headers.get("location", ""))
        raise ErrorReply(
            response.status_code,
            dict(response.headers),
            f"{request.method} {public_url(str(request.url))} is redirected to "
            f"{public_url(str(location))}, which would be sent as a GET without the request",
        )
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) <= MAX_ERROR_BYTES:
        return
    url = public_url(str(response.request.url))
    raise ErrorReply(
        response.status_code,
        dict(response.headers),
        f"a redirect from {url} whose body may be over {MAX_ERROR_BYTES:,} bytes "
        "(it declares no length within that); promptc does not follow it",
    )


def _error_source(response: Any) -> tuple[str, str]:
    """What an error body is and where it comes from, for :class:`ReplyTooLarge`."""
    request = response.request
    what = f"the error body (HTTP {response.status_code}) of {request.method} {request.url.path}"
    return what, str(request.url)


def error_detail(body: bytes) -> str:
    """What an error body says: its ``error.message`` (or ``message``) when it is JSON that
    has one, else its text (``an empty body`` for none)."""
    text = body.decode("utf-8", "replace")
    if not text.strip():
        return "an empty body"
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        return text
    err = data.get("error", data) if isinstance(data, Mapping) else data
    message = err.get("message") if isinstance(err, Mapping) else err
    return str(message) if message else text


# --------------------------------------------------------------------------------------------
# The openai client's exceptions and responses
# --------------------------------------------------------------------------------------------


def classify(exc: BaseException, secret: str | None) -> Failure:
    """An openai exception (or an :class:`ErrorReply`) as a failure kind (a key of
    :data:`~promptc.run.engine.FAILURES`)."""
    if isinstance(exc, ErrorReply):
        retry_after = retry_after_seconds(exc.headers)
        return status_failure(exc.status, scrub(exc.detail, secret), retry_after)
    openai = openai_module()
    detail = scrub(str(exc) or type(exc).__name__, secret)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", None, detail)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        cut = cause is not None and transport_failure(cause, secret)
        if cut and cut.kind == "cut":
            return cut
        if cause is not None and str(cause):
            detail = scrub(f"{type(cause).__name__}: {cause}", secret)
        return Failure("connection", None, detail)
    if isinstance(exc, openai.APIStatusError):
        retry_after = retry_after_seconds(getattr(exc.response, "headers", {}) or {})
        return status_failure(exc.status_code, _status_detail(exc, secret), retry_after)
    return transport_failure(exc, secret) or Failure("bad-response", None, detail)


def transport_failure(exc: BaseException, secret: str | None = None) -> Failure | None:
    """The failure of a connection dropped or stalled mid-reply, ``None`` for any other error.
    The reply is read after the client hands over the response, so such a cut reaches the
    caller as the HTTP library's own error, not the client's. That library is httpx (httpx2
    from openai 3 on): its errors are told by their class names."""
    kinds = {c.__name__ for c in type(exc).__mro__ if c.__module__.startswith("httpx")}
    said = str(exc).strip()
    detail = scrub(f"{type(exc).__name__}: {said}" if said else type(exc).__name__, secret)
    if "TimeoutException" in kinds:
        return Failure("timeout", None, detail)
    if kinds & {"ReadError", "RemoteProtocolError"}:  # it answered, then the connection broke
        return Failure("cut", None, detail)
    if "TransportError" in kinds:
        return Failure("connection", None, detail)
    return None


def status_failure(status: int, message: str, retry_after: float | None) -> Failure:
    """The failure of an HTTP error status."""
    if status in (401, 403):
        return Failure("auth", status, message)
    if status == 404:
        return Failure("not-found", status, message)
    if status == 429:
        return Failure("rate-limit", status, message, retry_after)
    if status in POST_TO_GET:
        return Failure("redirect", status, message)
    if status in (408, 409) or status >= 500:
        return Failure("server", status, message, retry_after)
    return Failure("bad-request", status, message)


def _status_detail(exc: Any, secret: str | None) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return scrub(str(msg), secret)
    return scrub(getattr(exc, "message", "") or str(exc), secret)


async def read_body(chunks: AsyncIterator[bytes], url: str, limit: int = MAX_BODY_BYTES) -> bytes:
    """The bytes of a chat completion's body as they arrive, refused once past ``limit``.

    Raises:
        Failure: ``too-large``: the body is longer than ``limit``; the rest is not read.
    """
    try:
        return await ajoin_chunks(chunks, limit, "the answer of POST /chat/completions", url)
    except ReplyTooLarge:
        raise Failure("too-large", None, f"over {limit:,} bytes of JSON") from None


def reply_of(data: bytes, secret: str | None) -> tuple[Reply, str | None]:
    """The reply in the body of a chat completion, and what of its usage was left out
    (:func:`~promptc.run.engine.usage_counts`), if anything.

    The answer's ``content`` is read in each form the OpenAI API documents
    (:func:`promptc.build.targets.message_text`, as ``collect`` reads it); a ``content`` of
    none (or of another form) is an empty answer.

    Raises:
        Failure: ``bad-response``: the body is not JSON, or it has no ``choices[0].message``
            object.
    """
    try:
        # (json_int: a count past Python's digit limit is left out of the usage, as collect
        # does, never the whole answer)
        completion = json.loads(data.decode("utf-8-sig"), parse_int=json_int)
    except (ValueError, RecursionError) as e:
        # A gateway that streams though no stream was asked: its answer is in the events.
        completion = streamed_completion(data, secret)
        if completion is None:
            if ends_inside_json(data, e):
                # HTTP could not tell (no declared length, the connection closed): a cut.
                raise Failure("cut", None, scrub(f"its body ends inside its JSON: {e}", secret))
            what = scrub(f"its body is not JSON: {e}", secret)
            raise Failure("bad-response", None, what) from None
    try:
        # A reply that echoes the key (a debugging proxy, a hostile endpoint), in its answer,
        # its finish_reason or the name of a usage count, would write it to outputs.jsonl,
        # the cache and the progress lines: all of it is read with *** in its place (a
        # placeholder key such as EMPTY leaves it as it is).
        completion = redact_reply(completion, secret)
    except RecursionError:
        raise Failure("bad-response", None, "its body is JSON nested too deep") from None
    if not isinstance(completion, dict):
        raise Failure("bad-response", None, "its body is JSON but not an object")
    choices = completion.get("choices")
    if not isinstance(choices, list) or not choices:
        what = "empty" if isinstance(choices, list) else f"{json_type(choices)}, not a list"
        # Some proxies answer an error with status 200 and the error's body: say its words.
        error = completion.get("error")
        said = error.get("message") if isinstance(error, dict) else error
        if isinstance(said, str) and said.strip():
            what += f"; the server said: {scrub(said, secret)}"
        raise Failure("bad-response", None, f"choices is {what}")
    choice = choices[0]
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise Failure("bad-response", None, "choices[0].message is not an object")
    finish = choice.get("finish_reason")
    usage, dropped = usage_counts(completion.get("usage"))
    refusal = message.get("refusal")
    ident = completion.get("id")
    reply = Reply(
        message_text(message.get("content")) or "",
        finish_reason(finish),
        usage,
        scrub(refusal, secret) if isinstance(refusal, str) and refusal else None,
        ident if isinstance(ident, str) and ident.strip() else None,
    )
    return reply, (scrub(dropped, secret) if dropped is not None else None)


def streamed_completion(data: bytes, secret: str | None = None) -> dict[str, Any] | None:
    """The completion a server-sent event stream of chat completion chunks makes
    (``data: {…}`` lines, then ``data: [DONE]``): each chunk's ``choices[0].delta.content``
    joined, the last ``finish_reason`` and ``usage`` given; ``None`` when ``data`` is no
    such stream.

    Raises:
        Failure: ``server``: an event is an error (``data: {"error": …}``: vLLM and SGLang
            fail a stream so, then end it with ``data: [DONE]``), whatever came before it;
            ``bad-response``: the stream ended with neither ``data: [DONE]`` nor a
            ``finish_reason``: it was cut.
    """
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    events = [line[5:].strip() for line in text.splitlines() if line.startswith("data:")]
    if not events or not text.lstrip().startswith(("data:", ":", "event:", "id:")):
        return None
    parts: list[str] = []
    ident: object = None
    finish: object = None
    usage: object = None
    done = False
    for event in events:
        if event == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(event, parse_int=json_int)
        except (ValueError, RecursionError):
            return None
        if not isinstance(chunk, dict):
            return None
        if chunk.get("error"):
            raise stream_error(chunk["error"], secret)
        usage = chunk.get("usage") or usage
        ident = ident or chunk.get("id")
        choices = chunk.get("choices")
        choice = choices[0] if isinstance(choices, list) and choices else None
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            parts.append(content)
        finish = choice.get("finish_reason") or finish
    if not done and finish is None:
        # Neither the end of the stream nor a reason to stop: the connection was cut inside
        # the answer, whose last value may be cut too (``1`` of ``17``).
        raise Failure("bad-response", None, "the event stream ended before its data: [DONE]")
    message = {"role": "assistant", "content": "".join(parts)}
    return {"id": ident, "choices": [{"message": message, "finish_reason": finish}], "usage": usage}


def ends_inside_json(data: bytes, error: Exception) -> bool:
    """Whether a body that is not JSON starts as a JSON object and ends inside it: a body cut
    short (its last character cut, or its JSON unfinished at its end)."""
    if not data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        return False
    if isinstance(error, UnicodeDecodeError):
        return error.end >= len(data)
    if not isinstance(error, json.JSONDecodeError):
        return False
    return error.msg.startswith("Unterminated string") or error.pos >= len(error.doc.rstrip())


def stream_error(error: object, secret: str | None) -> Failure:
    """The failure of an error event in an answer's stream: a server error (retried), with
    the event's ``code`` when it is an HTTP error status (else 500) and its ``message``."""
    code = error.get("code") if isinstance(error, dict) else None
    said = error.get("message") if isinstance(error, dict) else error
    status = code if type(code) is int and 400 <= code <= 599 else 500
    what = f": {said}" if isinstance(said, str) and said.strip() else ""
    return Failure("server", status, scrub(f"its event stream reports an error{what}", secret))


def json_type(value: object) -> str:
    """What a JSON value is, as a message names it (``an object``, ``missing``…)."""
    if value is None:
        return "missing or null"
    for kind, name in ((bool, "a boolean"), (str, "a string"), (dict, "an object")):
        if isinstance(value, kind):
            return name
    return "a number" if isinstance(value, int | float) else "a list"


def server_kind(models: object) -> ServerKind:
    """Which llama.cpp server (if any) answered ``GET /models`` (its JSON), by its models'
    ``owned_by``."""
    listed = models.get("data") if isinstance(models, Mapping) else None
    entries = listed if isinstance(listed, list) else []
    owners = {
        owner
        for m in entries
        if isinstance(m, Mapping) and isinstance(owner := m.get("owned_by"), str)
    }
    if "me" in owners:
        return "llama-cpp-python"
    if owners & LLAMA_CPP_OWNERS:
        return "llama.cpp"
    return "other"
