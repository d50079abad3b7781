"""Offline, real tokenizers for counting a request's tokens before it is sent.

===================  =========================================================================
tokenizer            what it is
===================  =========================================================================
``o200k_base``,      OpenAI's BPE encodings (tiktoken's), from the ``bpe-openai`` package,
``cl100k_base``      whose wheels ship the rank files (tiktoken itself downloads them at first
                     use, which fails offline). A chat request adds OpenAI's documented framing:
                     3 tokens per message, the role's tokens, and 3 that prime the reply.
a ``.gguf`` file     the model's own tokenizer and chat template, asked of llama.cpp's server
                     (the embedded one of ``promptc run --local``, started on the file):
                     exactly what that server feeds the model.
===================  =========================================================================

:func:`tokenizer_for` picks one: ``--tokenizer`` if given, else the model's own when promptc
knows it (an OpenAI model name, a path to a ``.gguf``), else ``o200k_base`` — marked as an
estimate (:attr:`Tokenizer.exact` false), since it is not the model's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from promptc.errors import BackendError, Location, UsageError
from promptc.replies import read_reply, urlopen
from promptc.run.local import local_server
from promptc.run.models import INSTALL_LOCAL
from promptc.spec.load import COMMAND_LINE

ENCODINGS = ("o200k_base", "cl100k_base")
DEFAULT_ENCODING = "o200k_base"
#: OpenAI's rule for chat framing (its cookbook's ``num_tokens_from_messages``): every message
#: is wrapped in 3 tokens (``<|im_start|>``/``<|im_sep|>``/``<|im_end|>`` or their equivalents)
#: and the reply is primed with 3 more.
TOKENS_PER_MESSAGE = 3
TOKENS_REPLY_PRIMING = 3
#: Model-name prefixes → encoding, longest first (gpt-4o before gpt-4).
MODEL_PREFIXES: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-4.5", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("chatgpt-4o", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-oss", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
    ("text-embedding-3", "cl100k_base"),
)
INSTALL_PLAN = "pip install 'promptc-compiler[plan]'"
#: Seconds one answer of the tokenizer's server may take.
SERVER_TIMEOUT = 120.0


class Tokenizer(Protocol):
    """Counts tokens as a model would see them."""

    @property
    def name(self) -> str:
        """What it is, for the table: ``o200k_base`` or ``SmolLM2-135M-Instruct.Q4_1.gguf``."""
        ...

    @property
    def exact(self) -> bool:
        """Whether this is the model's own tokenizer (else counts are estimates)."""
        ...

    def count(self, text: str) -> int:
        """Tokens of plain text (no special tokens are recognised in it)."""
        ...

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        """Input tokens of a chat request: its messages with the chat framing."""
        ...

    def close(self) -> None:
        """Releases what it holds (a server process)."""
        ...


class BPETokenizer:
    """An OpenAI BPE encoding. Counts are memoised per text: demos and instructions repeat
    in every request, and a plan counts thousands of requests.

    Args:
        encoding: ``o200k_base`` or ``cl100k_base``.
        exact: Whether it is the model's own.

    Raises:
        BackendError: ``bpe-openai`` is not installed.
    """

    def __init__(self, encoding: str, exact: bool) -> None:
        try:
            import bpe_openai  # type: ignore[import-untyped]
        except ImportError:
            raise BackendError(
                f"counting tokens with {encoding} needs the bpe-openai package, which "
                "is not installed",
                hint=INSTALL_PLAN,
                code="missing-tokenizer",
            ) from None
        self.name = encoding
        self.exact = exact
        self._enc = bpe_openai.get_encoding(encoding)
        self._memo: dict[str, int] = {}

    def count(self, text: str) -> int:
        if text not in self._memo:
            self._memo[text] = len(self._enc.encode_ordinary(text))
        return self._memo[text]

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        total = TOKENS_REPLY_PRIMING
        for m in messages:
            total += TOKENS_PER_MESSAGE + self.count(str(m.get("role", ""))) + self.count(_text(m))
        return total

    def close(self) -> None:
        """Nothing to release."""


