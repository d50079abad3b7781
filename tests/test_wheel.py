"""The wheel ships everything ``promptc build`` needs: built, installed into a fresh virtual
environment (without the system site-packages), and run on a copied example spec outside the
source tree. Slow (a minute or two: the venv installs promptc's dependencies with pip)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*args: str | Path, cwd: Path | None = None, env: dict[str, str] | None = None) -> str:
    proc = subprocess.run(
        [str(a) for a in args], check=False, capture_output=True, text=True, cwd=cwd, env=env
    )
    assert proc.returncode == 0, f"{args}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    return proc.stdout


def test_wheel_installs_and_builds_outside_the_source_tree(tmp_path: Path) -> None:
    # Build from a clean copy, so that setuptools' build/ and egg-info stay out of the tree.
    source = tmp_path / "source"
    anywhere = shutil.ignore_patterns(
        ".git",
        ".venv",
        "*.egg-info",
        "__pycache__",
        ".hypothesis",
        ".pytest_cache",
        ".mypy_cache",
        ".ruff_cache",
    )

    def ignore(folder: str, names: list[str]) -> set[str]:
        # setuptools' build/ and dist/ at the top only: compiler/promptc/build is the package's.
        top = {"build", "dist"} & set(names) if Path(folder) == REPO else set()
        return set(anywhere(folder, names)) | top

    shutil.copytree(REPO, source, ignore=ignore)
    wheels = tmp_path / "wheels"
    run(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        wheels,
        source,
    )
    [wheel] = wheels.glob("promptc_compiler-*.whl")

    import zipfile

    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "promptc/templates/batch.j2",
        "promptc/templates/auto-demo.j2",
        "promptc/templates/partials/questions.j2",
        "promptc/grammars/answer_format.lark",
        "promptc/schema/spec.schema.json",
    ):
        assert shipped in names, shipped

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", venv)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / "python"
    run(python, "-m", "pip", "install", "-q", "--disable-pip-version-check", wheel)

    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "specs" / "nli.yaml", project / "nli.yaml")
    shutil.copytree(REPO / "specs" / "data", project / "data")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = f"{bindir}{os.pathsep}{env.get('PATH', '')}"

    where = run(
        python,
        "-c",
        "import promptc, sys; print(promptc.__file__); print(sys.prefix)",
        cwd=project,
        env=env,
    )
    assert str(REPO) not in where and str(venv) in where

    out = run(bindir / "promptc", "build", "nli.yaml", "-o", "build", cwd=project, env=env)
    assert out.startswith("built nli (batch): 4 requests for 18 items")
    built = project / "build"
    assert {"requests.jsonl", "batches.jsonl", "manifest.json"} <= {p.name for p in built.iterdir()}
    # The installed promptc renders exactly what the source tree renders.
    golden = REPO / "tests" / "golden" / "nli" / "batch" / "requests.jsonl"
    assert (built / "requests.jsonl").read_text(encoding="utf-8") == golden.read_text(
        encoding="utf-8"
    )
    manifest = json.loads((built / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["templates"][0]["name"] == "promptc/batch.j2"

    check = run(bindir / "promptc", "check", "nli.yaml", cwd=project, env=env)
    assert check.startswith("nli.yaml: valid")
    schema = json.loads(run(bindir / "promptc", "schema", cwd=project, env=env))
    # The shipped schema: a whole spec, or (with extends) a layer over another.
    assert {"spec", "layer"} <= set(schema["$defs"]) and "properties" in schema["$defs"]["spec"]
