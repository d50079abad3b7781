"""Bounded reads of what servers reply: every HTTP body promptc reads from a server (a chat
completion, an error page, a model list, a Batch API object or file, embeddings, a probe) is
read as it arrives and refused past a cap its caller states beside it, with the reason. A
server that sends a huge or endless body costs at most the cap in memory (or on disk), never
all it sends, and the reader ends in :class:`ReplyTooLarge`, which names what was read and
from where (the URL without credentials: :func:`promptc.text.public_url`). A reader given a
time (``seconds``) also ends a reply that takes longer in all, in :class:`ReplyTooSlow`: a
socket's timeout bounds each read, and a server sending a byte at a time would never trip it.

Three forms of reading share one count (:class:`Cap`):

- :func:`read_reply`: a file-like response (``urllib``'s, or an ``HTTPError``): at most the cap
  and one byte more are read;
- :func:`join_chunks` / :func:`ajoin_chunks`: the chunks of a streamed response (the openai
  client's ``iter_bytes``), joined;
- :func:`capped_chunks`: the same chunks handed on one at a time (a download written to disk).

:func:`urlopen` is ``urllib.request.urlopen`` but that a redirect's body, which urllib reads
whole before it follows the redirect, is read first within :data:`MAX_ERROR_BYTES`
(:class:`BoundedRedirects`).
"""

from __future__ import annotations

import base64
import functools
import io
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterable, Iterable, Iterator
from email.message import Message
from typing import IO, Any, Protocol

from promptc.errors import BackendError, Location, UsageError
from promptc.text import public_url, url_problem

__all__ = [
    "MAX_ERROR_BYTES",
    "MESSAGES",
    "Cap",
    "ReplyTooLarge",
    "ReplyTooSlow",
    "ajoin_chunks",
    "capped_chunks",
    "join_chunks",
    "read_reply",
    "urlopen",
]

#: The most of an error status's body read (bytes): an API's error is a JSON object of a few
#: hundred bytes, of which a message shows 300 characters; a megabyte is room for any of them
#: (and for an HTML error page), and no more is held for a server that sends gigabytes.
MAX_ERROR_BYTES = 1_000_000

MESSAGES: dict[str, str] = {
    "reply-too-large": "{what} from {url} is over {limit:,} bytes; promptc stopped reading it "
    "there",
    "reply-too-slow": "{what} from {url} took over {seconds:g} s",
}
HINTS: dict[str, str] = {
    "reply-too-large": "check that {url} is the server meant (a proxy or another service may "
    "answer in its place)",
    "reply-too-slow": "wait, or raise --timeout",
}


class ReplyTooLarge(BackendError):
    """A server's reply that is longer than its reader's cap (``reply-too-large``).

    Attributes:
        what: What was read (``the error body of POST /chat/completions``).
        url: Where from, without credentials.
        limit: The cap, in bytes.
    """

    def __init__(self, what: str, url: str, limit: int) -> None:
        self.what = what
        self.url = public_url(url)
        self.limit = limit
        code = "reply-too-large"
        super().__init__(
            MESSAGES[code].format(what=what, url=self.url, limit=limit),
            hint=HINTS[code].format(url=self.url),
            code=code,
        )


class ReplyTooSlow(BackendError):
    """A server's reply not read whole within its reader's time (``reply-too-slow``).

    Attributes:
        what: What was read.
        url: Where from, without credentials.
        seconds: The time it had, from the start of its reading.
    """

    def __init__(self, what: str, url: str, seconds: float) -> None:
        self.what = what
        self.url = public_url(url)
        self.seconds = seconds
        code = "reply-too-slow"
        super().__init__(
            MESSAGES[code].format(what=what, url=self.url, seconds=seconds),
            hint=HINTS[code],
            code=code,
        )


