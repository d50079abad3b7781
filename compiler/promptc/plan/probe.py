"""``promptc plan --probe``: how fast a self-hosted engine reads and writes, measured with two
short requests, and each variant's wall time estimated from it.

A request's time is about ``prompt_tokens / read_rate + completion_tokens / write_rate``. The
two requests are chosen so that each rate shows: one reads a long prompt and writes one token,
the other reads a short prompt and writes up to :data:`WRITE_TOKENS`. llama.cpp's server says
how long each phase took (``timings``): then the rates are its own; any other server gives wall
times, and the two equations are solved for the two rates.

A variant's estimate sends its requests one at a time (the embedded server has one slot), and
counts its input without the prefix the engine's prompt cache serves (llama.cpp keeps the last
prompt's KV cache: requests that share the instruction and demos read them once). On the
embedded model a generated token costs 10 to 20 read ones, so a strategy that writes more
(Auto-Demo repeats every question) is slower per question even when it reads less.
"""

from __future__ import annotations

import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from promptc.apikeys import redact
from promptc.errors import BackendError, Location
from promptc.replies import ReplyTooLarge, read_reply, urlopen
from promptc.run.chat_api import read_api_key
from promptc.run.engine import MAX_BODY_BYTES, token_count
from promptc.spec.load import COMMAND_LINE
from promptc.text import public_url

#: The environment variable of the API key sent with the probe requests.
KEY_ENV = "OPENAI_API_KEY"
#: Tokens the write probe asks for.
WRITE_TOKENS = 64
#: Seconds each probe request may take.
PROBE_TIMEOUT = 300.0
#: The read probe's prompt: plain prose, about 400 tokens in most tokenizers.
READ_TEXT = " ".join(
    f"Line {k}: the quick brown fox jumps over the lazy dog while the committee reviews "
    "the quarterly figures and the weather stays mild."
    for k in range(1, 21)
)


@dataclass(frozen=True)
class Rates:
    """Tokens per second the engine reads (prompt) and writes (generation), and how they were
    measured (``server timings`` or ``wall time``)."""

    read: float
    write: float
    source: str

    def seconds(self, read_tokens: float, written_tokens: float) -> float:
        """Seconds to read and write that many tokens, one request at a time."""
        return read_tokens / self.read + written_tokens / self.write

    def to_dict(self) -> dict[str, Any]:
        return {
            "prompt_tokens_per_second": round(self.read, 1),
            "generated_tokens_per_second": round(self.write, 1),
            "measured_from": self.source,
        }


def _ask(base_url: str, model: str, prompt: str, max_tokens: int) -> tuple[dict[str, Any], float]:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": prompt}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "cache_prompt": False,  # llama.cpp: read the whole prompt, as a new one would be
    }
    headers = {"Content-Type": "application/json"}
    key = read_api_key(KEY_ENV, option="--probe")
    if key:
        headers["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(
        base_url.rstrip("/") + "/chat/completions", json.dumps(body).encode("utf-8"), headers
    )
    started = time.perf_counter()
    try:
        with urlopen(request, timeout=PROBE_TIMEOUT) as response:
            # A chat completion, as a run reads it: at most its cap.
            data = read_reply(
                response, MAX_BODY_BYTES, "the answer", request.full_url, PROBE_TIMEOUT
            )
        reply = json.loads(data.decode("utf-8-sig"))
    except (ReplyTooLarge, urllib.error.URLError, OSError, ValueError, RecursionError) as e:
        # A reply past its cap says what and where itself; anything else, without the key.
        why = (
            e.message if isinstance(e, ReplyTooLarge) else redact(str(getattr(e, "reason", e)), key)
        )
        raise BackendError(
            f"the probe request to {public_url(base_url)} failed: {why}",
            location=Location(COMMAND_LINE),
            path=("--probe",),
            hint="start the server or fix --base-url; --local probes the embedded model",
            code="probe-failed",
        ) from None
    return (reply if isinstance(reply, dict) else {}), time.perf_counter() - started


def _usage(reply: Mapping[str, Any]) -> tuple[int, int]:
    """The prompt and completion tokens of a reply's usage (0 for a count it lacks or that
    is not a token count)."""
    u = reply.get("usage")
    u = u if isinstance(u, Mapping) else {}
    return token_count(u.get("prompt_tokens")) or 0, token_count(u.get("completion_tokens")) or 0


def _rate(timings: object, count: str, ms: str) -> float:
    """Tokens a second from llama.cpp's ``timings`` (``count`` tokens in ``ms``
    milliseconds); 0 when they do not say."""
    if not isinstance(timings, Mapping):
        return 0.0
    n, t = timings.get(count), timings.get(ms)
    if not isinstance(n, int | float) or not isinstance(t, int | float) or not t > 0:
        return 0.0
    try:
        rate = float(n) / (float(t) / 1000)
    except OverflowError:  # an integer past a float's range: no rate a server could have
        return 0.0
    return rate if _plausible(rate) else 0.0


#: Tokens a second no engine reads or writes beyond (nor below): timings outside say nothing
#: of a server's speed (a prompt_ms of 1e-300 made a rate of 300 digits).
RATES = (1e-3, 1e8)


def _plausible(rate: float) -> bool:
    return math.isfinite(rate) and RATES[0] <= rate <= RATES[1]


def probe(base_url: str, model: str) -> Rates:
    """Measures the engine at ``base_url`` with two short requests.

    Raises:
        BackendError: A request failed, or its answer says nothing a rate can be read from.
    """
    read_reply, read_time = _ask(base_url, model, READ_TEXT + "\n\nReply with OK.", 1)
    write_reply, write_time = _ask(
        base_url, model, "Count from 1 to 500, the numbers separated by spaces.", WRITE_TOKENS
    )
    read = _rate(read_reply.get("timings"), "prompt_n", "prompt_ms")
    write = _rate(write_reply.get("timings"), "predicted_n", "predicted_ms")
    if read > 0 and write > 0:
        return Rates(read, write, "server timings")
    # Wall times: t = p / read + c / write for both requests, solved for 1/read and 1/write.
    (p1, c1), (p2, c2) = _usage(read_reply), _usage(write_reply)
    det = p1 * c2 - p2 * c1
    if det > 0:
        inv_read = (read_time * c2 - write_time * c1) / det
        inv_write = (p1 * write_time - p2 * read_time) / det
        if (
            inv_read > 0
            and inv_write > 0
            and _plausible(1 / inv_read)
            and _plausible(1 / inv_write)
        ):
            return Rates(1 / inv_read, 1 / inv_write, "wall time")
    raise BackendError(
        f"the server at {public_url(base_url)} gave no usage or timings to measure its speed from",
        location=Location(COMMAND_LINE),
        path=("--probe",),
        code="probe-no-usage",
    )
