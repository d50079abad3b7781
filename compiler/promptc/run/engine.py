"""What ``promptc run`` sends requests through: the :class:`Engine` interface, the
:class:`Reply` it gives, and the :class:`Failure` it raises, worded for people.

::

    run_build ─▶ Sender (cache, retries, backoff) ─▶ Engine.send(body) ─▶ Reply(text, finish, usage)

An engine sends one request body (the JSON of ``POST /chat/completions``: model, messages,
parameters and, when asked, a grammar) and returns the answer's text, finish reason and token
usage, or raises a :class:`Failure` of one of the kinds of :data:`FAILURES`. The response
cache, resume, repair rounds and progress sit above it and are the same for every engine.
The engines, by the name :data:`promptc.run.orchestrate.ENGINES` gives them:

============  ===================================================================================
``chat-api``  :class:`promptc.run.chat_api.ChatAPI`: any OpenAI-compatible chat API (OpenAI,
              vLLM, a llama.cpp server…) through ``openai.AsyncOpenAI``
``local``     :class:`promptc.run.local.Embedded`: llama.cpp's server, started and stopped by
              promptc, spoken to as a chat API
``batch-api`` :class:`promptc.run.batch_api.BatchAPI`: OpenAI's Batch API, which takes a whole
              build at once (a :class:`WholeBuildEngine`)
============  ===================================================================================

A new engine is one class with the attributes and methods of :class:`Engine`, made as
``Class(options, url, requests, say)`` (:data:`~promptc.run.orchestrate.EngineFactory`),
entered in that table. An engine that takes many requests at once and answers them later (a
batch service) is a :class:`WholeBuildEngine` instead: ``run_build`` hands it the build, and
it returns the run's result, its answers collected as ``promptc collect`` collects them.
"""

from __future__ import annotations

import contextlib
import email.utils
import math
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from promptc.apikeys import redact

if TYPE_CHECKING:
    from pathlib import Path

    from promptc.run.bodies import ServerKind
    from promptc.run.context import ServerContext
    from promptc.run.progress import Events
    from promptc.run.result import RunResult

DEFAULT_TIMEOUT = 600.0  # seconds; a small local model on two cores can take minutes per batch


DEFAULT_MAX_RETRIES = 3


#: Backoff before retry k (0-based) is BACKOFF_BASE * 2**k seconds, at most BACKOFF_MAX, plus
#: up to 10 % jitter so that concurrent requests do not retry in lockstep.
BACKOFF_BASE = 0.5


BACKOFF_MAX = 30.0


#: What a failure means and what to check, by kind. ``{base_url}`` (the engine's name),
#: ``{timeout}``, ``{api_key_env}``, ``{model}``, ``{status}``, ``{detail}`` and
#: ``{grammar_hint}`` are filled in. Tested word for word.
FAILURES: Mapping[str, tuple[str, str]] = {
    "connection": (
        "could not connect to {base_url} ({detail})",
        "check that the server is running and that --base-url is right",
    ),
    "cut": (
        "the connection to {base_url} was cut while the answer was read ({detail})",
        "check the server's log (it may have stopped or restarted); run again to resume",
    ),
    "timeout": (
        "no answer within {timeout:g} s",
        "raise --timeout, lower the model's max_tokens, or lower --concurrency",
    ),
    "auth": (
        "the server refused the API key (HTTP {status}: {detail})",
        "check the environment variable {api_key_env}",
    ),
    "not-found": (
        "HTTP 404 from {base_url}/chat/completions ({detail})",
        "check --base-url (it usually ends in /v1) and the model name {model!r}",
    ),
    "redirect": (
        "the server redirected the request (HTTP {status}: {detail})",
        (
            "give --base-url the address it redirects to: promptc does not follow a "
            "redirect that would send the request again as a GET"
        ),
    ),
    "rate-limit": (
        "rate limited (HTTP 429: {detail})",
        "lower --concurrency, or wait and run again: answers so far are kept",
    ),
    "bad-request": (
        "the server rejected the request (HTTP {status}: {detail})",
        "check the model parameters in the spec{grammar_hint}",
    ),
    "server": (
        "server error (HTTP {status}: {detail})",
        "check the server's log; run again to resume",
    ),
    "too-large": (
        "the answer is {detail}, more than promptc stores for one request",
        "lower the model's max_tokens in the spec",
    ),
    "replayed": (
        "the answer received is the one {base_url} gave another request ({detail})",
        (
            "check what stands between promptc and the server (a proxy may send an answer "
            "twice); run again to resume"
        ),
    ),
    "bad-response": (
        "the server's answer is no chat completion ({detail})",
        "check that --base-url points at an OpenAI-compatible chat API",
    ),
    "reply-too-large": (
        "{detail}",
        "check that --base-url is the server meant (another service may answer there)",
    ),
}