class Cap:
    """The count of one reply's bytes against its cap, and of its time against its deadline.

    Args:
        limit: The most bytes read.
        what: What is read, for the message.
        url: Where from (credentials are left out of the message).
        seconds: The most time the whole reply is read in, from now; ``None``: no bound.
    """

    def __init__(self, limit: int, what: str, url: str, seconds: float | None = None) -> None:
        self.limit = limit
        self.what = what
        self.url = url
        self.read = 0
        self.seconds = seconds
        self.started = time.monotonic()

    def take(self, chunk: bytes) -> bytes:
        """Counts ``chunk`` in and hands it back.

        Raises:
            ReplyTooLarge: The reply is now past the cap.
            ReplyTooSlow: The reply is now past its time.
        """
        self.read += len(chunk)
        if self.read > self.limit:
            raise ReplyTooLarge(self.what, self.url, self.limit)
        if self.seconds is not None and time.monotonic() - self.started > self.seconds:
            raise ReplyTooSlow(self.what, self.url, self.seconds)
        return chunk


class Readable(Protocol):
    """A file-like response: ``urllib``'s, or an ``HTTPError``."""

    def read(self, amt: int, /) -> bytes: ...


def check_base_url(
    url: str,
    *,
    named: str = "",
    where: str = "<command line>",
    option: str | None = "--base-url",
    hint: str | None = None,
) -> None:
    """Refuses a URL no server answers at (:func:`promptc.text.url_problem`) before anything
    is sent: a port past 65535 or an unclosed IPv6 bracket would end in the HTTP client's
    ``ValueError`` (exit 3).

    Args:
        named: What the URL is, before it in the message (``$OPENAI_BASE_URL``).
        where: The message's location; ``option`` its key path.

    Raises:
        UsageError: ``bad-url``.
    """
    problem = url_problem(url)
    if problem is not None:
        raise UsageError(
            f"{named + ' ' if named else ''}{public_url(url)!r} is not a server's URL: {problem}",
            location=Location(where),
            path=(option,) if option else (),
            hint=hint,
            code="bad-url",
        )


def read_reply(
    response: Readable, limit: int, what: str, url: str, seconds: float | None = None
) -> bytes:
    """The body of a file-like response, at most ``limit`` bytes, read within ``seconds`` in
    all when given (a socket's timeout bounds each read, and a server sending a byte at a
    time would never trip it).

    Raises:
        ReplyTooLarge: The body is longer; only ``limit`` and one byte more were read.
        TimeoutError: The whole body took longer than ``seconds``.
    """
    cap = Cap(limit, what, url, seconds)
    if seconds is None:
        return cap.take(response.read(limit + 1))
    read = getattr(response, "read1", response.read)  # what has arrived, not a full buffer
    body = bytearray()
    try:
        while chunk := read(1 << 16):
            body += cap.take(chunk)
    except ReplyTooSlow as e:
        raise TimeoutError(e.message) from None  # as a socket's own timeout: its callers' kind
    return bytes(body)


def join_chunks(
    chunks: Iterable[bytes], limit: int, what: str, url: str, seconds: float | None = None
) -> bytes:
    """The chunks of a streamed body joined, at most ``limit`` bytes, within ``seconds`` in
    all when given.

    Raises:
        ReplyTooLarge: The body is longer; no chunk after the one that passed the cap is read.
        ReplyTooSlow: The body took longer (raised when a chunk arrives past its time).
    """
    return b"".join(capped_chunks(chunks, limit, what, url, seconds))


def capped_chunks(
    chunks: Iterable[bytes], limit: int, what: str, url: str, seconds: float | None = None
) -> Iterator[bytes]:
    """The chunks of a streamed body, one at a time, at most ``limit`` bytes in all, within
    ``seconds`` from the first one asked for when given.

    Raises:
        ReplyTooLarge: The body is longer (raised when the chunk that passes the cap arrives).
        ReplyTooSlow: The body took longer (raised when a chunk arrives past its time).
    """
    cap = Cap(limit, what, url, seconds)
    for chunk in chunks:
        yield cap.take(chunk)


async def ajoin_chunks(chunks: AsyncIterable[bytes], limit: int, what: str, url: str) -> bytes:
    """:func:`join_chunks` of an asynchronous stream.

    Raises:
        ReplyTooLarge: The body is longer; no chunk after the one that passed the cap is read.
    """
    cap = Cap(limit, what, url)
    body = bytearray()
    async for chunk in chunks:
        body += cap.take(chunk)
    return bytes(body)


