"""Redirects of promptc's own HTTP requests (the context probes of ``run``, ``plan
--probe``, the embeddings endpoint, eval's endpoint check), through real local servers: the
API key never follows a redirect to another origin, and a request with a body is never
turned into a GET without it."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from typing import ClassVar

import pytest
from loopback import QuietHandler, send_json, serving
from promptc.replies import urlopen

Seen = tuple[str, str, "str | None", "str | None"]


class Server(QuietHandler):
    """``/v1/go?to=URL`` redirects there with :attr:`code`; any other path answers ``{}``,
    recording its method, path and credentials."""

    code: ClassVar[int] = 302
    seen: ClassVar[list[tuple[str, str, str | None, str | None]]] = []

    def _answer(self) -> None:
        if self.path.startswith("/v1/go?to="):
            self.send_response(self.code)
            self.send_header("Location", self.path.removeprefix("/v1/go?to="))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        auth, cookie = self.headers["Authorization"], self.headers["Cookie"]
        self.seen.append((self.command, self.path, auth, cookie))
        send_json(self, {})

    do_GET = do_POST = _answer


def _open(url: str, data: bytes | None = None) -> None:
    headers = {"Authorization": "Bearer sk-test-key", "Cookie": "s=1"}
    with urlopen(urllib.request.Request(url, data=data, headers=headers), 5) as reply:
        assert reply.status == 200


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_credentials_follow_a_redirect_within_the_origin_only(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """urllib copies every header to whatever URL a server names: the key went to another
    host when a probe's ``GET /v1/models`` was redirected there."""
    monkeypatch.setattr(Server, "code", code)
    monkeypatch.setattr(Server, "seen", [])
    with serving(Server) as other, serving(Server) as base:
        _open(f"{base}/go?to={other}/models")
        _open(f"{base}/go?to=/v1/own")
    key = ("Bearer sk-test-key", "s=1")
    assert Server.seen == [("GET", "/v1/models", None, None), ("GET", "/v1/own", *key)]


@pytest.mark.parametrize("code", [301, 302, 303, 307, 308])
def test_a_request_with_a_body_is_not_redirected(
    code: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``plan --probe`` followed a 302 of its POST as a GET without the request, and measured
    the other host's answer as the server's. A 301, 302 or 303 of a request with a body is
    refused, saying why (urllib itself refuses a 307 or 308 of a POST)."""
    monkeypatch.setattr(Server, "code", code)
    monkeypatch.setattr(Server, "seen", [])
    with serving(Server) as base, pytest.raises(urllib.error.HTTPError) as e:
        _open(f"{base}/go?to={base}/chat/completions", data=b"{}")
    assert e.value.code == code
    if code < 307:
        assert str(e.value.reason) == (
            f"a redirect (HTTP {code}) to {base}/chat/completions would send the request as "
            "a GET without its body"
        )
    assert Server.seen == []


class Trickle(QuietHandler):
    """Sends its status line at once, then a header byte a second for a minute."""

    def do_GET(self) -> None:
        self.wfile.write(b"HTTP/1.1 200 OK\r\n")
        self.wfile.flush()
        for byte in b"X-Slow: " + b"z" * 60:
            self.wfile.write(bytes([byte]))
            self.wfile.flush()
            time.sleep(1)


def test_headers_sent_a_byte_at_a_time_are_bounded_by_the_timeout() -> None:
    """urllib's timeout bounds each read, and a byte a second of headers never crosses it:
    run's context probe and eval's endpoint check waited without end. The whole wait for
    the status and headers is bounded by the timeout (far from the minute the server
    trickles)."""
    with serving(Trickle) as base:
        started = time.monotonic()
        with pytest.raises(TimeoutError) as e:
            urlopen(f"{base}/models", 2)
        assert time.monotonic() - started < 30
    assert str(e.value) == f"no answer from {base}/models within 2 s"
