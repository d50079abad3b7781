"""Smoke test of the real local LLM stack: llama.cpp's server + SmolLM2 + a GBNF grammar.

Proves the pieces promptc's integration tests build on: the embedded server (tests/llm_server.py)
starts, answers the OpenAI chat API through the ``openai`` client, honours a GBNF grammar
passed as the non-standard body field ``grammar`` (openai: ``extra_body={"grammar": ...}``),
and answers an invalid grammar with a 400 while it goes on serving. Takes seconds on 2 cores.
"""

from __future__ import annotations

import re

import pytest
from llm_server import EMPTY_GRAMMAR, gbnf_error

pytestmark = pytest.mark.llm

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


def test_grammar_is_valid_gbnf(llm_base_url: str) -> None:
    assert gbnf_error(llm_base_url, GBNF) is None
    # Invalid grammars are refused with the parser's verdict, and the server goes on serving.
    for invalid in ('root ::= "a" undefined', 'root ::= "a" my_rule\nmy_rule ::= "b"', "r ::= x"):
        assert "failed to parse grammar" in (gbnf_error(llm_base_url, invalid) or ""), invalid
    for empty in ("", " \n"):  # llama.cpp would not constrain
        assert gbnf_error(llm_base_url, empty) == EMPTY_GRAMMAR
    assert gbnf_error(llm_base_url, GBNF) is None


def test_grammar_constrained_chat_completion(llm_base_url: str) -> None:
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
    text = choice.message.content or ""
    assert choice.finish_reason == "stop", (choice.finish_reason, text)
    assert ANSWER.fullmatch(text), repr(text)
