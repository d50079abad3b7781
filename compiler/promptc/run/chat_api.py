"""The ``chat-api`` engine: any OpenAI-compatible chat API through :class:`openai.AsyncOpenAI`.

OpenAI, vLLM, a llama.cpp server (``llama-server``, ``python -m llama_cpp.server``), a proxy:
anything that answers ``POST {base_url}/chat/completions``. The API key is read from the
environment variable the run names and sent in the ``Authorization`` header only; every
message is scrubbed of it. ``openai`` is imported when a run starts (it is a heavy optional
dependency: about 0.7 s), and its absence is a :class:`~promptc.errors.BackendError` that says
what to install.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from promptc.errors import BackendError
from promptc.run.context import PROBE_TIMEOUT, ServerContext, server_context
from promptc.run.engine import Failure, Reply, retry_after_seconds, scrub

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
#: so ``auto`` sends no grammar (and ``json_schema`` OpenAI's form) instead of failing.
NO_MODELS_STATUS = frozenset({400, 404, 405, 422, 501})


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
    """

    def __init__(
        self,
        options: RunOptions,
        url: str | None,
        requests: Sequence[BuiltRequest],
        say: Callable[[str], None],
    ) -> None:
        openai_module()  # refused now, before anything is locked, opened or started
        self.name = url or ""
        self.cache_scope = self.name
        self.model: str | None = None
        self.slots: int | None = None
        self.api_key_env = options.api_key_env
        self.timeout = options.timeout
        self._secret: str | None = None
        self._client: Any = None

    def start(self) -> None:
        self._secret = os.environ.get(self.api_key_env) or None

    def stop(self) -> None:
        pass

    def _connected(self) -> Any:
        if self._client is None:
            self._client = openai_module().AsyncOpenAI(
                base_url=self.name,
                api_key=self._secret or NO_KEY,
                timeout=self.timeout,
                max_retries=0,  # retried by the run, to count attempts and say what failed
            )
        return self._client

    async def constraints(self) -> ServerKind:
        """``GET /models``: a model owned by ``llamacpp`` or ``me`` is llama.cpp's; an API
        without that endpoint (:data:`NO_MODELS_STATUS`) is ``other``."""
        try:
            models = await asyncio.wait_for(self._connected().models.list(), self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is worded, none raised as is
            failure = self._failure(exc)
            if failure.status in NO_MODELS_STATUS or failure.kind == "bad-response":
                return "other"  # an API without GET /models (or an odd one): not llama.cpp
            raise failure from None
        return server_kind(models)

    async def context(self, model: str | None) -> ServerContext | None:
        return await asyncio.to_thread(
            server_context, self.name, self._secret, model, min(PROBE_TIMEOUT, self.timeout)
        )

    async def send(self, body: Mapping[str, Any]) -> Reply:
        # The body as it is (the client's post, which its README documents): parameters the
        # client's create() does not know (grammar, top_k…) need no extra_body.
        post = self._connected().post(
            "/chat/completions", cast_to=openai_module().types.chat.ChatCompletion, body=dict(body)
        )
        try:
            # The whole answer within the timeout: the client's own timeout bounds each read,
            # and a server trickling a byte at a time would never trip it.
            completion = await asyncio.wait_for(post, self.timeout)
        except Exception as exc:  # noqa: BLE001 - every failure is worded, none raised as is
            raise self._failure(exc) from None
        return reply_of(completion, self._secret)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None

    def _failure(self, exc: BaseException) -> Failure:
        if isinstance(exc, TimeoutError):
            return Failure("timeout", None, f"no complete answer within {self.timeout:g} s")
        return exc if isinstance(exc, Failure) else classify(exc, self._secret)


# --------------------------------------------------------------------------------------------
# The openai client's exceptions and responses
# --------------------------------------------------------------------------------------------


def classify(exc: BaseException, secret: str | None) -> Failure:
    """An openai exception as a failure kind (a key of :data:`~promptc.run.engine.FAILURES`)."""
    openai = openai_module()
    detail = scrub(str(exc) or type(exc).__name__, secret)
    if isinstance(exc, openai.APITimeoutError):
        return Failure("timeout", None, detail)
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        if cause is not None and str(cause):
            detail = scrub(f"{type(cause).__name__}: {cause}", secret)
        return Failure("connection", None, detail)
    if isinstance(exc, openai.APIStatusError):
        status = exc.status_code
        message = _status_detail(exc, secret)
        retry_after = retry_after_seconds(getattr(exc.response, "headers", {}) or {})
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
            return scrub(str(msg), secret)
    return scrub(getattr(exc, "message", "") or str(exc), secret)


def reply_of(completion: Any, secret: str | None) -> Reply:
    """The reply in a chat completion.

    Raises:
        Failure: ``bad-response``: the completion has no ``choices[0].message``.
    """
    try:
        choice = completion.choices[0]
        content = choice.message.content
    except (AttributeError, IndexError, TypeError) as e:
        raise Failure("bad-response", None, scrub(f"{type(e).__name__}: {e}", secret)) from None
    usage = getattr(completion, "usage", None)
    usage_data = None
    if usage is not None:
        usage_data = {k: v for k, v in usage.model_dump().items() if v is not None}
    finish = getattr(choice, "finish_reason", None)
    return Reply(
        content if isinstance(content, str) else "",
        finish if isinstance(finish, str) else None,
        usage_data,
    )


def server_kind(models: Any) -> ServerKind:
    """Which llama.cpp server (if any) answered ``GET /models``, by its models' ``owned_by``."""
    owners = {getattr(m, "owned_by", None) for m in getattr(models, "data", []) or []}
    if "me" in owners:
        return "llama-cpp-python"
    if owners & LLAMA_CPP_OWNERS:
        return "llama.cpp"
    return "other"
