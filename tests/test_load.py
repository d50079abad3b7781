"""Happy paths of the front end: positions, extends, defaults, overrides, data formats."""

from __future__ import annotations

import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from promptc.errors import ErrorCollector, Location, PromptcError, PromptcErrors
from promptc.spec.load import load_spec
from promptc.spec.lower import compile_spec, default_label, lower
from promptc.spec.validate import validate
from promptc.strategies import STRATEGIES

SPECS = Path(__file__).parent / "fixtures" / "specs"

MINIMAL = """\
promptc: 1
name: math
instruction: Solve the problem.
inputs:
  question: {type: text}
outputs:
  answer: {type: number}
data: {path: data.jsonl}
model: {name: test-model}
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


@pytest.fixture()
def spec_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A folder with a minimal valid spec and its data, made the current folder."""
    write(tmp_path, "spec.yaml", MINIMAL)
    write(tmp_path, "data.jsonl", '{"question": "1 + 1?"}\n{"question": "2 + 2?"}\n')
    monkeypatch.chdir(tmp_path)
    return tmp_path


# --- positions ---------------------------------------------------------------------------------


def test_every_key_and_value_has_its_position(spec_dir: Path) -> None:
    doc = load_spec("spec.yaml")
    assert doc.key_locations[("inputs", "question")] == Location("spec.yaml", 5, 3)
    assert doc.value_locations[("inputs", "question")] == Location("spec.yaml", 5, 13)
    assert doc.value_locations[("inputs", "question", "type")] == Location("spec.yaml", 5, 20)
    assert doc.key_locations[("model",)] == Location("spec.yaml", 9, 1)
    assert doc.value_locations[()] == Location("spec.yaml", 1, 1)


def test_missing_paths_fall_back_to_the_nearest_written_ancestor(spec_dir: Path) -> None:
    doc = load_spec("spec.yaml")
    assert doc.value_location(("model", "temperature")) == Location("spec.yaml", 9, 8)
    assert doc.key_location(("strategy", "kind")) == Location("spec.yaml", 1, 1)


@pytest.mark.parametrize(
    ("written", "col"),
    [
        ('"{reasoning} so {answr}"', 32),  # double-quoted: text starts after the quote
        ("'{reasoning} so {answr}'", 32),  # single-quoted
        ("Since {reasoning} so {answr}", 37),  # plain
        ('"\\u00e9{reasoning} so {answr}"', 38),  # an escape is longer in the file than in text
        ("'It''s {reasoning} so {answr}'", 38),  # '' is one quote in the text
    ],
    ids=["double", "single", "plain", "escape", "quote-doubling"],
)
def test_placeholder_positions_follow_the_scalar_style(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written: str, col: int
) -> None:
    text = MINIMAL.replace(
        "  answer: {type: number}", "  reasoning: {type: text}\n  answer: {type: number}"
    )
    write(tmp_path, "spec.yaml", text + f"answer_format: {written}\n")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    unknown = [e for e in info.value if e.code == "unknown-placeholder"]
    assert [str(e.location) for e in unknown] == [f"spec.yaml:11:{col}"]


def test_placeholder_position_in_a_folded_block(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        tmp_path, "spec.yaml", MINIMAL + "answer_format: >\n  Think first,\n  then say {answr}.\n"
    )
    monkeypatch.chdir(tmp_path)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    unknown = [e for e in info.value if e.code == "unknown-placeholder"]
    assert [str(e.location) for e in unknown] == ["spec.yaml:12:12"]


# --- defaults ----------------------------------------------------------------------------------


def test_defaults(spec_dir: Path) -> None:
    task = compile_spec("spec.yaml")
    assert task.description == ""
    assert task.demos == ()
    assert task.templates == ()
    assert task.strategy.kind.name == "single" and task.strategy.batch_size == 1
    sel = task.strategy.selection
    assert (sel.method, sel.seed, sel.target_position, sel.model, sel.cache_dir) == (
        "sequential",
        0,
        -1,
        None,
        None,
    )
    assert task.answer_format.source == "{answer}"
    assert task.inputs[0].label == "Question"
    assert task.model.request_params() == {"model": "test-model"}
    assert [i.id for i in task.items] == ["1", "2"]
    assert task.extends == ()
    assert task.spec.path == str(spec_dir / "spec.yaml")
    assert task.spec_dir == str(spec_dir)


