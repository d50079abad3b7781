"""A local OpenAI Batch API for the tests: the files and batches endpoints as OpenAI documents
them, over real HTTP (the standard library's server in a thread, as :mod:`loopback`).

- ``POST /v1/files`` (multipart upload, ``purpose=batch``), ``GET /v1/files/{id}``,
  ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}``, ``GET /v1/batches`` (a list page),
  ``POST /v1/batches/{id}/cancel``.

A batch goes ``validating`` → ``in_progress`` → ``finalizing`` → ``completed`` one step per
retrieve (while :attr:`BatchServer.hold` is clear it stays ``in_progress``); a batch of a
shard named in :attr:`BatchServer.expire` ends ``expired`` instead, its requests in
:attr:`BatchServer.unfinished` left with a ``batch_expired`` error line; a request in
:attr:`BatchServer.errors` gets an HTTP 400 line in the error file; a cancelled batch ends
``cancelled`` with what it had done. :attr:`BatchServer.created` counts the batches made.
"""

from __future__ import annotations

import email.parser
import email.policy
import http.server
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from loopback import QuietHandler, chat_completion, send_json, serving


@dataclass
class BatchServer:
    """What the server holds and how it behaves (set by each test)."""

    answer: Callable[[str, dict[str, Any]], str]
    errors: set[str] = field(default_factory=set)
    unfinished: set[str] = field(default_factory=set)
    expire: set[str] = field(default_factory=set)
    #: Shards whose batch fails as a whole while validating (a model the API does not serve).
    refuse: set[str] = field(default_factory=set)
    hold: threading.Event = field(default_factory=threading.Event)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    created: int = 0
    #: Output files in ASCII JSON (escapes), else raw UTF-8 as OpenAI's may be.
    ascii: bool = True
    #: How many downloads of a file to cut half-way (the connection closed early): with a
    #: ``Content-Length`` (``"length"``) or without one (``"no-length"``).
    cut: int = 0
    cut_kind: str = "length"
    #: What an errored request's line says (a server may echo the request's headers).
    error_message: str = "bad request"
    #: The ids of the batches made, by their number (a server may echo a header in them).
    batch_ids: str = "batch_{:04d}"
    #: Seconds between the 10-byte pieces of every GET's JSON reply (0: sent at once).
    trickle: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.hold.set()

    def add_file(self, name: str, data: bytes, purpose: str) -> dict[str, Any]:
        fid = f"file-{len(self.files) + 1:04d}"
        self.files[fid] = (name, data)
        return {
            "id": fid,
            "object": "file",
            "bytes": len(data),
            "created_at": int(time.time()),
            "filename": name,
            "purpose": purpose,
            "status": "processed",
        }

    def create(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created += 1
        bid = self.batch_ids.format(self.created)
        _, data = self.files[body["input_file_id"]]
        total = sum(1 for line in data.splitlines() if line.strip())
        batch = {
            "id": bid,
            "object": "batch",
            "endpoint": body["endpoint"],
            "errors": None,
            "input_file_id": body["input_file_id"],
            "completion_window": body["completion_window"],
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": int(time.time()),
            "request_counts": {"total": total, "completed": 0, "failed": 0},
            "metadata": body.get("metadata"),
        }
        self.batches[bid] = batch
        return batch

    def step(self, batch: dict[str, Any]) -> None:
        """The next status of a batch (see the module's docstring)."""
        status = batch["status"]
        name = self.files[batch["input_file_id"]][0]
        if status == "validating" and any(name.endswith(shard) for shard in self.refuse):
            batch["status"] = "failed"
            batch["errors"] = {
                "object": "list",
                "data": [{"code": "model_not_found", "message": "The model does not exist."}],
            }
        elif status == "validating":
            batch["status"] = "in_progress"
        elif status == "in_progress" and self.hold.is_set():
            batch["status"] = "finalizing"
        elif status == "finalizing":
            name = self.files[batch["input_file_id"]][0]
            expired = any(name.endswith(shard) for shard in self.expire)
            self.finish(batch, "expired" if expired else "completed")
        elif status == "cancelling":
            self.finish(batch, "cancelled")

    def finish(self, batch: dict[str, Any], status: str) -> None:
        """The batch's output and error files, made as OpenAI makes them."""
        _, data = self.files[batch["input_file_id"]]
        out: list[dict[str, Any]] = []
        err: list[dict[str, Any]] = []
        for raw in data.splitlines():
            if not raw.strip():
                continue
            line = json.loads(raw)
            rid = line["custom_id"]
            base = {"id": f"batch_req_{rid}", "custom_id": rid}
            if status == "cancelled" or (status == "expired" and rid in self.unfinished):
                if status == "expired":
                    err.append(
                        {
                            **base,
                            "response": None,
                            "error": {
                                "code": "batch_expired",
                                "message": "This request could not be executed before the "
                                "completion window expired.",
                            },
                        }
                    )
                continue
            if rid in self.errors:
                body = {"error": {"message": self.error_message, "type": "invalid_request_error"}}
                err.append({**base, "response": {"status_code": 400, "body": body}, "error": None})
                continue
            completion = chat_completion(self.answer(rid, line["body"]))
            out.append(
                {
                    **base,
                    "response": {"status_code": 200, "request_id": rid, "body": completion},
                    "error": None,
                }
            )
        name = batch["id"]
        for lines, key in ((out, "output_file_id"), (err, "error_file_id")):
            if lines:
                text = "".join(json.dumps(x, ensure_ascii=self.ascii) + "\n" for x in lines)
                text = text.encode()
                batch[key] = self.add_file(f"{name}_{key}.jsonl", text, "batch_output")["id"]
        batch["request_counts"] = {
            "total": batch["request_counts"]["total"],
            "completed": len(out),
            "failed": len(err),
        }
        batch["status"] = status


def handler_for(server: BatchServer) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        def _body(self) -> bytes:
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

        def do_POST(self) -> None:
            path = self.path.split("?")[0]
            with server.lock:
                if path == "/v1/files":
                    head = f"Content-Type: {self.headers['Content-Type']}\r\n\r\n".encode()
                    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                        head + self._body()
                    )
                    parts = {
                        p.get_param("name", header="content-disposition"): p
                        for p in msg.iter_parts()
                    }  # type: ignore[attr-defined]
                    upload = parts["file"]
                    data = upload.get_payload(decode=True)
                    purpose = parts["purpose"].get_payload(decode=True).decode()
                    send_json(self, server.add_file(upload.get_filename(), data, purpose))
                elif path == "/v1/batches":
                    send_json(self, server.create(json.loads(self._body())))
                elif path.startswith("/v1/batches/") and path.endswith("/cancel"):
                    batch = server.batches[path.split("/")[3]]
                    batch["status"] = "cancelling"
                    send_json(self, batch)
                else:
                    send_json(self, {"error": {"message": "no such endpoint"}}, 404)

        def _send(self, payload: object) -> None:
            if not server.trickle:
                send_json(self, payload)
                return
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            for start in range(0, len(data), 10):
                self.wfile.write(data[start : start + 10])
                self.wfile.flush()
                time.sleep(server.trickle)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            parts = path.split("/")
            with server.lock:
                if path == "/v1/batches":
                    data = sorted(server.batches.values(), key=lambda b: b["id"], reverse=True)
                    page = {
                        "object": "list",
                        "data": data,
                        "first_id": data[0]["id"] if data else None,
                        "last_id": data[-1]["id"] if data else None,
                        "has_more": False,
                    }
                    self._send(page)
                elif len(parts) == 4 and parts[2] == "batches" and parts[3] in server.batches:
                    batch = server.batches[parts[3]]
                    server.step(batch)
                    self._send(batch)
                elif len(parts) == 5 and parts[2] == "files" and parts[4] == "content":
                    _, data = server.files[parts[3]]
                    self.send_response(200)
                    self.send_header("Content-Type", "application/octet-stream")
                    if server.cut and server.cut_kind == "no-length":
                        server.cut -= 1
                        self.send_header("Connection", "close")
                        self.end_headers()
                        self.wfile.write(data[: len(data) // 2])
                        self.close_connection = True
                        return
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if server.cut:
                        server.cut -= 1
                        self.wfile.write(data[: len(data) // 2])
                        self.close_connection = True
                        return
                    self.wfile.write(data)
                else:
                    send_json(self, {"error": {"message": "not found"}}, 404)

    return Handler


@contextmanager
def batch_api(server: BatchServer) -> Iterator[str]:
    """Serves ``server`` on a free port until the block ends; yields the ``/v1`` base URL."""
    with serving(handler_for(server)) as url:
        yield url