class GGUFTokenizer:
    """A GGUF model's own tokenizer and chat template, asked of llama.cpp's server.

    The embedded server (:func:`promptc.run.local.local_server`, the ``local`` extra) is
    started on the file once; ``/apply-template`` renders the messages with the model's chat
    template and ``/tokenize`` counts them — the very steps a llama.cpp server takes before it
    generates. Counts are memoised per text. :meth:`close` stops the server (the plan does,
    when it is done).
    """

    exact = True

    def __init__(self, path: str) -> None:
        self.path = path
        where = Location(path)
        if not Path(path).is_file():
            raise UsageError(f"GGUF file {path!r} not found", location=where, code="gguf-not-found")
        self._server = contextlib.ExitStack()
        try:
            self._root = self._server.enter_context(local_server(path)).removesuffix("/v1")
        except BackendError as e:
            if e.code == "missing-local":
                raise BackendError(
                    "counting tokens with a GGUF model needs llama.cpp's server, which is not "
                    "installed",
                    hint=INSTALL_LOCAL,
                    code="missing-llama-cpp",
                ) from None
            raise UsageError(
                f"cannot read the tokenizer of {path!r}: {e}", location=where, code="bad-gguf"
            ) from None
        self._memo: dict[str, int] = {}

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def _post(self, endpoint: str, body: Mapping[str, Any]) -> Any:
        data = json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self._root + endpoint, data=data, headers={"Content-Type": "application/json"}
        )
        # The reply of /tokenize is at most a token a byte of what is sent, each id at most
        # 8 bytes of JSON; that of /apply-template, the messages and the chat framing.
        limit = 8 * len(data) + 1_000_000
        try:
            with urlopen(request, timeout=SERVER_TIMEOUT) as response:
                return json.loads(
                    read_reply(
                        response, limit, f"the reply of {endpoint}", self._root, SERVER_TIMEOUT
                    )
                )
        except (OSError, ValueError) as e:  # too long a reply is a ReplyTooLarge, said as is
            raise BackendError(
                f"llama.cpp's server did not answer {endpoint} for {self.name}: {e}",
                code="tokenizer-server",
            ) from None

    def count(self, text: str) -> int:
        if text not in self._memo:
            tokens = self._post("/tokenize", {"content": text, "add_special": False})["tokens"]
            self._memo[text] = len(tokens)
        return self._memo[text]

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The text the model reads: its chat template over the messages, reply primed."""
        plain = [{"role": str(m.get("role", "")), "content": _text(m)} for m in messages]
        return str(self._post("/apply-template", {"messages": plain})["prompt"])

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        # Special tokens in the template (<|im_start|>) are one token each, and BOS is added
        # where the model asks for it, as the server does for a chat request.
        body = {"content": self.prompt(messages), "add_special": True, "parse_special": True}
        return len(self._post("/tokenize", body)["tokens"])

    def close(self) -> None:
        """Stops the server (again: nothing)."""
        self._server.close()


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


def encoding_for_model(model: str) -> str | None:
    """The OpenAI encoding of a model name (``gpt-4o-mini`` → ``o200k_base``), if known."""
    low = model.lower().split("/")[-1]
    for prefix, encoding in MODEL_PREFIXES:
        if low.startswith(prefix):
            return encoding
    return None


def tokenizer_for(
    model: str, choice: str | None = None, *, spec_dir: str | None = None
) -> Tokenizer:
    """The tokenizer to count with.

    Args:
        model: The spec's ``model.name``.
        choice: ``--tokenizer``: an encoding name, a ``.gguf`` path, or ``None`` to choose
            from the model name.
        spec_dir: Where a relative ``.gguf`` model name is looked up.

    Raises:
        UsageError: An unknown tokenizer name, or a GGUF file that cannot be read.
        BackendError: The package the tokenizer needs is not installed.
    """
    if choice is not None:
        if choice in ENCODINGS:
            own = encoding_for_model(model)
            return BPETokenizer(choice, exact=own == choice)
        if choice.endswith(".gguf") or os.path.isfile(choice):
            return GGUFTokenizer(str(Path(choice).expanduser().resolve()))
        raise UsageError(
            f"unknown tokenizer {choice!r}; expected {', '.join(ENCODINGS)} or the path of a "
            ".gguf model",
            location=Location(COMMAND_LINE),
            path=("--tokenizer",),
            code="unknown-tokenizer",
        )
    if model.endswith(".gguf"):
        for base in (spec_dir, None):
            candidate = Path(base, model) if base else Path(model)
            if candidate.is_file():
                return GGUFTokenizer(str(candidate.resolve()))
    own = encoding_for_model(model)
    if own is not None:
        return BPETokenizer(own, exact=True)
    return BPETokenizer(DEFAULT_ENCODING, exact=False)
