"""Model outputs as files: one request's plain text, or JSON Lines in promptc's, a generic or
the OpenAI Batch API's output form, each record located at its file:line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptc.build.files import read_bounded
from promptc.build.targets import message_text
from promptc.errors import (
    Location,
    OutputParseError,
    PromptcError,
    UsageError,
)
from promptc.text import json_int

ID_KEYS = ("custom_id", "request_id", "id")


TEXT_KEYS = ("output", "text", "content")


JSONL_SUFFIXES = (".jsonl", ".ndjson")


#: The largest outputs file read (docs/limits.md).
MAX_OUTPUTS_BYTES = 1 << 31


@dataclass(frozen=True)
class OutputRecord:
    """One request's output as read from OUTPUTS, with where it was written."""

    request_id: str | None
    text: str
    location: Location
    #: What ``promptc run`` records beside a repair answer (``attempt``, ``of``,
    #: ``item_ids``, ``kind``), if the line has it.
    repair: Mapping[str, Any] | None = None
    #: The prompt hash the answer was produced for, when the line records it (``promptc
    #: run`` and ``collect`` do): an answer is credited only to a request with that prompt.
    prompt_sha256: str | None = None
    #: Why the model stopped (``stop``, ``length`` …), if the line says.
    finish_reason: str | None = None
    #: Why the model declined to answer, when the line says (``refusal``, as ``promptc run``
    #: records it, or the response message's).
    refusal: str | None = None


# --------------------------------------------------------------------------------------------
# Reading the outputs
# --------------------------------------------------------------------------------------------


def _lines(text: str) -> Iterator[str]:
    """The lines of a JSON Lines file, one at a time (a list of them all would be the file
    once more in memory): split on ``\\n`` alone (``str.splitlines`` also splits on a lone
    ``\\r`` and on U+2028, U+2029 and U+0085, which a JSON string may hold as they are)."""
    start = 0
    while (end := text.find("\n", start)) >= 0:
        yield text[start:end]
        start = end + 1
    yield text[start:]


def _looks_like_jsonl(path: Path, text: str) -> bool:
    if path.suffix.lower() in JSONL_SUFFIXES:
        return True
    for line in _lines(text):
        if not line.strip():
            continue
        try:
            data = json.loads(line, parse_int=json_int)
        except (ValueError, RecursionError):
            return False
        return isinstance(data, dict) and any(k in data for k in ID_KEYS)
    return False


def _record_finish(data: Mapping[str, Any]) -> str | None:
    """The finish reason of a line: promptc's ``finish_reason``, or the response's
    ``choices[0].finish_reason`` (an OpenAI Batch API line or a bare response)."""
    finish = data.get("finish_reason")
    if isinstance(finish, str):
        return finish
    body: Any = data.get("response")
    body = body.get("body", body) if isinstance(body, Mapping) else data
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        finish = choices[0].get("finish_reason")
    return finish if isinstance(finish, str) else None


def _record_refusal(data: Mapping[str, Any]) -> str | None:
    """The model's refusal: promptc's ``refusal``, or the response message's."""
    refusal = data.get("refusal")
    if not isinstance(refusal, str):
        body: Any = data.get("response")
        body = body.get("body", body) if isinstance(body, Mapping) else data
        choices = body.get("choices") if isinstance(body, Mapping) else None
        if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
            message = choices[0].get("message")
            if isinstance(message, Mapping):
                refusal = message.get("refusal")
    return characters(refusal) if isinstance(refusal, str) and refusal else None


def _record_text(data: Mapping[str, Any]) -> str | None:
    """The answer's text: a line's own ``output``, ``text`` or ``content`` (a string, or a
    list of parts as a chat message holds them), or the response's message content."""
    for k in TEXT_KEYS:
        v = data.get(k)
        if isinstance(v, str):
            return v
        if k == "content" and isinstance(v, list):
            return message_text(v)
    body: Any = data.get("response")
    if isinstance(body, Mapping):
        body = body.get("body", body)
    else:
        body = data
    choices = body.get("choices") if isinstance(body, Mapping) else None
    if isinstance(choices, list) and choices and isinstance(choices[0], Mapping):
        msg = choices[0].get("message")
        if isinstance(msg, Mapping):
            content = msg.get("content")
            text = message_text(content)
            if text is not None:  # a string, or a list of parts (their text joined)
                return text
            if content is None:
                return ""  # a refusal or a tool call: nothing to parse, every item missing
        text = choices[0].get("text")  # a completions response
        if isinstance(text, str):
            return text
    return None


