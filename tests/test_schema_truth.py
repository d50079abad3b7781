"""The JSON Schema tells editors the truth: every spec file gets the same verdict from the
schema (as an editor applies it, to the file alone, Draft 2020-12) and from ``promptc check``.

Two directions, per file:

- a file the schema rejects is one ``promptc check`` rejects too (no red squiggles on a valid
  spec: ``specs/math-batch.yaml`` extends ``math.yaml`` and repeats none of its keys);
- a file ``promptc check`` rejects for a reason of shape — an error the schema could state,
  located in that file — is one the schema rejects too (``model.max_token`` is caught in the
  editor, not only at build time).

Files promptc cannot load as safe YAML (a duplicate key, a custom tag, an alias bomb) are the
YAML parser's to report, in editors as in promptc; for them only the check is held to reject.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator
from promptc.errors import LoadError, PromptcError, PromptcErrors, flatten
from promptc.spec.lower import compile_spec
from promptc.spec.schema_errors import known_model_params, schema

REPO = Path(__file__).resolve().parents[1]

#: Diagnostics of shape: what a JSON Schema can state, and so what an editor must show too.
SCHEMA_CODES = frozenset(
    {
        "unknown-key",
        "missing-key",
        "wrong-type",
        "not-one-of",
        "too-small",
        "too-large",
        "empty",
        "bad-name",
        "bad-version",
        "schema",
        "unknown-model-param",
    }
)


def spec_files() -> list[Path]:
    files = [
        *(REPO / "specs").glob("*.yaml"),
        *(REPO / "tests" / "fixtures" / "specs").rglob("*.yaml"),
        *(REPO / "tests" / "malformed").glob("*.yaml"),
    ]
    return sorted(files)


def check_errors(path: Path) -> list[PromptcError]:
    """Every error ``promptc check`` reports for a spec (spec, data and templates)."""
    from promptc.render.checks import check_templates

    try:
        task = compile_spec(path, max_errors=None)
    except PromptcErrors as e:
        return list(e.errors)
    return flatten(check_templates(task))


def schema_errors(path: Path) -> list[Any]:
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    return list(Draft202012Validator(schema()).iter_errors(data))


def verdicts(path: Path) -> tuple[list[PromptcError], list[Any] | None]:
    """promptc's errors, and the schema's (``None`` when the file is not loadable YAML)."""
    errors = check_errors(path)
    loads = [e for e in errors if isinstance(e, LoadError)]
    if loads:
        return errors, None
    return errors, schema_errors(path)


@pytest.mark.parametrize(
    "path", spec_files(), ids=lambda p: str(p.relative_to(REPO)).replace("/", "-")
)
def test_schema_and_check_agree(path: Path) -> None:
    errors, from_schema = verdicts(path)
    if from_schema is None:
        assert errors, "a file that does not load must fail promptc check"
        return
    if from_schema:
        shown = "; ".join(f"{list(e.absolute_path)}: {e.message}" for e in from_schema)
        assert errors, f"the schema rejects a spec promptc check accepts: {shown}"
    shape = [
        e
        for e in errors
        if e.code in SCHEMA_CODES
        and e.location is not None
        and Path(e.location.file).resolve() == path.resolve()
    ]
    if shape:
        shown = "; ".join(e.format() for e in shape)
        assert from_schema, f"promptc check rejects what the schema accepts: {shown}"


def test_the_table_holds_specs_of_every_kind() -> None:
    """The cases above include valid specs, a layer with null, and shape errors."""
    files = {p.name for p in spec_files()}
    assert {"math.yaml", "math-batch.yaml", "variant_batch.yaml", "model_param_typo.yaml"} <= files


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = """\
promptc: 1
name: base
instruction: Answer.
inputs: {question: {type: text}}
outputs: {answer: {type: number}}
model: {name: m, temperature: 0}
"""


@pytest.mark.parametrize(
    ("text", "valid"),
    [
        ("extends: base.yaml\nname: child\n", True),
        ("extends: base.yaml\nmodel: {temperature: ~, max_tokens: 10}\n", True),
        ("extends: base.yaml\noutputs: {answer: {description: The number.}}\n", True),
        ("extends: base.yaml\nmodel: {max_token: 10}\n", False),
        ("extends: base.yaml\nmodel: {extra: {mirostat: 2}}\n", True),
        ("extends: base.yaml\nstrategy: {batch_sise: 2}\n", False),
        ("extends: base.yaml\nname: ~\n", False),
        ("extends: base.yaml\nmodel: {name: ~}\n", False),
        ("extends: base.yaml\ndescription: ~\n", True),
        (BASE.replace("temperature: 0", "max_token: 5"), False),
        (BASE.replace("temperature: 0", "extra: {mirostat: 2, grammar_lazy: true}"), True),
        (BASE.replace("name: m,", ""), False),
        (BASE.replace("inputs: {question: {type: text}}\n", ""), False),
    ],
    ids=[
        "layer-name",
        "layer-null",
        "layer-nested",
        "layer-model-typo",
        "layer-extra",
        "layer-unknown-key",
        "layer-null-required",
        "layer-null-model-name",
        "layer-null-optional",
        "model-typo",
        "model-extra",
        "model-no-name",
        "no-inputs",
    ],
)
def test_layers_and_model_keys(tmp_path: Path, text: str, valid: bool) -> None:
    _write(tmp_path, "base.yaml", BASE)
    path = _write(tmp_path, "spec.yaml", text)
    errors, from_schema = verdicts(path)
    assert from_schema is not None
    assert (not errors, not from_schema) == (valid, valid), (
        [e.format() for e in errors],
        [e.message for e in from_schema],
    )


def test_a_null_that_removes_nothing_is_reported_when_no_spec_has_its_key(
    tmp_path: Path,
) -> None:
    """``temprature: ~`` meant to remove the base's temperature: it removes nothing, and the
    temperature is still sent; said as the same typo with a value is. A null for a key a spec
    may hold that the base does not set (``description: ~``) is no error."""
    _write(tmp_path, "base.yaml", BASE)
    path = _write(
        tmp_path,
        "spec.yaml",
        "extends: base.yaml\nmodel: {temprature: ~}\ninstrucion: ~\ndescription: ~\n",
    )
    assert [e.format() for e in check_errors(path)] == [
        (
            f"{path}:2:9: model.temprature: unknown model parameter 'temprature' "
            "(did you mean 'temperature'?)"
        ),
        f"{path}:3:1: instrucion: unknown key 'instrucion' (did you mean 'instruction'?)",
    ]


def test_model_typo_is_reported_at_its_key_with_a_hint(tmp_path: Path) -> None:
    path = _write(tmp_path, "spec.yaml", BASE.replace("temperature: 0", "max_token: 5"))
    (error,) = check_errors(path)
    assert error.format() == (
        f"{path}:6:18: model.max_token: unknown model parameter 'max_token' "
        "(did you mean 'max_tokens'?)"
    )


def test_extra_params_are_sent_beside_the_known_ones(tmp_path: Path) -> None:
    path = _write(tmp_path, "spec.yaml", BASE.replace("temperature: 0", "extra: {mirostat: 2}"))
    task = compile_spec(path)
    assert task.model.request_params() == {"model": "m", "mirostat": 2}


def test_a_known_parameter_under_extra_is_an_error(tmp_path: Path) -> None:
    path = _write(tmp_path, "spec.yaml", BASE.replace("temperature: 0", "extra: {top_p: 1}"))
    (error,) = check_errors(path)
    assert error.code == "extra-known-param"
    assert error.hint == "write it beside extra, as model.top_p"


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        ("model", "name the model as model.name"),
        ("messages", "the templates write the messages"),
        ("response_format", "promptc run --grammar json-schema sends the answer's own schema"),
    ],
)
def test_a_body_field_promptc_writes_under_extra_is_an_error(
    tmp_path: Path, key: str, hint: str
) -> None:
    """``extra: {model: o1-pro}`` replaced model.name in every request (plan and eval priced
    model.name); ``messages`` sat beside the build's own."""
    path = _write(tmp_path, "spec.yaml", BASE.replace("temperature: 0", f"extra: {{{key}: x}}"))
    (error,) = check_errors(path)
    assert (error.code, error.hint) == ("extra-body-field", hint)
    assert error.message == f"model.extra.{key} is a field promptc writes in every request itself"


def test_known_parameters_are_the_schemas() -> None:
    assert known_model_params()[:3] == ("name", "temperature", "max_tokens")
    assert "extra" in known_model_params()


def test_schema_layers_are_generated_from_the_spec_definitions() -> None:
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "update_schema.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