class BoundedRedirects(urllib.request.HTTPRedirectHandler):
    """Redirects followed as urllib follows them, but that a redirect's body (which urllib
    reads whole, to free the connection, before it follows) is read here first, at most
    :data:`MAX_ERROR_BYTES`: urllib's own read then finds nothing left."""

    def http_error_302(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
    ) -> Any:
        read_reply(fp, MAX_ERROR_BYTES, f"the body of a redirect (HTTP {code})", req.full_url)
        return super().http_error_302(req, fp, code, msg, headers)  # type: ignore[arg-type]

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> urllib.request.Request | None:
        """urllib's redirected request, but never a request with a body turned into a GET
        without it (a 301, 302 or 303 of a POST: its answer would be another request's), and
        without the credentials (``Authorization``, ``Cookie``) when the redirect leaves the
        origin: urllib copies every header to whatever host a server names."""
        if req.data is not None and code in (301, 302, 303):
            raise urllib.error.HTTPError(
                req.full_url,
                code,
                f"a redirect (HTTP {code}) to {newurl} would send the request as a GET "
                "without its body",
                headers,
                io.BytesIO(),
            )
        new = super().redirect_request(req, fp, code, msg, headers, newurl)  # type: ignore[arg-type]
        if new is not None and _origin(new.full_url) != _origin(req.full_url):
            for name in ("Authorization", "Cookie"):
                new.remove_header(name)  # urllib stores them capitalized, as added
        return new


def _origin(url: str) -> tuple[str, str, int | None]:
    """A URL's scheme, host and port (the default port of its scheme when it gives none)."""
    parts = urllib.parse.urlsplit(url)
    default = {"http": 80, "https": 443}.get(parts.scheme.lower())
    try:
        port = parts.port or default
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


@functools.cache
def _opener() -> urllib.request.OpenerDirector:
    return urllib.request.build_opener(BoundedRedirects)


def urlopen(request: urllib.request.Request | str, timeout: float) -> Any:
    """``urllib.request.urlopen(request, timeout=timeout)`` with :class:`BoundedRedirects`.

    A URL's user name and password (``http://user:pw@host/v1``, a proxy's) are sent as Basic
    authentication, as the chat client sends them, unless the request carries its own
    ``Authorization``: urllib would take them for part of the host name.

    ``timeout`` bounds the whole wait for the answer's status and headers (redirects
    included), not each read alone: a server that sends its headers a byte at a time would
    hold the caller without end. The caller bounds the body (:func:`read_reply`). Past it,
    the request is left to a thread of its own (a daemon, gone with the process).

    Raises:
        ReplyTooLarge: A redirect's body is longer than :data:`MAX_ERROR_BYTES`.
        urllib.error.URLError: As ``urlopen`` (an ``HTTPError`` for an error status).
        TimeoutError: No status and headers within ``timeout`` seconds.
    """
    if isinstance(request, str):
        request = urllib.request.Request(request)
    parts = urllib.parse.urlsplit(request.full_url)
    if parts.username is not None or parts.password is not None:
        netloc = parts.netloc.rpartition("@")[2]
        request.full_url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
        if not request.has_header("Authorization"):
            user = urllib.parse.unquote(parts.username or "")
            secret = urllib.parse.unquote(parts.password or "")
            token = base64.b64encode(f"{user}:{secret}".encode()).decode("ascii")
            request.add_header("Authorization", f"Basic {token}")
    done: list[Any] = []
    failed: list[BaseException] = []

    def opening() -> None:
        try:
            done.append(_opener().open(request, timeout=timeout))
        except Exception as e:  # noqa: BLE001 - raised again in the caller's thread
            failed.append(e)

    worker = threading.Thread(target=opening, name="promptc-urlopen", daemon=True)
    worker.start()
    worker.join(timeout)
    if failed:
        raise failed[0]
    if not done:
        raise TimeoutError(f"no answer from {public_url(request.full_url)} within {timeout:g} s")
    return done[0]
