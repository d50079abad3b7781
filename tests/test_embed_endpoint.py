"""The embeddings-endpoint client against a small real HTTP server on loopback that answers
as an OpenAI-compatible ``/v1/embeddings`` does, and fails on purpose: retries, backoff,
errors that name the endpoint, and the API key sent but never stored."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")

from promptc.errors import SelectionError
from promptc.ir import EmbeddingEndpoint
from promptc.select.embed import EndpointEmbedder, embed_texts
from promptc.text import public_url


def _vector(text: str, dims: int = 8) -> list[float]:
    digest = hashlib.sha256(text.encode()).digest()
    return [b - 127.5 for b in digest[:dims]]


class Server:
    """Answers POST /v1/embeddings; ``fail`` holds the statuses to answer first, in turn."""

    def __init__(self) -> None:
        self.fail: list[int] = []
        self.dims = 8
        self.seen: list[dict[str, object]] = []
        self.auth: list[str | None] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.seen.append(body)
                outer.auth.append(self.headers.get("Authorization"))
                if outer.fail:
                    status = outer.fail.pop(0)
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "try later"}')
                    return
                data = [
                    {"object": "embedding", "index": i, "embedding": _vector(t, outer.dims)}
                    for i, t in reversed(list(enumerate(body["input"])))  # any order
                ]
                payload = json.dumps({"data": data, "model": body["model"]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"


@pytest.fixture
def server() -> Iterator[Server]:
    s = Server()
    thread = threading.Thread(target=s.httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield s
    finally:
        s.httpd.shutdown()
        s.httpd.server_close()


def _embed(embedder: EndpointEmbedder, texts: list[str]) -> np.ndarray:
    """Every text's vector, in order, from the runs the embedder yields as answers come."""
    runs = dict(embedder.embed_batches(texts))
    return np.vstack([runs[start] for start in sorted(runs)])


def _endpoint(url: str, **kw: object) -> EmbeddingEndpoint:
    return EmbeddingEndpoint(url=url, model="m", **kw)  # type: ignore[arg-type]


def test_batched_concurrent_and_in_order(server: Server) -> None:
    texts = [f"text {i}" for i in range(23)]
    embedder = EndpointEmbedder(_endpoint(server.url, texts_per_request=5, concurrency=3))
    vectors = _embed(embedder, texts)
    expected = np.array([_vector(t) for t in texts])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(vectors, expected, atol=1e-6)
    assert sorted(len(b["input"]) for b in server.seen) == [3, 5, 5, 5, 5]  # type: ignore[arg-type]
    assert all(b["model"] == "m" for b in server.seen)


def test_busy_answers_are_retried(server: Server) -> None:
    server.fail = [503, 429]
    embedder = EndpointEmbedder(_endpoint(server.url, max_retries=2))
    assert _embed(embedder, ["a"]).shape == (1, 8)
    assert embedder.requests == 3


def test_retries_run_out_with_an_error_naming_the_endpoint(server: Server) -> None:
    server.fail = [503, 503, 503]
    with pytest.raises(SelectionError) as caught:
        _embed(EndpointEmbedder(_endpoint(server.url, max_retries=1)), ["a"])
    assert caught.value.code == "endpoint-failed"
    assert f"{server.url}/embeddings failed: HTTP 503" in str(caught.value)
    assert "after 2 tries" in str(caught.value)


def test_a_client_error_is_not_retried(server: Server) -> None:
    server.fail = [400]
    embedder = EndpointEmbedder(_endpoint(server.url, max_retries=5))
    with pytest.raises(SelectionError, match="HTTP 400"):
        _embed(embedder, ["a"])
    assert embedder.requests == 1


def test_the_key_is_sent_and_never_stored(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PROMPTC_TEST_KEY", "sk-secret-123")
    endpoint = _endpoint(server.url, api_key_env="PROMPTC_TEST_KEY")
    result = embed_texts(["a", "b", "a"], cache_dir=str(tmp_path), endpoint=endpoint)
    assert result.computed == 2 and result.vectors.shape == (3, 8)
    assert server.auth == ["Bearer sk-secret-123"]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert b"sk-secret-123" not in path.read_bytes()
    assert "sk-secret" not in json.dumps(result.model.describe("openai-embeddings"))
    # Warm: nothing is sent.
    again = embed_texts(["b", "a"], cache_dir=str(tmp_path), endpoint=endpoint)
    assert again.cached == 2 and again.computed == 0 and len(server.seen) == 1
    assert np.array_equal(again.vectors[1], result.vectors[0])


def test_a_missing_key_is_an_error() -> None:
    with pytest.raises(SelectionError, match="PROMPTC_NO_SUCH_KEY"):
        EndpointEmbedder(_endpoint("http://127.0.0.1:9/v1", api_key_env="PROMPTC_NO_SUCH_KEY"))


def test_recorded_urls_hold_no_credentials() -> None:
    assert (
        public_url("https://user:pw@example.com:8443/v1?key=x#f") == "https://example.com:8443/v1"
    )


def test_vectors_of_another_dimension_under_the_same_model_name_are_an_error(
    server: Server, tmp_path: Path
) -> None:
    # Every server of one model name shares the cache: a server behind which another model
    # answers (16 dimensions where the cache holds 8) is said, never mixed or a crash.
    endpoint = _endpoint(server.url)
    cache = str(tmp_path / "cache")
    embed_texts(["one", "two"], endpoint=endpoint, cache_dir=cache, spec_dir=tmp_path)
    server.dims = 16
    with pytest.raises(SelectionError) as e:
        embed_texts(["one", "three"], endpoint=endpoint, cache_dir=cache, spec_dir=tmp_path)
    assert e.value.code == "mixed-dimensions"
    assert "the embeddings of model 'm' have 8 and 16 dimensions" in e.value.format()


_NAMED = (
    "strategy.selection.embeddings.api_key_env: expected the name of an environment variable "
    "ending in _API_KEY"
)


@pytest.mark.parametrize(
    ("variable", "error"),
    [
        ("EMBEDDINGS_API_KEY", None),
        ("GITHUB_TOKEN", f"{_NAMED}, found 'GITHUB_TOKEN'"),
        ("AWS_SECRET_ACCESS_KEY", f"{_NAMED}, found 'AWS_SECRET_ACCESS_KEY'"),
    ],
)
def test_a_spec_sends_its_server_only_a_variable_named_as_an_api_key(
    tmp_path: Path, variable: str, error: str | None
) -> None:
    """A spec names both the server and the variable sent to it as a Bearer key: a spec from
    elsewhere must not be able to ship any variable of the user's (a GITHUB_TOKEN) to a host
    of its choosing."""

    (tmp_path / "d.jsonl").write_text(
        "".join(json.dumps({"id": f"{k}", "q": f"q{k}"}) + "\n" for k in range(4)),
        encoding="utf-8",
    )
    (tmp_path / "s.yaml").write_text(
        "promptc: 1\nname: s\ninstruction: Answer.\ninputs: {q: {type: text}}\n"
        "outputs: {a: {type: text}}\ndata: {path: d.jsonl}\nmodel: {name: m}\n"
        "strategy:\n  kind: batch\n  batch_size: 2\n  selection:\n    method: partition\n"
        f"    embeddings: {{url: 'http://127.0.0.1:9/v1', model: e, api_key_env: {variable}}}\n",
        encoding="utf-8",
    )
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "promptc", "check", str(tmp_path / "s.yaml")],
        capture_output=True,
        text=True,
        check=False,
    )
    if error is None:
        assert done.returncode == 0, done.stderr
    else:
        assert done.returncode == 1 and error in done.stderr, done.stderr
