"""Does a build fit the server's context? Ask the server, estimate the requests, warn once.

A request whose prompt and ``max_tokens`` together exceed the server's context gets its answer
cut off (or refused), which a user sees only later as ``missing`` items. Before sending,
``promptc run`` asks the server how long its context is:

- vLLM: ``GET {base_url}/models`` lists each model with its ``max_model_len``;
- llama.cpp's ``llama-server``: ``GET /props`` (at the server's root) has
  ``default_generation_settings.n_ctx``, the context of one slot;

and when neither says (OpenAI, llama-cpp-python's server, a proxy), nothing is said. The probe
has a short timeout and never fails the run: a server that does not answer it is simply not
asked again.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from promptc.build import BuiltRequest
from promptc.replies import read_reply, urlopen

#: Seconds to wait for each probe (two at most): a server that is slow to say is not waited for.
PROBE_TIMEOUT = 3.0
#: The most of a probe's answer that is read (a model list is a few kB).
PROBE_MAX_BYTES = 4 * 1024 * 1024
#: A token is at least about 3 characters of English text for the tokenizers of small models,
#: so ``characters / 3`` over-estimates a prompt (as the embedded server's context does).
CHARS_PER_TOKEN = 3
#: The chat template's own tokens around the messages (role markers, separators).
TEMPLATE_TOKENS = 64
#: The answer's share when a request sets no ``max_tokens``.
DEFAULT_ANSWER_TOKENS = 512


@dataclass(frozen=True)
class ServerContext:
    """A server's context length and where it said so."""

    tokens: int
    source: str  # e.g. "GET /props: default_generation_settings.n_ctx"


@dataclass(frozen=True)
class Need:
    """What the largest request of a build may need."""

    request_id: str
    prompt_tokens: int  # estimated
    max_tokens: int | None

    @property
    def total(self) -> int:
        return self.prompt_tokens + (self.max_tokens or DEFAULT_ANSWER_TOKENS) + TEMPLATE_TOKENS


def largest_need(
    requests: Sequence[BuiltRequest],
    params: Callable[[BuiltRequest], Mapping[str, Any]] | None = None,
) -> Need | None:
    """The request that needs the most context (estimated), or ``None`` for no requests.

    Args:
        params: Each request's parameters as sent (its ``max_tokens`` fitted to the answer's
            form); default the build's.
    """
    best: Need | None = None
    for r in requests:
        sent = r.params if params is None else params(r)
        mt = sent.get("max_tokens", sent.get("max_completion_tokens"))
        chars = sum(len(str(m.get("content", ""))) for m in r.messages)
        need = Need(
            r.id,
            -(-chars // CHARS_PER_TOKEN),
            mt if isinstance(mt, int) and not isinstance(mt, bool) else None,
        )
        if best is None or need.total > best.total:
            best = need
    return best


def _get(url: str, api_key: str | None, timeout: float) -> Any:
    headers = {"Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, headers=headers, method="GET")
    with urlopen(request, timeout=timeout) as response:
        return json.loads(read_reply(response, PROBE_MAX_BYTES, "a probe's reply", url, timeout))


def _positive(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def models_context(data: object, model: str | None) -> int | None:
    """vLLM's ``max_model_len``: of the model sent, else the smallest listed."""
    entries = data.get("data") if isinstance(data, Mapping) else None
    if not isinstance(entries, list):
        return None
    lengths = {
        str(e.get("id")): n
        for e in entries
        if isinstance(e, Mapping) and (n := _positive(e.get("max_model_len"))) is not None
    }
    if not lengths:
        return None
    if model is not None and model in lengths:
        return lengths[model]
    return min(lengths.values())


def props_context(data: object) -> int | None:
    """llama.cpp's ``default_generation_settings.n_ctx`` (one slot's context)."""
    settings = data.get("default_generation_settings") if isinstance(data, Mapping) else None
    return _positive(settings.get("n_ctx")) if isinstance(settings, Mapping) else None


def server_root(base_url: str) -> str:
    """The server's root URL: ``base_url`` without its trailing ``/v1``."""
    parts = urlsplit(base_url.rstrip("/"))
    path = parts.path.removesuffix("/v1")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def server_context(
    base_url: str,
    api_key: str | None = None,
    model: str | None = None,
    timeout: float | None = None,
) -> ServerContext | None:
    """The server's context length, if it says (vLLM's ``GET /models``, llama.cpp's
    ``GET /props``); ``None`` when neither does, or the server cannot be asked. Never raises."""
    if urlsplit(base_url).scheme not in ("http", "https"):
        return None
    wait = PROBE_TIMEOUT if timeout is None else timeout
    probes = (
        (base_url.rstrip("/") + "/models", "GET /v1/models: max_model_len", models_context),
        (
            server_root(base_url) + "/props",
            "GET /props: default_generation_settings.n_ctx",
            lambda data, _model: props_context(data),
        ),
    )
    for url, source, read in probes:
        try:
            tokens = read(_get(url, api_key, wait), model)
        except Exception:  # noqa: BLE001, S112 - any failure of a probe means "it does not say"
            continue
        if tokens is not None:
            return ServerContext(tokens, source)
    return None


def fit_warning(need: Need, context: ServerContext, where: str = "the server's") -> str | None:
    """The warning to give when ``need`` does not fit ``context``, else ``None``."""
    if need.total <= context.tokens:
        return None
    answer = (
        f"max_tokens {need.max_tokens:,}"
        if need.max_tokens is not None
        else f"no max_tokens (counted as {DEFAULT_ANSWER_TOKENS})"
    )
    return (
        f"warning: request {need.request_id} may not fit {where} context of "
        f"{context.tokens:,} tokens ({context.source}): its prompt is about "
        f"{need.prompt_tokens:,} tokens (at {CHARS_PER_TOKEN} characters a token, an "
        f"over-estimate) and {answer}, about {need.total:,} tokens in all; its answer may be "
        "cut off: give the server a larger context, or lower max_tokens or the batch size"
    )
