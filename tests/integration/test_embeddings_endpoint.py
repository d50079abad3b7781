"""Similarity selection through a real OpenAI-compatible ``/v1/embeddings`` endpoint.

llama.cpp's server answers ``/v1/embeddings`` only when started for it (the embedded server's
``embedding`` mode), so these tests start their own instance of it (the chat server of the
other integration tests runs without). SmolLM2 has no pooling layer of its own: the server
mean-pools its token vectors, one vector per text, and keeps the texts of one request apart,
so these specs send several texts per request and several requests at once. A server that
answers one vector per token instead (llama-cpp-python's, for such a model) is played by a
scripted loopback server: promptc mean-pools those itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from llm_server import running_server
from loopback import QuietHandler, send_json, serving

QUESTIONS = [
    "A baker bakes 12 loaves of bread and sells 5. How many are left?",
    "A farmer has 7 cows and buys 4 more. How many cows are there?",
    "Translate 'good morning' into French.",
    "What is the capital city of Italy?",
    "A train travels 60 km in one hour. How far does it go in 3 hours?",
    "Name the largest planet of the solar system.",
    "Tom has 3 boxes of 6 pencils. How many pencils does he have?",
    "Which ocean lies between Africa and Australia?",
]

SPEC = """\
promptc: 1
name: endpoint
instruction: Answer the question.
inputs:
  question: {{type: text}}
outputs:
  answer: {{type: text}}
data: {{path: data.jsonl, id: qid}}
strategy:
  kind: batch
  batch_size: 2
  selection:
    method: {method}
    cache_dir: cache
    embeddings: {{url: "{url}", model: smollm2, texts_per_request: 3, concurrency: 2}}
model: {{name: m}}
"""


@pytest.fixture(scope="module")
def embeddings_url() -> Iterator[str]:
    with running_server(embedding=True) as base_url:
        yield base_url


def _spec(folder: Path, url: str, method: str = "partition") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "data.jsonl").open("w", encoding="utf-8") as f:
        for i, q in enumerate(QUESTIONS):
            f.write(json.dumps({"qid": f"q{i}", "question": q}) + "\n")
    spec = folder / "spec.yaml"
    spec.write_text(SPEC.format(method=method, url=url), encoding="utf-8")
    return spec


@pytest.mark.llm
def test_endpoint_vectors_are_normalised_and_mean_pooled(embeddings_url: str) -> None:
    import numpy as np
    from promptc.ir import EmbeddingEndpoint
    from promptc.select.embed import EndpointEmbedder

    embedder = EndpointEmbedder(
        EmbeddingEndpoint(url=embeddings_url, model="smollm2", texts_per_request=3, concurrency=2)
    )
    runs = dict(embedder.embed_batches(QUESTIONS))  # runs of up to 3 texts, in any order
    vectors = np.vstack([runs[start] for start in sorted(runs)])
    assert vectors.shape == (len(QUESTIONS), 576)  # SmolLM2-135M's hidden size
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embedder.requests == 3  # 8 texts, 3 a request, answered in any order
    # The same text gives the same vector alone as beside others, in whatever order the
    # answers came.
    [(_, again)] = embedder.embed_batches([QUESTIONS[4]])
    assert np.allclose(again[0], vectors[4], atol=1e-4)
    # Math questions sit nearer each other than a math question and a geography one.
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 3]


@pytest.mark.llm
def test_similarity_build_through_the_endpoint_then_from_the_cache(
    embeddings_url: str, tmp_path: Path
) -> None:
    from promptc.build import build
    from promptc.select import embed
    from promptc.spec.lower import compile_spec

    spec = _spec(tmp_path, embeddings_url)
    first = build(compile_spec(spec), tmp_path / "a")
    info = first.manifest["selection"]
    assert isinstance(info, dict)
    assert info["embedding"]["backend"] == "openai-embeddings"
    assert info["embedding"]["model"] == "smollm2"
    assert info["embedding"]["source"] == embeddings_url
    assert info["embedding"]["dimension"] == 576
    cache = embed.EmbeddingCache(tmp_path / "cache")
    try:
        assert cache.count() == len(QUESTIONS)
    finally:
        cache.close()

    # A second build reads every vector from the cache: with the server gone (a closed
    # port), it still builds, byte for byte the same.
    text = spec.read_text(encoding="utf-8").replace(embeddings_url, "http://127.0.0.1:9/v1")
    spec.write_text(text, encoding="utf-8")
    second = build(compile_spec(spec), tmp_path / "b")
    a = (tmp_path / "a" / "batches.jsonl").read_bytes()
    assert a == (tmp_path / "b" / "batches.jsonl").read_bytes()
    assert second.manifest["selection"]["embedding"]["fingerprint"] == "model:smollm2"  # type: ignore[index]


def test_an_unreachable_endpoint_is_an_error_at_the_spec(tmp_path: Path) -> None:
    from promptc.build import build
    from promptc.errors import SelectionError
    from promptc.spec.lower import compile_spec

    spec = _spec(tmp_path, "http://127.0.0.1:9/v1")
    text = spec.read_text(encoding="utf-8").replace("concurrency: 2", "max_retries: 1")
    spec.write_text(text, encoding="utf-8")
    with pytest.raises(SelectionError) as caught:
        build(compile_spec(spec), tmp_path / "out")
    e = caught.value
    assert e.code == "endpoint-failed"
    assert "http://127.0.0.1:9/v1/embeddings" in str(e) and "after 2 tries" in str(e)
    assert e.location is not None and e.location.file.endswith("spec.yaml")


class _PerToken(QuietHandler):
    """Answers ``/v1/embeddings`` as a server without pooling does: for each text, one vector
    per token (here, per word)."""

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        data = [
            {"object": "embedding", "index": i, "embedding": [_word_vector(w) for w in t.split()]}
            for i, t in enumerate(body["input"])
        ]
        send_json(self, {"object": "list", "data": data, "model": body["model"]})


def _word_vector(word: str) -> list[float]:
    return [float(len(word)), float(ord(word[0]) % 7), 1.0]


def test_one_vector_per_token_is_mean_pooled_and_normalised() -> None:
    import numpy as np
    from promptc.ir import EmbeddingEndpoint
    from promptc.select.embed import EndpointEmbedder

    texts = ["one", "two words", "and three words"]
    with serving(_PerToken) as url:
        embedder = EndpointEmbedder(EmbeddingEndpoint(url=url, model="m", texts_per_request=2))
        runs = dict(embedder.embed_batches(texts))
    vectors = np.vstack([runs[start] for start in sorted(runs)])
    pooled: Any = np.array([np.mean([_word_vector(w) for w in t.split()], axis=0) for t in texts])
    expected = pooled / np.linalg.norm(pooled, axis=1, keepdims=True)
    assert vectors.shape == (3, 3) and embedder.requests == 2
    assert np.allclose(vectors, expected, atol=1e-6)
