"""Templates run sandboxed: no Python internals, no mutation, no files outside the spec's folder."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment
from promptc.errors import TemplateError
from promptc.render.checks import check_templates
from promptc.render.environment import SpecLoader
from promptc.render.renderer import Renderer, render
from promptc.select import methods as select
from promptc.spec.lower import compile_spec

if sys.platform != "win32":
    import resource

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


# ---------------------------------------------------------------- OS limits around rendering


def _limits_now() -> tuple[object, tuple[float, float], tuple[int, int]]:
    """SIGALRM's handler, the real-time timer and the address-space limit, as they stand."""
    return (
        signal.getsignal(signal.SIGALRM),
        signal.getitimer(signal.ITIMER_REAL),
        resource.getrlimit(resource.RLIMIT_AS),
    )


@pytest.mark.skipif(sys.platform != "linux", reason="the memory limit is set on Linux only")
def test_os_limits_hold_while_rendering_and_only_then(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"text": f"t{i}"}) + "\n" for i in range(600)), encoding="utf-8"
    )
    (tmp_path / "spec.yaml").write_text(SPEC.replace("templates: {batch: mine.j2}\n", ""))
    task = compile_spec(tmp_path / "spec.yaml")
    before = _limits_now()
    seen_while_rendering = []
    context = Renderer.context

    def spy(self: Renderer, *args: Any) -> dict[str, object]:
        seen_while_rendering.append(_limits_now())
        return context(self, *args)

    monkeypatch.setattr(Renderer, "context", spy)
    handed_out = 0
    for _ in Renderer(task).iter_render(select.select(task)):
        handed_out += 1
        # The caller's work between requests runs without them (the timer's handler stays
        # installed until the last request, with no timer to call it).
        assert _limits_now()[1:] == before[1:]
    assert handed_out == 300 and len(seen_while_rendering) == 300
    handler, timer, (soft, hard) = seen_while_rendering[0]
    assert handler is not signal.SIG_DFL and timer[1] > 0
    assert soft < (before[2][0] if before[2][0] != resource.RLIM_INFINITY else 2**63)
    assert hard == before[2][1]
    assert _limits_now() == before


@pytest.mark.skipif(sys.platform != "linux", reason="the OS limits are set on Linux")
def test_a_template_rendered_in_another_thread_keeps_its_bounds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Signals reach the main thread only: elsewhere the sandbox's own checks bound a template,
    and the process-wide limits are left alone."""
    monkeypatch.chdir(tmp_path)
    spec = make_spec(
        tmp_path / "s",
        "{% block user %}\n{% for i in range(99999) %}{% for j in range(99999) %}{% endfor %}"
        "{% endfor %}\n{% endblock %}",
    )
    task = compile_spec(spec)
    before = _limits_now()
    errors: list[BaseException] = []

    def target() -> None:
        try:
            render(task, select.select(task))
        except TemplateError as e:
            errors.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(60)
    [error] = errors
    assert isinstance(error, TemplateError)
    assert error.format() == (
        "s/mine.j2:2: template exceeds the limit of 1,000,000 loop iterations per message: the "
        "loops of this message ran more often (while rendering request r0001, of items 1, 2)"
    )
    assert _limits_now() == before


RANGE_USES = (
    "{{ range(3) }}|{{ range(5) | length }}|{{ range(10)[2:5] | list }}|{{ 3 in range(5) }}|"
    "{{ range(3) == range(3) }}|{{ range(5) | reverse | list }}|{{ range(3) | sum }}|"
    "{% for i in range(3) %}{{ loop.length }}{{ loop.revindex }}{% endfor %}|"
    "{{ range(1, 10, 2)[1] }}|{{ range(4) | batch(2) | list }}|{{ range(2, 9).start }}{{ range(2, 9, 3).step }}|"
    "{{ range(5).count(2) }}|{{ range(10) | select('odd') | list }}|{{ range(3)[-1] }}|"
    "{% for i in range(2) %}{% for j in range(i, 3) %}{{ i }}{{ j }} {% endfor %}{% endfor %}|"
    "{{ range(3) is sequence }}|{{ range(3) is iterable }}|{{ range(0) | first is undefined }}"
)


def test_range_in_a_template_is_pythons_range(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``range()`` counts the steps of loops over it, and otherwise behaves as Jinja's own."""
    monkeypatch.chdir(tmp_path)
    spec = make_spec(tmp_path / "s", "{% block user %}" + RANGE_USES + "{% endblock %}")
    task = compile_spec(spec)
    [request] = render(task, select.select(task))
    plain = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)
    assert request.messages[-1].content == plain.from_string(RANGE_USES).render()
