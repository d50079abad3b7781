"""API keys: read from the environment in one place, and kept out of every message.

A key travels in an HTTP header (``Authorization: Bearer KEY``). :func:`api_key` reads it from
its environment variable without the white space around it — ``VAR="$(cat key.txt)"`` keeps
the carriage return of a file with CRLF line ends, and no key has white space at its ends —
and refuses one with a character a header cannot carry (a control character, or one outside
ASCII) with :class:`BadKeyError`, whose message names the variable, never the value (an HTTP
library's own refusal quotes the header, key and all). :func:`redact` takes the key out of any
text before it is shown or stored: a server, or a library, may echo it; :func:`redact_reply`
out of every string of a reply decoded from JSON.

This module imports nothing of promptc, so that every stage that sends a key may use it; each
caller words the refusal as its own error (a command-line option, a spec key).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

#: A key a header cannot carry (``{name}``: the variable; ``{what}``: the character, by its
#: code point). Tested word for word.
BAD_KEY = (
    "environment variable {name} holds an API key with {what} in it, which an HTTP header "
    "cannot carry"
)
#: What to do about it (``{name}``).
BAD_KEY_HINT = "set {name} to the key alone, in printable ASCII"
#: What a key is replaced with in a message.
REDACTED = "***"
#: Keys shorter than this are placeholders (``EMPTY``, ``none``, ``x``: what people give a
#: local server that checks no key), not secrets: a model's answer is not rewritten for one
#: (with the key ``no``, every ``no`` the model answers would become ``***``). The shortest
#: keys of the hosted APIs are several times longer.
MIN_SECRET_CHARS = 8
#: An escape that ends in a letter or digit (``\n``, ``\t``, ``\u2028``, ``\x0b``, as JSON
#: and Python's ``repr`` write a control character): in quoted text the key after one is a
#: whole word, though a letter or digit stands right before it.
_ESCAPE_BEFORE = (
    r"(?<=\\[bfnrt])|(?<=\\x[0-9A-Fa-f]{2})|(?<=\\u[0-9A-Fa-f]{4})|(?<=\\U[0-9A-Fa-f]{8})"
)


class BadKeyError(ValueError):
    """A key an HTTP header cannot carry; its message names the variable, never the value.

    Attributes:
        variable: The environment variable.
        hint: What to do about it.
    """

    def __init__(self, variable: str, char: str) -> None:
        kind = "a control character" if char < " " or char == "\x7f" else "a non-ASCII character"
        super().__init__(BAD_KEY.format(name=variable, what=f"{kind} (U+{ord(char):04X})"))
        self.variable = variable
        self.hint = BAD_KEY_HINT.format(name=variable)


def api_key(variable: str) -> str | None:
    """The API key in environment variable ``variable``, without the white space around it;
    ``None`` when it is unset or blank.

    Raises:
        BadKeyError: The key holds a character an HTTP header cannot carry (a control
            character, or one outside ASCII).
    """
    key = os.environ.get(variable, "").strip()
    for char in key:
        if not " " <= char <= "~":
            raise BadKeyError(variable, char)
    return key or None


def redact(text: str, secret: str | None, *, answer: bool = False) -> str:
    """``text`` with ``secret`` replaced by :data:`REDACTED`, also where it is quoted with
    escapes (as Python's ``repr`` and JSON quote it). Only the key as a whole word is
    replaced: with the key ``neg``, ``negative`` stays as written; in quoted text, an escape
    before the key (``\\n``) ends the word before it.

    Args:
        answer: ``text`` is a model's answer: a key shorter than :data:`MIN_SECRET_CHARS`
            (a placeholder) leaves it as written.
    """
    if not secret or (answer and len(secret) < MIN_SECRET_CHARS):
        return text
    for spelling in {secret, repr(secret)[1:-1], json.dumps(secret)[1:-1]}:
        if spelling in text:
            word = rf"(?:(?<![0-9A-Za-z])|{_ESCAPE_BEFORE}){re.escape(spelling)}(?![0-9A-Za-z])"
            text = re.sub(word, REDACTED, text)
    return text


def redact_reply(value: Any, secret: str | None) -> Any:
    """A server's reply, decoded from JSON, with ``secret`` redacted (:func:`redact`, as in an
    answer) in every string it holds, its members' names included: what is kept of a reply
    (an answer, a ``finish_reason``, the names of its ``usage`` counts) holds no key,
    whichever field the server echoed it in.

    Raises:
        RecursionError: ``value`` is nested deeper than Python's recursion limit allows.
    """
    if not secret or len(secret) < MIN_SECRET_CHARS:
        return value
    if isinstance(value, str):
        return redact(value, secret, answer=True)
    if isinstance(value, dict):
        return {redact_reply(k, secret): redact_reply(v, secret) for k, v in value.items()}
    if isinstance(value, list):
        return [redact_reply(v, secret) for v in value]
    return value