@pytest.mark.parametrize(
    ("kind", "size"), [("single", 1), ("few-shot", 1), ("batch", 8), ("auto-demo", 8)]
)
def test_default_batch_size_by_kind(spec_dir: Path, kind: str, size: int) -> None:
    write(
        spec_dir,
        "spec.yaml",
        MINIMAL + f"strategy: {{kind: {kind}}}\ndemos: [{{question: '1 + 2?', answer: 3}}]\n",
    )
    assert compile_spec("spec.yaml").strategy.batch_size == size


def test_single_and_few_shot_ignore_batch_size(spec_dir: Path) -> None:
    write(spec_dir, "spec.yaml", MINIMAL + "strategy: {kind: single, batch_size: 5}\n")
    assert compile_spec("spec.yaml").strategy.batch_size == 1


@pytest.mark.parametrize(
    ("name", "label"), [("premise", "Premise"), ("hypothesis_text", "Hypothesis text"), ("_x", "X")]
)
def test_default_label(name: str, label: str) -> None:
    assert default_label(name) == label


# --- extends -----------------------------------------------------------------------------------


def test_extends_overrides_and_deep_merges() -> None:
    base = compile_spec(SPECS / "base.yaml")
    variant = compile_spec(SPECS / "variant_batch.yaml")
    assert variant.name == "nli-batch"
    assert variant.instruction == base.instruction  # inherited
    assert variant.strategy.kind.name == "batch" and variant.strategy.batch_size == 8
    assert variant.strategy.selection.method == "random"
    assert variant.strategy.selection.seed == 7
    # mappings merge key by key; null removes an inherited key
    assert variant.model.request_params() == {
        "model": "test-model",
        "max_tokens": 64,
        "stop": ["\n\n"],
        "top_p": 0.5,
    }
    # lists replace
    assert len(base.demos) == 2 and len(variant.demos) == 1
    assert variant.demos[0].inputs["premise"] == "It rains."
    assert [Path(f.path).name for f in variant.extends] == ["base.yaml"]
    assert variant.spec.path.endswith("variant_batch.yaml")


def test_extended_positions_name_the_file_that_wrote_each_value() -> None:
    doc = load_spec(SPECS / "variant_batch.yaml")
    assert Path(doc.value_location(("name",)).file).name == "variant_batch.yaml"
    assert Path(doc.value_location(("instruction",)).file).name == "base.yaml"
    assert Path(doc.value_location(("model", "max_tokens")).file).name == "base.yaml"
    assert Path(doc.value_location(("model", "stop")).file).name == "variant_batch.yaml"
    assert Path(doc.value_location(("model",)).file).name == "variant_batch.yaml"
    assert [f.display for f in doc.files] == [
        str(SPECS / "variant_batch.yaml"),
        str(SPECS / "base.yaml"),
    ]
    assert "extends" not in doc.data


def test_relative_paths_resolve_against_the_file_that_declares_them() -> None:
    task = compile_spec(SPECS / "nested" / "variant.yaml")
    # data.path is the nested spec's own; the batch template is inherited from the base
    assert task.data is not None and task.data.resolved == str(SPECS / "nested" / "rows.jsonl")
    assert task.template_for(STRATEGIES["batch"]).path == str(SPECS / "templates" / "my_batch.j2")
    assert task.template_for(STRATEGIES["single"]).path is None
    assert [i.id for i in task.items] == ["a-1", "b-2", "c-3"]


def test_extends_chain_of_three(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path, "a.yaml", MINIMAL)
    write(tmp_path, "b.yaml", "extends: a.yaml\nname: b\nmodel: {temperature: 0.5}\n")
    write(tmp_path, "c.yaml", "extends: b.yaml\nmodel: {max_tokens: 9}\n")
    write(tmp_path, "data.jsonl", '{"question": "q"}\n')
    monkeypatch.chdir(tmp_path)
    task = compile_spec("c.yaml")
    assert task.name == "b"
    assert task.model.request_params() == {
        "model": "test-model",
        "temperature": 0.5,
        "max_tokens": 9,
    }
    assert [Path(f.path).name for f in task.extends] == ["b.yaml", "a.yaml"]


