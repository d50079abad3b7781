"""Editors validate a spec that ``promptc init`` wrote into an empty folder, with no edits:
yaml-language-server (what VS Code's YAML extension and most editors run), spoken to over its
stdio LSP, resolves the spec's modeline from the new folder and reports the schema's errors.

Needs ``yaml-language-server`` (``npm install yaml-language-server``) on PATH, or its
executable in ``$YAML_LANGUAGE_SERVER``; skipped without it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path
from typing import IO, Any

import pytest
from promptc.cli.app import run

SERVER = os.environ.get("YAML_LANGUAGE_SERVER") or shutil.which("yaml-language-server")

pytestmark = pytest.mark.skipif(SERVER is None, reason="yaml-language-server is not installed")


class Client:
    """A minimal LSP client: JSON-RPC messages with Content-Length headers."""

    def __init__(self, command: list[str]) -> None:
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
        )
        self.next_id = 0

    def send(self, method: str, params: Any, request: bool = False) -> None:
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, "params": params}
        if request:
            self.next_id += 1
            message["id"] = self.next_id
        body = json.dumps(message).encode()
        stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
        stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        stdin.flush()

    def receive(self) -> dict[str, Any]:
        stdout: IO[bytes] = self.proc.stdout  # type: ignore[assignment]
        length = 0
        while (line := stdout.readline().strip()) != b"":
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        message: dict[str, Any] = json.loads(stdout.read(length))
        if message.get("method") == "workspace/configuration":  # the server asks settings
            reply = {"jsonrpc": "2.0", "id": message["id"], "result": [{}] * 8}
            body = json.dumps(reply).encode()
            stdin: IO[bytes] = self.proc.stdin  # type: ignore[assignment]
            stdin.write(f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
            stdin.flush()
        return message

    def diagnostics(self, uri: str, timeout: float = 60) -> list[dict[str, Any]]:
        """The diagnostics the server publishes for ``uri`` (its last word within a pause)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = self.receive()
            published = message.get("method") == "textDocument/publishDiagnostics"
            if published and message["params"]["uri"] == uri:
                found: list[dict[str, Any]] = message["params"]["diagnostics"]
                return found
        raise AssertionError(f"no diagnostics for {uri} within {timeout} s")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()


def _check(client: Client, path: Path, version: int) -> list[dict[str, Any]]:
    uri = path.as_uri()
    text = path.read_text(encoding="utf-8")
    item = {"uri": uri, "languageId": "yaml", "version": version, "text": text}
    client.send("textDocument/didOpen", {"textDocument": item})
    found = client.diagnostics(uri)
    client.send("textDocument/didClose", {"textDocument": {"uri": uri}})
    return found


def test_an_init_spec_validates_in_yaml_language_server(tmp_path: Path) -> None:
    folder = tmp_path / "anywhere"
    assert run(["init", str(folder)]) == 0
    wrong = folder / "wrong" / "task.yaml"
    wrong.parent.mkdir()
    shutil.copy(folder / "spec.schema.json", wrong.parent / "spec.schema.json")
    text = (folder / "task.yaml").read_text(encoding="utf-8")
    wrong.write_text(text.replace("batch_size: 8", "batch_sise: 8"), encoding="utf-8")
    client = Client([str(SERVER), "--stdio"])
    try:
        client.send(
            "initialize",
            {"processId": os.getpid(), "rootUri": tmp_path.as_uri(), "capabilities": {}},
            request=True,
        )
        while "result" not in client.receive():
            pass
        client.send("initialized", {})
        client.send(
            "workspace/didChangeConfiguration",
            {"settings": {"yaml": {"validate": True, "schemaStore": {"enable": False}}}},
        )
        good = _check(client, folder / "task.yaml", 1)
        assert good == []
        bad = _check(client, wrong, 1)
        messages = [d["message"] for d in bad]
        assert any("batch_sise" in m for m in messages), messages
        assert not any("Unable to load schema" in m for m in messages), messages
    finally:
        client.close()
