"""Templates run sandboxed: no Python internals, no mutation, no files outside the spec's folder."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from promptc.errors import TemplateError
from promptc.render.checks import check_templates
from promptc.render.environment import SpecLoader
from promptc.render.renderer import render
from promptc.select import methods as select
from promptc.spec.lower import compile_spec

SPEC = """\
promptc: 1
name: sandbox
instruction: Label the text.
inputs: {text: {}}
outputs: {label: {type: enum, choices: [a, b]}}
data: {path: data.jsonl}
strategy: {kind: batch, batch_size: 2}
templates: {batch: mine.j2}
model: {name: m}
"""


def make_spec(folder: Path, template: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["one", "two"]), encoding="utf-8"
    )
    (folder / "mine.j2").write_text(template, encoding="utf-8")
    (folder / "spec.yaml").write_text(SPEC, encoding="utf-8")
    return folder / "spec.yaml"


def messages(tmp_path: Path, spec: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    monkeypatch.chdir(tmp_path)
    return [e.format() for e in check_templates(compile_spec(spec))]


SANDBOX = (
    "template reads '{attr}', which the sandbox refuses; templates may only read the "
    "documented variables, not Python internals"
)


def test_class_mro_escape_is_refused_at_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = make_spec(tmp_path / "s", "{% block user %}\n{{ ''.__class__.__mro__ }}\n{% endblock %}")
    assert messages(tmp_path, spec, monkeypatch) == [
        "s/mine.j2:2: " + SANDBOX.format(attr="__class__"),
        "s/mine.j2:2: " + SANDBOX.format(attr="__mro__"),
    ]


@pytest.mark.parametrize(
    "expression",
    [
        "items|attr('__class__')",  # a name the static check cannot see
        "(items|attr('__cla' ~ 'ss__')).__name__",
        "cycler.__init__.__globals__",
        "markers.question.__globals__",
    ],
)
def test_dynamic_escapes_are_refused_when_rendering(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, expression: str
) -> None:
    monkeypatch.chdir(tmp_path)
    spec = make_spec(tmp_path / "s", "{% block user %}\n{{ " + expression + " }}\n{% endblock %}")
    task = compile_spec(spec)
    with pytest.raises(TemplateError) as e:
        render(task, select.select(task))
    assert e.value.location is not None and str(e.value.location) == "s/mine.j2:2"
    assert e.value.code in ("template-sandbox", "template-undefined")
    assert "__" not in e.value.format().split(": ", 1)[0]


def test_sandbox_error_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = make_spec(
        tmp_path / "s", "{% block user %}\n\n{{ (items|attr('__class__'))() }}\n{% endblock %}"
    )
    task = compile_spec(spec)
    with pytest.raises(TemplateError) as e:
        render(task, select.select(task))
    assert e.value.format() == (
        "s/mine.j2:3: template tried to leave its sandbox (access to attribute '__class__' of "
        "'list' object is unsafe.); templates may only read the documented variables, not "
        "Python internals"
    )


def test_context_cannot_be_mutated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    spec = make_spec(
        tmp_path / "s", "{% block user %}{{ demos.append(1) }}{{ items|length }}{% endblock %}"
    )
    task = compile_spec(spec)
    with pytest.raises(TemplateError) as e:
        render(task, select.select(task))
    assert e.value.code == "template-sandbox"


@pytest.mark.parametrize(
    ("include", "why"),
    [
        ("../secret.j2", "leaves the spec's folder with '..'"),
        ("sub/../../secret.j2", "leaves the spec's folder with '..'"),
        ("/etc/passwd", "is an absolute path"),
    ],
)
def test_include_outside_the_spec_folder_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, include: str, why: str
) -> None:
    (tmp_path / "secret.j2").write_text("TOP SECRET", encoding="utf-8")
    spec = make_spec(
        tmp_path / "s", '{% block user %}\n{% include "' + include + '" %}\n{% endblock %}'
    )
    assert messages(tmp_path, spec, monkeypatch) == [
        (
            f"s/mine.j2:2: template {include!r} {why}; a spec's templates and includes must be "
            "files inside the spec's folder"
        )
    ]
    task = compile_spec(spec)
    with pytest.raises(TemplateError) as e:
        render(task, select.select(task))
    assert "TOP SECRET" not in str(e.value)
    assert str(e.value.location) == "s/mine.j2:2"


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_link_pointing_outside_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "secret.j2").write_text("TOP SECRET", encoding="utf-8")
    spec = make_spec(tmp_path / "s", '{% block user %}{% include "link.j2" %}{% endblock %}')
    os.symlink(tmp_path / "secret.j2", tmp_path / "s" / "link.j2")
    [message] = messages(tmp_path, spec, monkeypatch)
    assert message == (
        "s/mine.j2:1: template 'link.j2' resolves (through a link) outside the spec's folder; "
        "a spec's templates and includes must be files inside the spec's folder"
    )


def test_loader_without_a_spec_folder_serves_only_shipped_templates() -> None:
    import jinja2

    loader = SpecLoader(None)
    text, shown, _ = loader.get_source(None, "promptc/batch.j2")  # type: ignore[arg-type]
    assert "{% block user %}" in text and shown == "<promptc>/batch.j2"
    with pytest.raises(jinja2.TemplateNotFound):
        loader.get_source(None, "batch.j2")  # type: ignore[arg-type]
    with pytest.raises(jinja2.TemplateNotFound):
        loader.get_source(None, "promptc/../../etc/passwd")  # type: ignore[arg-type]


def test_cli_reports_a_sandbox_escape_without_traceback(tmp_path: Path) -> None:
    spec = make_spec(
        tmp_path / "s",
        "{% block user %}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n{% endblock %}",
    )
    for command in (["check", str(spec)], ["build", str(spec), "-o", str(tmp_path / "out")]):
        proc = subprocess.run(
            [sys.executable, "-m", "promptc", *command],
            check=False,
            capture_output=True,
            text=True,
            cwd=tmp_path,
        )
        assert proc.returncode == 1, proc.stderr
        assert "Traceback" not in proc.stderr
        assert "s/mine.j2:2: template reads '__class__', which the sandbox refuses" in proc.stderr
    assert not (tmp_path / "out").exists()