def test_extends_may_climb_inside_the_project_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "pyproject.toml", "")
    write(tmp_path, "base.yaml", MINIMAL.replace("data.jsonl", "sub/data.jsonl"))
    write(tmp_path, "sub/spec.yaml", "extends: ../base.yaml\nname: sub\n")
    write(tmp_path, "sub/data.jsonl", '{"question": "q"}\n')
    monkeypatch.chdir(tmp_path)
    assert compile_spec("sub/spec.yaml").name == "sub"


# --- overrides ---------------------------------------------------------------------------------


def test_command_line_overrides(spec_dir: Path) -> None:
    task = compile_spec(
        "spec.yaml", overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 4}
    )
    assert (task.strategy.kind.name, task.strategy.batch_size) == ("batch", 4)


def test_bad_override_is_reported_at_the_command_line(spec_dir: Path) -> None:
    with pytest.raises(PromptcErrors) as info:
        compile_spec(
            "spec.yaml", overrides={("strategy", "kind"): "batch", ("strategy", "batch_size"): 0}
        )
    assert info.value.format() == (
        "<command line>: strategy.batch_size: expected an integer of at least 1, found 0"
    )


def test_batch_size_on_the_command_line_needs_a_batch_strategy(spec_dir: Path) -> None:
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml", overrides={("strategy", "batch_size"): 4})
    assert info.value.format() == (
        "<command line>: strategy.batch_size: batch size 4 has no effect on strategy single, "
        "which sends one item per request (choose strategy batch or auto-demo)"
    )


# --- collecting errors -------------------------------------------------------------------------


def test_max_errors_and_fail_fast(spec_dir: Path) -> None:
    demos = "".join(f"  - {{question: q{i}, answer: x{i}}}\n" for i in range(5))
    write(spec_dir, "spec.yaml", MINIMAL + "demos:\n" + demos)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml", max_errors=2)
    assert len(info.value) == 2 and info.value.omitted == 3
    assert info.value.format().endswith("\n… and 3 more")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml", fail_fast=True)
    assert len(info.value) == 1


def test_max_errors_caps_load_errors_too(spec_dir: Path) -> None:
    write(spec_dir, "spec.yaml", MINIMAL + "".join(f"name: n{i}\n" for i in range(20)))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml", max_errors=3)
    assert len(info.value) == 3 and info.value.omitted == 17
    assert info.value.errors[0].format() == (
        "spec.yaml:10:1: name: duplicate key 'name'; first defined at line 2 (remove one of them)"
    )


def test_windows_line_endings_and_a_byte_order_mark_keep_positions(spec_dir: Path) -> None:
    text = (MINIMAL + "answer_format: 'So {answr}'\n").replace("\n", "\r\n")
    (spec_dir / "spec.yaml").write_bytes(b"\xef\xbb\xbf" + text.encode())
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert [str(e.location) for e in info.value] == ["spec.yaml:10:16", "spec.yaml:10:20"]