#: The largest answer stored for one request (characters): a runaway server is refused per
#: request instead of filling the disk (a 135M model at max_tokens 2048 writes ~10 kB).
MAX_OUTPUT_CHARS = 8_000_000


#: The largest response body read for one request (bytes), counted as it arrives: an answer
#: of :data:`MAX_OUTPUT_CHARS` characters, each written as a JSON escape (``\uXXXX``, 6
#: bytes), and 2 MB for the rest. Past it the body is not read on: a server streaming a
#: gigabyte held it all in memory (3.7 GB) before the answer's length was checked.
MAX_BODY_BYTES = 6 * MAX_OUTPUT_CHARS + 2_000_000


#: The largest token count read from a server (or a file it wrote): past it a count is not
#: tokens but garbage, and 10**400 would overflow the float arithmetic of rates and costs.
MAX_TOKENS = 10**15


#: The failures worth another attempt (after a backoff): the next one may well succeed.
RETRYABLE = frozenset({"connection", "cut", "timeout", "rate-limit", "server", "replayed"})


# --------------------------------------------------------------------------------------------
# The interface
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Reply:
    """What an engine answered to one request.

    Attributes:
        text: The answer's text (``""`` when the model said nothing).
        finish_reason: Why the model stopped (``stop``, ``length``…), if the engine says.
        usage: Token counts as the engine reports them (``prompt_tokens``,
            ``completion_tokens``, ``total_tokens``…), if it does.
        refusal: Why the model declined to answer, when it says (the API's ``refusal``).
        completion_id: The completion's ``id``, when the server gives one (not kept).
    """

    text: str
    finish_reason: str | None = None
    usage: Mapping[str, Any] | None = None
    refusal: str | None = None
    completion_id: str | None = None

    def response(self) -> dict[str, Any]:
        """The reply as the response cache and ``outputs.jsonl`` keep it."""
        response = {
            "output": self.text,
            "finish_reason": self.finish_reason,
            "usage": dict(self.usage) if self.usage is not None else None,
        }
        if self.refusal and not self.text.strip():
            # The server's answer too: kept, so that a refusal is told from an empty answer.
            response["refusal"] = self.refusal
        return response


@dataclass
class Failure(Exception):
    """A request (or a question to the engine) that failed, as one kind of :data:`FAILURES`.

    Attributes:
        kind: A key of :data:`FAILURES`.
        status: The HTTP status, when there was one.
        detail: What the engine said, without secrets, kept short.
        retry_after: Seconds the server asked to wait before the next attempt.
        attempts: How many attempts failed, once the caller gives up.
    """

    kind: str
    status: int | None
    detail: str
    retry_after: float | None = None
    attempts: int = 1


class Engine(Protocol):
    """What ``promptc run`` sends requests through (see the module's docstring).

    Attributes:
        name: Where requests go, as messages and the summary name it (a URL).
        cache_scope: What besides the body decides an answer: the endpoint part of every
            cache key (a URL; for the embedded model, its model file).
        answer_scope: What besides the body decides whether an answer in ``outputs.jsonl``
            answers the request a resumed run would send: nothing for a server (the body
            names the model, and a server at a new address answers as it did), the model
            file for the embedded model.
        model: The model name sent when the caller names none and the engine has its own
            (the embedded model's alias); ``None`` to send the build's.
        slots: How many requests the engine answers at once, when it knows (the embedded
            server has one slot): ``--concurrency`` is held to it, so that no request waits
            in the server's queue with its timeout running; ``None`` when only the server
            knows.
    """

    name: str
    cache_scope: str
    answer_scope: str
    model: str | None
    slots: int | None

    def start(self) -> None:
        """Makes the engine ready to send (starts a server); called once, before the run's
        event loop.

        Raises:
            PromptcError: The engine cannot start (with what to install or check).
        """

    def stop(self) -> None:
        """Releases what :meth:`start` made (stops the server); called once, also after an
        error or Ctrl-C, and also when :meth:`start` did not finish."""

    async def constraints(self) -> ServerKind:
        """The form in which the engine takes answer constraints: ``llama.cpp`` and
        ``llama-cpp-python`` take GBNF (and JSON Schema, the latter in its own form),
        ``other`` takes JSON Schema in OpenAI's form only.

        Raises:
            Failure: The engine could not be asked.
        """
        ...

    async def context(self, model: str | None) -> ServerContext | None:
        """The model's context length, if the engine says; ``None`` otherwise (never raises)."""
        ...

    async def send(self, body: Mapping[str, Any]) -> Reply:
        """Sends one request body and waits (at most the run's timeout) for the whole answer.

        Raises:
            Failure: The request failed (one attempt: retries are the caller's).
        """
        ...

    async def close(self) -> None:
        """Closes what sending opened (connections), before the run's event loop ends."""


