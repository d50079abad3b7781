"""Property tests: whatever text a spec file holds, the front end answers with promptc's own
errors (or a task), never another exception, and never hangs."""

from __future__ import annotations

import copy
import os
import signal
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc.errors import PromptcError
from promptc.ir import Task
from promptc.spec.load import iter_paths, load_spec
from promptc.spec.lower import compile_spec

VALID: dict[str, Any] = {
    "promptc": 1,
    "name": "fuzz",
    "description": "A spec to break.",
    "instruction": "Answer.",
    "inputs": {"question": {"type": "text", "label": "Q"}, "context": {"type": "text"}},
    "outputs": {
        "reasoning": {"type": "text"},
        "answer": {"type": "enum", "choices": ["yes", "no"], "aliases": {"y": "yes"}},
        "score": {"type": "number"},
    },
    "answer_format": "{reasoning} So: {answer} ({score})",
    "demos": [{"question": "q", "context": "c", "reasoning": "r", "answer": "yes", "score": 1}],
    "data": {"path": "data.jsonl", "fields": {"question": "q"}, "id": "{{ row.id }}"},
    "strategy": {
        "kind": "auto-demo",
        "batch_size": 2,
        "selection": {"method": "random", "seed": 1},
    },
    "model": {"name": "m", "temperature": 0.5, "max_tokens": 10, "stop": ["\n"]},
    "templates": {"batch": "t.j2"},
}
DATA = '{"id": "a", "q": "one", "context": "x"}\n{"id": "b", "q": "two", "context": "y"}\n'

# PROMPTC_FUZZ_EXAMPLES=5000 for a longer hunt.
SETTINGS = settings(
    max_examples=int(os.environ.get("PROMPTC_FUZZ_EXAMPLES", "150")),
    deadline=timedelta(seconds=5),
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Hang(Exception):
    """Raised by the alarm: the front end took far too long (a hang, as far as users care)."""


@contextmanager
def alarm(seconds: int = 20) -> Iterator[None]:
    def ring(signum: int, frame: object) -> None:
        raise Hang(f"no answer within {seconds} s")

    old = signal.signal(signal.SIGALRM, ring)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


_FOLDER = Path(tempfile.mkdtemp(prefix="promptc-fuzz-"))
(_FOLDER / "data.jsonl").write_text(DATA, encoding="utf-8")
(_FOLDER / "t.j2").write_text("{{ instruction }}", encoding="utf-8")


def run(content: str | bytes, front: Callable[[Path], object] = compile_spec) -> object:
    """Writes a spec and runs the front end on it: returns its result or the PromptcError."""
    spec = _FOLDER / "spec.yaml"
    if isinstance(content, str):
        spec.write_text(content, encoding="utf-8")
    else:
        spec.write_bytes(content)
    with alarm():
        try:
            return front(spec)
        except PromptcError as e:
            assert e.format()  # every error can be printed
            return e


# Text without surrogates (a file cannot hold them), weighted towards YAML's own punctuation.
YAML_CHARS = st.characters(blacklist_categories=("Cs",))
PUNCT = st.sampled_from(list(":-?[]{},&*!|>'\"%@`#\n \t") + ["\n  ", "\n- ", ": ", "---\n"])
yaml_soup = st.lists(st.one_of(PUNCT, st.text(YAML_CHARS, max_size=8)), max_size=60).map("".join)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(YAML_CHARS, max_size=20),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.text(YAML_CHARS, max_size=8), inner, max_size=4),
    ),
    max_leaves=12,
)


@SETTINGS
@given(yaml_soup)
def test_random_yaml_text(text: str) -> None:
    run(text)


@SETTINGS
@given(st.binary(max_size=200))
def test_random_bytes(raw: bytes) -> None:
    run(raw)