#: A lone surrogate (``"\\ud800"`` in JSON) is no character: it could be neither compared nor
#: written back as UTF-8. Read as U+FFFD (one for one, so that offsets stay where they were).
_SURROGATE = re.compile("[\ud800-\udfff]")


def characters(text: str) -> str:
    """``text`` with each lone surrogate read as U+FFFD: what every command parses, so that
    ``promptc parse`` and ``run --parse`` give the same results for one answer."""
    return _SURROGATE.sub("\ufffd", text) if _SURROGATE.search(text) else text


def read_outputs(path: Path, errors: list[PromptcError]) -> Iterator[OutputRecord]:
    """The outputs of OUTPUTS; malformed lines go to ``errors`` (file:line:col) and are skipped.

    Raises:
        UsageError: The file cannot be read at all.
    """
    try:
        # utf-8-sig: a byte order mark at the start (as some editors and Windows tools write
        # it) is not part of the first line, as for specs and data files. Decoded from the
        # bytes, so that no line end is translated: a JSON line ends at "\n" alone.
        raw = read_bounded(path, MAX_OUTPUTS_BYTES)  # never a FIFO (a hang) nor a device
        if raw is None:
            raise UsageError(
                f"outputs file {str(path)!r} is larger than {MAX_OUTPUTS_BYTES} bytes, more "
                "than promptc reads",
                location=Location(str(path)),
                code="too-large",
            )
        text = raw.decode("utf-8-sig")
        del raw  # the text only, not the file's bytes too, while its lines are read
    except (OSError, UnicodeDecodeError) as e:
        raise UsageError(
            f"cannot read outputs file {str(path)!r}: {e}",
            location=Location(str(path)),
            code="unreadable-outputs",
        ) from None
    if not _looks_like_jsonl(path, text):
        # One request's output, read as a text file reads: "\r\n" and "\r" end lines as "\n".
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        yield OutputRecord(None, text, Location(str(path), 1, 1))
        return
    for lineno, line in enumerate(_lines(text), 1):
        line = line.removeprefix("\ufeff")  # files joined with cat: a BOM at each one's start
        if not line.strip():
            continue
        where = Location(str(path), lineno, 1)
        data = _json_object(line, where, errors)
        if data is None:
            continue
        rid = next((data[k] for k in ID_KEYS if isinstance(data.get(k), (str, int))), None)
        out = _record_text(data)
        if rid is None or out is None:
            errors.append(
                OutputParseError(
                    f"no request id: expected one of the keys {', '.join(ID_KEYS)}"
                    if rid is None
                    else "no output text: expected 'output' or 'text', or an OpenAI response "
                    "with response.body.choices[0].message.content",
                    location=where,
                    code="bad-outputs-line",
                )
            )
            continue
        repair = data.get("repair")
        prompt = data.get("prompt_sha256")
        yield OutputRecord(
            characters(str(rid)),
            characters(out),
            where,
            repair if isinstance(repair, Mapping) else None,
            prompt if isinstance(prompt, str) else None,
            _record_finish(data),
            _record_refusal(data),
        )


def _json_object(
    line: str, where: Location, errors: list[PromptcError]
) -> Mapping[str, Any] | None:
    """The JSON object of one line of OUTPUTS, or ``None`` with the reason in ``errors``."""
    try:
        data = json.loads(line, parse_int=json_int)
    except json.JSONDecodeError as e:
        errors.append(
            OutputParseError(
                f"not a JSON line: {e.msg}",
                location=Location(where.file, where.line, e.colno),
                code="bad-outputs-line",
            )
        )
        return None
    except RecursionError:  # arrays nested thousands deep: no output is (an integer past
        # Python's digit limit is read by json_int, so that the line's answer is kept)
        errors.append(
            OutputParseError(
                "not a JSON line: nested too deeply", location=where, code="bad-outputs-line"
            )
        )
        return None
    if not isinstance(data, dict):
        errors.append(
            OutputParseError(
                f"expected a JSON object with one of {', '.join(ID_KEYS)} and the output text, "
                f"found {type(data).__name__}",
                location=where,
                code="bad-outputs-line",
            )
        )
        return None
    return data
