"""Talking to an OpenAI-compatible API: failures classified and worded, backoff, responses.

Every failure is one of :data:`FAILURES`, worded for people with what to check; API keys are
scrubbed from every message.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from promptc.run.bodies import ServerKind

DEFAULT_TIMEOUT = 600.0  # seconds; a small local model on two cores can take minutes per batch


DEFAULT_MAX_RETRIES = 3


#: Backoff before retry k (0-based) is BACKOFF_BASE * 2**k seconds, at most BACKOFF_MAX, plus
#: up to 10 % jitter so that concurrent requests do not retry in lockstep.
BACKOFF_BASE = 0.5


BACKOFF_MAX = 30.0


#: ``owned_by`` values of ``GET /models`` that identify a llama.cpp server (``llama-server``
#: says ``llamacpp``; llama-cpp-python's ``python -m llama_cpp.server`` says ``me``).
LLAMA_CPP_OWNERS = frozenset({"llamacpp", "me"})


#: A placeholder sent when the key's environment variable is unset: local servers ignore it,
#: and a server that needs a key answers 401, which is reported with the variable's name.
NO_KEY = "no-key-set"


#: What a failure means and what to check, by kind. ``{base_url}``, ``{timeout}``,
#: ``{api_key_env}``, ``{model}`` and ``{detail}`` are filled in. Tested word for word.
FAILURES: Mapping[str, tuple[str, str]] = {
    "connection": (
        "could not connect to {base_url} ({detail})",
        "check that the server is running and that --base-url is right",
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
    "bad-response": (
        "the server's answer has no choices[0].message ({detail})",
        "check that --base-url points at an OpenAI-compatible chat API",
    ),
}


RETRYABLE = frozenset({"connection", "timeout", "rate-limit", "server"})


#: Answers to ``GET /models`` that mean "this API has no model list": not a llama.cpp server,
#: so ``auto`` sends no grammar (and ``json_schema`` OpenAI's form) instead of failing.
NO_MODELS_STATUS = frozenset({400, 404, 405, 422, 501})


# --------------------------------------------------------------------------------------------
# Talking to the API
# --------------------------------------------------------------------------------------------


@dataclass
class Failure(Exception):
    kind: str
    status: int | None
    detail: str
    retry_after: float | None = None


def _scrub(text: str, secret: str | None) -> str:
    """A server's message, without the API key (some echo headers) and kept short."""
    if secret and secret != NO_KEY:
        text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= 300 else text[:299] + "…"


def classify(exc: BaseException, secret: str | None) -> Failure:
    """An openai exception as a failure kind (a key of :data:`FAILURES`)."""
    import openai

    detail = _scrub(str(exc) or type(exc).__name__, secret)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", None, detail)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause):
            detail = _scrub(f"{type(cause).__name__}: {cause}", secret)
        return Failure("connection", None, detail)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _status_detail(exc, secret)
        retry_after = None
        try:
            retry_after = float(exc.response.headers.get("retry-after", ""))
        except (TypeError, ValueError):
            pass
        if status in (401, 403):
            return Failure("auth", status, message)
        if status == 404:
            return Failure("not-found", status, message)
        if status == 429:
            return Failure("rate-limit", status, message, retry_after)
        if status in (408, 409) or status >= 500:
            return Failure("server", status, message, retry_after)
        return Failure("bad-request", status, message)
    return Failure("bad-response", None, detail)


def _status_detail(exc: Any, secret: str | None) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        msg = err.get("message") if isinstance(err, dict) else err
        if msg:
            return _scrub(str(msg), secret)
    return _scrub(getattr(exc, "message", "") or str(exc), secret)


def split_params(create: Callable[..., Any], body: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for ``chat.completions.create``: the parameters it knows by name,
    every other one (``grammar``, ``top_k``, …) passed through in ``extra_body``."""
    import inspect

    known = set(inspect.signature(create).parameters) - {
        "extra_body",
        "extra_headers",
        "extra_query",
        "timeout",
    }
    kwargs = {k: v for k, v in body.items() if k in known}
    extra = {k: v for k, v in body.items() if k not in known}
    if extra:
        kwargs["extra_body"] = extra
    return kwargs


def response_data(completion: Any, secret: str | None) -> dict[str, Any]:
    try:
        choice = completion.choices[0]
        content = choice.message.content
    except (AttributeError, IndexError, TypeError) as e:
        raise Failure("bad-response", None, _scrub(f"{type(e).__name__}: {e}", secret)) from None
    usage = getattr(completion, "usage", None)
    usage_data = None
    if usage is not None:
        usage_data = {k: v for k, v in usage.model_dump().items() if v is not None}
    return {
        "output": content if isinstance(content, str) else "",
        "finish_reason": getattr(choice, "finish_reason", None),
        "usage": usage_data,
    }


def server_kind(models: Any) -> ServerKind:
    owners = {getattr(m, "owned_by", None) for m in getattr(models, "data", []) or []}
    if "me" in owners:
        return "llama-cpp-python"
    if owners & LLAMA_CPP_OWNERS:
        return "llama.cpp"
    return "other"


def backoff(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None and retry_after >= 0:
        return float(min(retry_after, BACKOFF_MAX))
    delay = min(BACKOFF_BASE * 2.0**attempt, BACKOFF_MAX)
    return float(delay * (1 + random.random() / 10))