def test_spec_errors_and_data_errors_are_reported_together(spec_dir: Path) -> None:
    write(
        spec_dir,
        "spec.yaml",
        MINIMAL.replace("data.jsonl", "nope.jsonl") + "strategy: {kind: batch, batch_size: 0}\n",
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format().splitlines() == [
        "spec.yaml:8:14: data.path: data file 'nope.jsonl' not found",
        "spec.yaml:10:37: strategy.batch_size: expected an integer of at least 1, found 0",
    ]


# --- demos, values -----------------------------------------------------------------------------


def test_demo_values_are_normalised() -> None:
    task = compile_spec(SPECS / "base.yaml")
    assert task.demos[1].outputs == {"label": "contradiction"}  # alias, any case
    assert task.demos[1].inputs["hypothesis_text"] == "12"  # a YAML number, as written
    assert task.output("label").aliases == (
        ("entails", "entailment"),
        ("contradicts", "contradiction"),
    )


def test_number_demo_keeps_decimal_text(spec_dir: Path) -> None:
    write(
        spec_dir,
        "spec.yaml",
        MINIMAL + "demos:\n  - {question: '0.1 + 0.2?', answer: 0.30}\n"
        "  - {question: big, answer: '1,234'}\n",
    )
    task = compile_spec("spec.yaml")
    assert [d.outputs["answer"] for d in task.demos] == [Decimal("0.3"), Decimal(1234)]


def test_lower_without_collector_raises_data_errors(spec_dir: Path) -> None:
    write(spec_dir, "data.jsonl", '{"q": 1}\n')
    doc = load_spec("spec.yaml")
    c = ErrorCollector()
    validate(doc, c)
    assert not c
    with pytest.raises(PromptcErrors) as info:
        lower(doc)
    # No row has the column: one error where the column is named, listing those that exist.
    assert info.value.format() == (
        "spec.yaml:8:14: data.path: no row has a column 'question' (for input 'question'); "
        "the rows have 'q' (map the input to one of those columns in data.fields)"
    )


def test_a_misspelt_column_is_one_error_at_data_fields(spec_dir: Path) -> None:
    """Not one identical error per row: one at ``data.fields.<input>``, naming the columns
    the rows have; a column only some rows lack stays an error per row."""
    rows = "".join(f'{{"id": "q{k}", "question": "{k}?"}}\n' for k in range(50))
    write(spec_dir, "data.jsonl", rows)
    spec = MINIMAL.replace(
        "data: {path: data.jsonl}", "data: {path: data.jsonl, fields: {question: questoin}}"
    )
    write(spec_dir, "spec.yaml", spec)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format() == (
        "spec.yaml:8:45: data.fields.question: no row has a column 'questoin' (for input "
        "'question'); the rows have 'id', 'question' (map the input to one of those columns "
        "in data.fields)"
    )


# --- data formats ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["nli.csv", "nli.json", "nli.jsonl"])
def test_data_formats_give_the_same_items(tmp_path: Path, name: str) -> None:
    import shutil

    shutil.copytree(SPECS, tmp_path / "specs")
    spec = tmp_path / "specs" / "base.yaml"
    spec.write_text(spec.read_text().replace("data/nli.csv", f"data/{name}"))
    task = compile_spec(spec)
    assert [(i.id, dict(i.inputs)) for i in task.items] == [
        ("p1", {"premise": "A man plays a guitar.", "hypothesis_text": "A person makes music."}),
        ("p2", {"premise": "Two kids play\nin the snow.", "hypothesis_text": "It is summer."}),
        ("p3", {"premise": "The cafe is closed.", "hypothesis_text": "The cafe may open later."}),
    ]
    lines = {"nli.csv": [2, 3, 5], "nli.json": [2, 3, 8], "nli.jsonl": [1, 2, 3]}[name]
    assert [i.location.line for i in task.items] == lines
    assert task.data is not None and task.data.format == name.rsplit(".", 1)[1]
    assert [i.index for i in task.items] == [0, 1, 2]


def test_non_string_values_become_text_deterministically() -> None:
    task = compile_spec(SPECS / "nested" / "variant.yaml")
    assert task.items[1].inputs["hypothesis_text"] == "1.50"
    assert task.items[2].inputs == {"premise": "true", "hypothesis_text": '{"a":"x","b":[1,null]}'}


@pytest.mark.parametrize("name", ["rows.jsonl", "rows.json"])
def test_json_numbers_are_shown_as_the_file_writes_them(tmp_path: Path, name: str) -> None:
    # spec.md: numbers become text "as written in the file": 1e2 stays 1e2 (not 1E+2), and
    # two ids written differently (0.0000001, 1E-7) are two ids.
    rows = ['{"id": 0.0000001, "q": 1e2}', '{"id": 1E-7, "q": 2.50}', '{"id": 3, "q": -0.0e0}']
    text = "\n".join(rows) + "\n" if name.endswith("jsonl") else "[" + ",\n".join(rows) + "]\n"
    (tmp_path / name).write_text(text, encoding="utf-8")
    spec = tmp_path / "s.yaml"
    spec.write_text(
        "promptc: 1\nname: n\ninstruction: Answer.\ninputs: {q: {}}\noutputs: {a: {type: text}}\n"
        f"data: {{path: {name}, id: id}}\nmodel: {{name: m}}\n",
        encoding="utf-8",
    )
    task = compile_spec(spec)
    assert [(i.id, i.inputs["q"]) for i in task.items] == [
        ("0.0000001", "1e2"),
        ("1E-7", "2.50"),
        ("3", "-0.0e0"),
    ]


def test_data_sha256_is_of_the_file_bytes() -> None:
    import hashlib

    task = compile_spec(SPECS / "base.yaml")
    raw = (SPECS / "data" / "nli.csv").read_bytes()
    assert task.data is not None and task.data.sha256 == hashlib.sha256(raw).hexdigest()
    assert task.spec.sha256 == hashlib.sha256((SPECS / "base.yaml").read_bytes()).hexdigest()


def test_data_format_key_overrides_the_extension(spec_dir: Path) -> None:
    write(spec_dir, "rows.txt", "question\nq1\nq2\n")
    write(
        spec_dir,
        "spec.yaml",
        MINIMAL.replace("{path: data.jsonl}", "{path: rows.txt, format: csv}"),
    )
    assert [i.inputs["question"] for i in compile_spec("spec.yaml").items] == ["q1", "q2"]


JSON_ERRORS = {
    "not-object": (
        '[{"question": "a"}, 3]',
        "rows.json:1:21: expected a JSON object for each row, found a number",
    ),
    "not-array": (
        '{"question": "a"}',
        "rows.json:1:1: expected a JSON array of objects, found an object",
    ),
    "bad-json": (
        '[{"question": "a"},\n {"question": }]',
        "rows.json:2:15: invalid JSON: Expecting value",
    ),
    "unclosed": ('[{"question": "a"}', "rows.json:1:19: invalid JSON: the array is not closed"),
    "empty": ("[]", "rows.json: data file has no rows"),
    "null": (
        '[{"question": null}]',
        "rows.json:1:2: field 'question' (for input 'question') is null; expected text",
    ),
}


@pytest.mark.parametrize(("content", "expected"), list(JSON_ERRORS.values()), ids=list(JSON_ERRORS))
def test_json_array_errors(spec_dir: Path, content: str, expected: str) -> None:
    write(spec_dir, "rows.json", content)
    write(spec_dir, "spec.yaml", MINIMAL.replace("data.jsonl", "rows.json"))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format() == expected


CSV_ERRORS = {
    "duplicate-column": (
        "question,question\na,b\n",
        "rows.csv:1:1: duplicate column 'question' in the CSV header",
    ),
    "extra-fields": ("question\na,b\n", "rows.csv:2:1: row has 2 fields, but the header names 1"),
    "no-header": (
        "",
        ("rows.csv:1:1: CSV file has no header row; expected column names on the first line"),
    ),
    "unclosed-quote": ('question\n"unclosed\n', "rows.csv:2: invalid CSV: unexpected end of data"),
}


@pytest.mark.parametrize(("content", "expected"), list(CSV_ERRORS.values()), ids=list(CSV_ERRORS))
def test_csv_errors(spec_dir: Path, content: str, expected: str) -> None:
    write(spec_dir, "rows.csv", content)
    write(spec_dir, "spec.yaml", MINIMAL.replace("data.jsonl", "rows.csv"))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format() == expected


def test_id_expression_errors(spec_dir: Path) -> None:
    write(
        spec_dir,
        "spec.yaml",
        MINIMAL.replace("{path: data.jsonl}", "{path: data.jsonl, id: '{{ row.qid }}'}"),
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    failed = "data.id: item id expression failed: 'dict object' has no attribute 'qid'"
    assert info.value.format().splitlines() == [
        f"data.jsonl:1:1: {failed}",
        f"data.jsonl:2:1: {failed}",
    ]


def test_bad_data_rows_are_all_reported(spec_dir: Path) -> None:
    write(spec_dir, "data.jsonl", '{"question": "a"}\n{"q": 1}\nnot json\n[1]\n{"question": "b"}\n')
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format().splitlines() == [
        "data.jsonl:2:1: row has no field 'question' (for input 'question')",
        "data.jsonl:3:1: invalid JSON: Expecting value",
        "data.jsonl:4:1: expected a JSON object for each row, found a list",
    ]


# --- both YAML parsers -------------------------------------------------------------------------


def test_libyaml_and_pure_python_parsers_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    """Data, key and value positions, and scalar spans are the same whichever parser runs."""
    from promptc.spec import load

    specs = sorted(SPECS.rglob("*.yaml")) + sorted(
        (SPECS.parent.parent.parent / "specs").glob("*.yaml")
    )
    malformed = Path(__file__).parent / "malformed"
    specs += [p for p in sorted(malformed.glob("*.yaml")) if not p.name.startswith(("yaml_", "_"))]

    def snapshot(loader: object) -> list[object]:
        monkeypatch.setattr(load, "_Loader", loader)
        out: list[object] = []
        for spec in specs:
            try:
                doc = load.load_spec(spec)
            except PromptcError as e:
                out.append(e.format())
                continue
            out.append((doc.data, doc.key_locations, doc.value_locations, doc.spans))
        return out

    assert load._Loader is not load._PyLoader, "PyYAML without libyaml: nothing to compare"
    fast = snapshot(load._Loader)
    assert snapshot(load._PyLoader) == fast


# --- extends, as a property ---------------------------------------------------------------------


def _reference_merge(
    base: object,
    child: object,
    origin: dict[tuple[object, ...], str],
    path: tuple[object, ...] = (),
) -> object:
    """The documented semantics, written plainly; records which file each path comes from."""

    def mark(value: object, who: str, p: tuple[object, ...]) -> None:
        origin[p] = who
        if isinstance(value, dict):
            for k, v in value.items():
                mark(v, who, p + (k,))
        elif isinstance(value, list):
            for i, v in enumerate(value):
                mark(v, who, p + (i,))

    assert isinstance(base, dict) and isinstance(child, dict)
    out = {}
    for k, v in base.items():
        out[k] = v
        mark(v, "base", path + (k,))
    for k, v in child.items():
        p = path + (k,)
        if v is None:
            out.pop(k, None)
            for q in [q for q in origin if q[: len(p)] == p]:
                del origin[q]
        elif isinstance(out.get(k), dict) and isinstance(v, dict):
            origin[p] = "child"
            out[k] = _reference_merge(out[k], v, origin, p)
        else:
            for q in [q for q in origin if q[: len(p)] == p]:
                del origin[q]
            out[k] = v
            mark(v, "child", p)
    return out


def test_extends_merge_property(tmp_path_factory: pytest.TempPathFactory) -> None:
    import yaml
    from hypothesis import given, settings
    from hypothesis import strategies as st

    keys = st.sampled_from(["a", "b", "c", "d"])
    leaves = st.one_of(st.none(), st.integers(-5, 5), st.text("xyz", max_size=3))
    tree = st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)
        ),
        max_leaves=10,
    )
    docs = st.dictionaries(keys, tree, max_size=4)
    folder = tmp_path_factory.mktemp("merge")

    @settings(max_examples=200, deadline=None)
    @given(docs.map(lambda d: {k: v for k, v in d.items() if v is not None}), docs)
    def check(base: dict[str, object], child: dict[str, object]) -> None:
        base = {"promptc": 1, **base}  # a spec (extends-not-spec otherwise)
        (folder / "base.yaml").write_text(yaml.safe_dump(base))
        (folder / "child.yaml").write_text(yaml.safe_dump({"extends": "base.yaml", **child}))
        doc = load_spec(folder / "child.yaml")
        origin: dict[tuple[object, ...], str] = {}
        expected = _reference_merge(base, child, origin)
        assert doc.data == expected
        for path, who in origin.items():
            assert Path(doc.value_locations[path].file).name == f"{who}.yaml", path
        assert set(doc.value_locations) - {()} == set(origin)

    check()