@runtime_checkable
class WholeBuildEngine(Protocol):
    """An engine that takes a whole build at once and answers it later (the Batch API):
    what it sends, how it waits and where it keeps its progress are its own; it writes
    ``outputs.jsonl`` and ``results.jsonl`` through the reader ``promptc collect`` uses, and
    a run of it again resumes where the last one stopped.

    Attributes:
        name: Where requests go (a URL).
    """

    name: str

    def run_whole(self, build: Path, events: Events) -> RunResult:
        """Sends (or resumes) the build, waits for its answers and collects them.

        Raises:
            PromptcError: The build cannot go to this engine; another run holds it.
        """
        ...


# --------------------------------------------------------------------------------------------
# What every engine's failures share
# --------------------------------------------------------------------------------------------


def scrub(text: str, secret: str | None) -> str:
    """A server's message without the API key (some echo headers), on one line, kept short."""
    text = " ".join(redact(text, secret).split())
    return text if len(text) <= 300 else text[:299] + "…"


def token_count(value: object) -> int | None:
    """``value`` as a token count: a whole number from 0 to :data:`MAX_TOKENS`, else ``None``.
    A number written with a fraction that is zero (``100.0``, as some proxies send) is one."""
    if isinstance(value, float):
        if not math.isfinite(value) or not value.is_integer():
            return None
        value = int(value)
    elif isinstance(value, Decimal):
        # (compared before int(): 1E+999999999 would be a billion digits)
        if not value.is_finite() or not 0 <= value <= MAX_TOKENS or value % 1:
            return None
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= MAX_TOKENS:
        return value
    return None


def usage_counts(usage: object, where: str = "usage") -> tuple[dict[str, Any] | None, str | None]:
    """The token counts of a server's ``usage``, and the first thing left out of it, if any.

    Kept: every token count (:func:`token_count`), and those of a nested mapping
    (``prompt_tokens_details``…); ``None`` values are left out unsaid (servers send them for
    counts they do not keep). Anything else is left out and named (``usage.total_tokens is
    -5``): the caller says it; the answer itself is always kept.
    """
    if usage is None:
        return None, None
    if not isinstance(usage, Mapping):
        return None, f"{where} is {_shown(usage)}, not an object of token counts"
    kept: dict[str, Any] = {}
    dropped: str | None = None
    for key, value in usage.items():
        if isinstance(value, Mapping):
            kept[str(key)], inner = usage_counts(value, f"{where}.{key}")
        elif value is None or token_count(value) is not None:
            inner = None
            if value is not None:
                kept[str(key)] = token_count(value)
        else:
            inner = f"{where}.{key} is {_shown(value)}, not a token count (0 to 10**15)"
        dropped = dropped or inner
    return kept, dropped


def _shown(value: object) -> str:
    """A value as a message names it, cut short (an int too long to print is not printed)."""
    if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
        return "a number over 10**15"
    text = repr(value) if isinstance(value, str | int | float | bool) else type(value).__name__
    return text if len(text) <= 40 else text[:39] + "…"


def retry_after_seconds(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """How long a server asks to wait, from ``retry-after-ms`` (milliseconds, as OpenAI sends
    it) or ``Retry-After`` (seconds, or an HTTP date); ``None`` when it says nothing usable.

    Args:
        headers: The response's headers (looked up case-insensitively).
        now: The current time (seconds since the epoch), for HTTP dates; default now.
    """
    lower = {str(k).lower(): str(v) for k, v in headers.items()}
    for name, unit in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        with contextlib.suppress(KeyError, ValueError):
            value = float(lower[name]) * unit
            if math.isfinite(value) and value >= 0:
                return value
    try:
        when = email.utils.parsedate_to_datetime(lower.get("retry-after", "")).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):  # a year past datetime's
        return None
    return max(0.0, when - (time.time() if now is None else now))


def backoff(attempt: int, retry_after: float | None) -> float:
    """Seconds to wait before retry ``attempt`` (0-based): the server's ``Retry-After`` when it
    sent one, else exponential with jitter; at most :data:`BACKOFF_MAX`."""
    if retry_after is not None and retry_after >= 0:
        return float(min(retry_after, BACKOFF_MAX))
    delay = min(BACKOFF_BASE * 2.0**attempt, BACKOFF_MAX)
    return float(delay * (1 + random.random() / 10))
