"""Smoke test of the real local LLM stack: llama.cpp server + SmolLM2 + GBNF grammar.

Proves the pieces promptc's integration tests build on: the server from tests/llm_server.py
starts, answers the OpenAI chat API through the `openai` client, and honours a GBNF grammar
passed as the non-standard body field `grammar` (openai: `extra_body={"grammar": ...}`).
Install the stack with `bash scripts/install-llm.sh`. Takes ~5 s on 2 cores.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for llm_server

from llm_server import gbnf_error, running_server

pytestmark = pytest.mark.llm

try:
    import llama_cpp  # noqa: F401

    _LLAMA_IMPORT_ERROR = None
except Exception as exc:  # noqa: BLE001 - ImportError, or OSError if libllama fails to load
    _LLAMA_IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

requires_llama = pytest.mark.skipif(
    _LLAMA_IMPORT_ERROR is not None,
    reason=f"llama_cpp is not importable ({_LLAMA_IMPORT_ERROR}); run: bash scripts/install-llm.sh",
)

GBNF = 'root ::= item item\nitem ::= "A[" [0-9]+ "]: " [a-z ]+ "\\n"\n'
ANSWER = re.compile(r"(A\[[0-9]+\]: [a-z ]+\n){2}")

MESSAGES = [
    {
        "role": "system",
        "content": "Answer every question with one lowercase word, one line per answer, "
        "in the form A[n]: answer",
    },
    {
        "role": "user",
        "content": "Q[1]: What color is the sky?\nQ[2]: What animal says meow?",
    },
]


@pytest.fixture(scope="module")
def llm_base_url():
    with running_server() as base_url:
        yield base_url


@requires_llama
def test_grammar_is_valid_gbnf():
    assert gbnf_error(GBNF) is None
    # The server would die with SIGSEGV on these (see docs/llm-server.md), hence the pre-check.
    assert "Undefined rule identifier" in (gbnf_error('root ::= "a" undefined') or "")
    assert gbnf_error('root ::= "a" my_rule\nmy_rule ::= "b"') is not None  # no "_" in names
    assert gbnf_error("") is not None  # llama.cpp would silently not constrain


@requires_llama
def test_grammar_constrained_chat_completion(llm_base_url):
    import openai  # a test dependency: a missing client is a failure, not a skip

    client = openai.OpenAI(base_url=llm_base_url, api_key="not-needed", timeout=120)

    response = client.chat.completions.create(
        model="smollm2",
        messages=MESSAGES,
        temperature=0,
        max_tokens=96,
        seed=7,
        extra_body={"grammar": GBNF},
    )

    choice = response.choices[0]
    text = choice.message.content
    assert choice.finish_reason == "stop", (choice.finish_reason, text)
    assert ANSWER.fullmatch(text), repr(text)
