"""Offline, real tokenizers for counting a request's tokens before it is sent.

===================  =========================================================================
tokenizer            what it is
===================  =========================================================================
``o200k_base``,      OpenAI's BPE encodings (tiktoken's), from the ``bpe-openai`` package,
``cl100k_base``      whose wheels ship the rank files (tiktoken itself downloads them at first
                     use, which fails offline). A chat request adds OpenAI's documented framing:
                     3 tokens per message, the role's tokens, and 3 that prime the reply.
a ``.gguf`` file     the model's own tokenizer, through llama.cpp (``llama_cpp.Llama(…,
                     vocab_only=True)``: the vocabulary only, no weights), over the prompt its
                     own chat template renders — exactly what a llama.cpp server feeds it.
===================  =========================================================================

:func:`tokenizer_for` picks one: ``--tokenizer`` if given, else the model's own when promptc
knows it (an OpenAI model name, a path to a ``.gguf``), else ``o200k_base`` — marked as an
estimate (:attr:`Tokenizer.exact` false), since it is not the model's own.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from promptc.errors import BackendError, Location, UsageError
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
INSTALL_PLAN = "pip install 'promptc[plan]'"


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


@dataclass
class BPETokenizer:
    """An OpenAI BPE encoding. Counts are memoised per text: demos and instructions repeat
    in every request, and a plan counts thousands of requests."""

    encoding: str
    exact: bool
    model: str = ""
    _enc: Any = field(default=None, repr=False)
    _memo: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        try:
            import bpe_openai  # type: ignore[import-untyped]
        except ImportError:
            raise BackendError(
                f"counting tokens with {self.encoding} needs the bpe-openai package, which "
                "is not installed",
                hint=INSTALL_PLAN,
                code="missing-tokenizer",
            ) from None
        self._enc = bpe_openai.get_encoding(self.encoding)

    @property
    def name(self) -> str:
        return self.encoding

    def count(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            n = len(self._enc.encode_ordinary(text))
            self._memo[text] = n
        return n

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        total = TOKENS_REPLY_PRIMING
        for m in messages:
            total += TOKENS_PER_MESSAGE + self.count(str(m.get("role", ""))) + self.count(_text(m))
        return total


@dataclass
class GGUFTokenizer:
    """A GGUF model's own tokenizer and chat template, through llama.cpp (vocabulary only)."""

    path: str
    exact: bool = True
    _llama: Any = field(default=None, repr=False)
    _template: Any = field(default=None, repr=False)
    _specials: dict[str, str] = field(default_factory=dict, repr=False)
    _memo: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        try:
            import llama_cpp
        except ImportError:
            raise BackendError(
                "counting tokens with a GGUF model needs llama-cpp-python, which is not installed",
                hint="pip install llama-cpp-python",
                code="missing-llama-cpp",
            ) from None
        where = Location(self.path)
        if not Path(self.path).is_file():
            raise UsageError(
                f"GGUF file {self.path!r} not found", location=where, code="gguf-not-found"
            )
        try:
            with _quiet_stderr():
                self._llama = llama_cpp.Llama(model_path=self.path, vocab_only=True, verbose=False)
        except (ValueError, RuntimeError, OSError) as e:
            raise UsageError(
                f"cannot read the tokenizer of {self.path!r}: {e}",
                location=where,
                code="bad-gguf",
            ) from None
        model = self._llama._model
        bos, eos = self._llama.token_bos(), self._llama.token_eos()
        self._specials = {
            "bos_token": model.token_get_text(bos) if bos != -1 else "",
            "eos_token": model.token_get_text(eos) if eos != -1 else "",
        }
        source = self._llama.metadata.get("tokenizer.chat_template")
        if source:
            from jinja2.sandbox import ImmutableSandboxedEnvironment

            env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
            self._template = env.from_string(source)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)

    def count(self, text: str) -> int:
        n = self._memo.get(text)
        if n is None:
            n = len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
            self._memo[text] = n
        return n

    def prompt(self, messages: Sequence[Mapping[str, Any]]) -> str:
        """The text the model reads: its chat template over the messages, reply primed."""
        plain = [{"role": str(m.get("role", "")), "content": _text(m)} for m in messages]
        if self._template is None:  # no template in the file: llama.cpp's plain fallback
            return "".join(f"{m['role']}: {m['content']}\n" for m in plain) + "assistant: "
        return str(
            self._template.render(messages=plain, add_generation_prompt=True, **self._specials)
        )

    def count_messages(self, messages: Sequence[Mapping[str, Any]]) -> int:
        text = self.prompt(messages)
        # The server adds BOS itself when the model asks for it; special tokens in the
        # template (<|im_start|>) are one token each, as the server reads them.
        return len(self._llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))


def _text(message: Mapping[str, Any]) -> str:
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: their text
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return ""


class _quiet_stderr:
    """Silences llama.cpp's C-level log lines on file descriptor 2 while a model loads."""

    def __enter__(self) -> None:
        import sys

        sys.stderr.flush()
        self._saved = os.dup(2)
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)

    def __exit__(self, *exc: object) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)


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
            return BPETokenizer(choice, exact=own == choice, model=model)
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
        return BPETokenizer(own, exact=True, model=model)
    return BPETokenizer(DEFAULT_ENCODING, exact=False, model=model)
