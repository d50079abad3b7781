"""A scripted OpenAI-compatible server on 127.0.0.1 for the integration tests of ``promptc
run``: the standard library's HTTP server in a thread, with the request handler each test
module writes (what it answers, what it records). Real HTTP, real sockets; no mocked client.
"""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def send_json(
    handler: http.server.BaseHTTPRequestHandler,
    payload: object,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> None:
    """Writes ``payload`` as a JSON response (with ``headers`` besides its own)."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)


def chat_completion(
    text: str, prompt_tokens: int = 10, completion_tokens: int = 2
) -> dict[str, Any]:
    """A ``/v1/chat/completions`` response whose one choice says ``text``."""
    return {
        "id": "x",
        "object": "chat.completion",
        "created": 0,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "finish_reason": "stop",
                "message": {"role": "assistant", "content": text},
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class QuietHandler(http.server.BaseHTTPRequestHandler):
    """A handler that keeps the test output free of the server's access log."""

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def serving(handler: type[http.server.BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serves ``handler`` on a free port until the block ends; yields the ``/v1`` base URL."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        httpd.shutdown()
        httpd.server_close()
