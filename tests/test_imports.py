"""``import promptc`` and ``promptc build`` stay light: no torch, sentence-transformers,
openai or numpy unless a spec asks for embeddings. Checked in a fresh interpreter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HEAVY = (
    "torch",
    "sentence_transformers",
    "openai",
    "numpy",
    "transformers",
    "faiss",
    "matplotlib",
    "ray",
)

PROBE = """
import json, sys
{body}
print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))
"""


def loaded_after(body: str, cwd: Path = REPO) -> list[str]:
    code = PROBE.format(body=body, heavy=HEAVY)
    proc = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=cwd
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.splitlines()[-1])


def test_import_promptc_is_light() -> None:
    assert loaded_after("import promptc") == []


def test_the_public_api_is_light_until_used() -> None:
    """Every public name resolves without a heavy module; the API module itself loads only
    when a name is first used (``promptc --help`` must not pay for it)."""
    body = (
        "import promptc\n"
        "assert 'promptc.api' not in sys.modules\n"
        "for name in promptc.__all__:\n"
        "    getattr(promptc, name)\n"
        "assert 'promptc.api' in sys.modules\n"
    )
    assert loaded_after(body) == []


def test_the_public_api_lists_its_names() -> None:
    import promptc

    assert set(promptc.__all__) >= {
        "load_spec",
        "iter_requests",
        "write_build",
        "open_build",
        "parse_output",
        "run_build",
        "run_build_async",
        "evaluate",
        "plan_spec",
        "collect",
    }
    assert all(hasattr(promptc, name) for name in promptc.__all__)
    # No function shadows a subpackage: promptc.build and promptc.run stay modules.
    import promptc.build
    import promptc.run

    assert not callable(promptc.build) and not callable(promptc.run)
    assert callable(promptc.write_build) and callable(promptc.run_build)


def test_every_public_name_is_documented() -> None:
    """docs/api.md has a section for each name of ``promptc.__all__`` (its heading names it)."""
    import promptc

    text = (REPO / "docs" / "api.md").read_text(encoding="utf-8")
    headings = re.findall(r"^### .*$", text, flags=re.MULTILINE)
    named = {n for h in headings for n in re.findall(r"`([A-Za-z_]+)", h)}
    assert sorted(set(promptc.__all__) - {"__version__"} - named) == []


def test_import_every_back_end_stage_is_light() -> None:
    body = "import promptc.select.methods, promptc.render.renderer, promptc.build, promptc.cli.app"
    assert loaded_after(body) == []


@pytest.mark.parametrize("spec", ["math.yaml", "nli.yaml", "reading.yaml"])
def test_promptc_build_is_light(spec: str, tmp_path: Path) -> None:
    body = (
        "from promptc.cli.app import run\n"
        f"rc = run(['build', {str(REPO / 'specs' / spec)!r}, '-o', {str(tmp_path)!r}])\n"
        "assert rc == 0, rc\n"
    )
    assert loaded_after(body) == []
    assert (tmp_path / "requests.jsonl").is_file()


def test_help_imports_almost_nothing() -> None:
    body = (
        "from promptc.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    assert run(['--help']) == 0\n"
        "for m in ('jinja2', 'yaml', 'lark', 'jsonschema', 'rich', 'promptc.spec.lower'):\n"
        "    assert m not in sys.modules, m\n"
    )
    assert loaded_after(body) == []


def test_check_reads_files_without_hashing_them() -> None:
    """``promptc check`` names no digest: it reads the spec and data files without hashing
    them (a data file of a million rows is hundreds of megabytes). ``build`` of the same spec
    does take the sha256s."""
    body = (
        "import hashlib\n"
        "def refuse(*args, **kwargs):\n"
        "    raise AssertionError('check hashed a file')\n"
        "hashlib.sha256 = refuse\n"
        "from promptc.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run(['check', {str(REPO / 'specs' / 'math.yaml')!r}]) == 0\n"
    )
    assert loaded_after(body) == []


def test_check_of_a_plain_spec_loads_neither_jinja_nor_lark() -> None:
    """Jinja and lark take a few tens of milliseconds each to import: ``promptc check`` of a
    spec with no template of its own and no id or gold expression needs neither."""
    body = (
        "from promptc.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert run(['check', {str(REPO / 'specs' / 'math.yaml')!r}]) == 0\n"
        "for m in ('jinja2', 'lark'):\n"
        "    assert m not in sys.modules, m\n"
    )
    assert loaded_after(body) == []


def test_a_task_compiled_without_digests_differs_only_in_its_sha256s() -> None:
    from promptc.spec.lower import compile_spec

    spec = REPO / "specs" / "math.yaml"
    full, light = compile_spec(spec), compile_spec(spec, digests=False)
    assert len(full.spec.sha256) == 64 and full.data is not None and len(full.data.sha256) == 64
    assert light.spec.sha256 == "" and light.data is not None and light.data.sha256 == ""
    assert list(light.items) == list(full.items) and light.outputs == full.outputs


def test_parse_of_a_build_loads_neither_the_front_end_nor_the_run_engines(
    tmp_path: Path,
) -> None:
    """``promptc parse BUILD OUTPUTS`` reads the build folder back through the public API's
    ``open_build`` and ``parse_output`` without the rest of the compiler: no spec front end,
    no Jinja, no API module (which brings them all), no run engines (asyncio, HTTP)."""
    from promptc.cli.app import run

    assert run(["build", str(REPO / "specs" / "math.yaml"), "-o", str(tmp_path / "b")]) == 0
    outputs = tmp_path / "outputs.jsonl"
    outputs.write_text('{"id": "r0001", "output": "A[1]: 4"}\n', encoding="utf-8")
    body = (
        "from promptc.cli.app import run\n"
        "import contextlib, io\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
        f"    run(['parse', {str(tmp_path / 'b')!r}, {str(outputs)!r}])\n"
        "assert 'promptc.parse.build_input' in sys.modules\n"
        "for m in ('promptc.api', 'promptc.spec.lower', 'jinja2', 'yaml', "
        "'promptc.run.orchestrate', 'asyncio'):\n"
        "    assert m not in sys.modules, m\n"
    )
    assert loaded_after(body) == []