@SETTINGS
@given(st.integers(0, 400), st.sampled_from(["[", "{a: ", "- ", "k:\n"]), st.booleans())
def test_deep_nesting(depth: int, opener: str, indent: bool) -> None:
    if opener in ("- ", "k:\n") and indent:
        text = "".join("  " * i + opener.strip() + "\n" for i in range(depth))
    else:
        closer = {"[": "]", "{a: ": "}"}.get(opener, "")
        text = "x: " + opener * depth + "1" + closer * depth
    run(text)


@SETTINGS
@given(values)
def test_random_documents(value: Any) -> None:
    run(yaml.safe_dump(value, allow_unicode=True))


def _paths() -> list[tuple[Any, ...]]:
    return [p for p in iter_paths(VALID) if p]


@SETTINGS
@given(st.sampled_from(_paths()), values, st.booleans())
def test_wrong_values_at_every_key(path: tuple[Any, ...], value: Any, flow: bool) -> None:
    spec = copy.deepcopy(VALID)
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = value
    result = run(yaml.safe_dump(spec, allow_unicode=True, default_flow_style=flow))
    assert isinstance(result, (Task, PromptcError))


@SETTINGS
@given(st.sampled_from(_paths()))
def test_missing_keys_anywhere(path: tuple[Any, ...]) -> None:
    spec = copy.deepcopy(VALID)
    node: Any = spec
    for part in path[:-1]:
        node = node[part]
    del node[path[-1]]
    run(yaml.safe_dump(spec, allow_unicode=True))


odd_text = st.text(
    st.characters(blacklist_categories=("Cs", "Cc"))
    | st.sampled_from(["\u200b", "\u202e", "\ufeff", "\u0301", "😀", "\u2028", "ﬁ", "İ", "\x85"]),
    min_size=1,
    max_size=30,
)


@SETTINGS
@given(odd_text, odd_text, odd_text)
def test_odd_unicode_in_values_round_trips(name: str, instruction: str, reasoning: str) -> None:
    spec = copy.deepcopy(VALID)
    spec["name"] = name
    spec["instruction"] = instruction
    spec["demos"][0]["reasoning"] = reasoning
    text = yaml.safe_dump(spec, allow_unicode=True)
    result = run(text)
    # PyYAML's own dumper does not round-trip every line separator ('\x85'): compare with what
    # its safe loader reads from the same text.
    expected = yaml.safe_load(text)
    if isinstance(result, Task):
        assert result.name == expected["name"]
        assert result.instruction == expected["instruction"]
        assert result.demos[0].outputs["reasoning"] == expected["demos"][0]["reasoning"]
    else:
        # only blank names/instructions may be refused
        assert isinstance(result, PromptcError)


@SETTINGS
@given(st.text(YAML_CHARS, min_size=1, max_size=30), st.text(YAML_CHARS, max_size=40))
def test_answer_format_positions_stay_inside_the_file(prefix: str, fmt: str) -> None:
    spec = copy.deepcopy(VALID)
    spec["answer_format"] = prefix + fmt
    text = yaml.safe_dump(spec, allow_unicode=True)
    result = run(text)
    lines = text.split("\n")
    if isinstance(result, PromptcError):
        for e in getattr(result, "errors", [result]):
            if e.location is not None and e.location.file.endswith("spec.yaml") and e.location.line:
                assert 1 <= e.location.line <= len(lines)


@SETTINGS
@given(yaml_soup)
def test_load_spec_alone(text: str) -> None:
    run(text, front=load_spec)


def test_the_valid_spec_is_valid() -> None:
    result = run(yaml.safe_dump(VALID))
    assert isinstance(result, Task), result
    assert [i.id for i in result.items] == ["a", "b"]


@pytest.mark.parametrize("size", [10, 100, 1000])
def test_many_aliases_of_a_small_anchor(size: int) -> None:
    text = "a: &a [x]\nb: [" + ", ".join(["*a"] * size) + "]\n"
    assert isinstance(run(text, front=load_spec), PromptcError) or size < 100_000
