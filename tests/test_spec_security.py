"""Security of the front end: no code from YAML, no files from outside the spec's folder,
no hang or blow-up from hostile YAML."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from promptc.errors import LoadError, PromptcError, PromptcErrors
from promptc.sandbox import budget
from promptc.spec.load import MAX_SPEC_BYTES, load_spec
from promptc.spec.lower import compile_spec

SPEC = """\
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


@pytest.fixture()
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp_path/project/specs`` as the current folder (no .git above: the project folder is
    the spec's own), with a valid spec and data, and a secret file outside it."""
    specs = tmp_path / "project" / "specs"
    specs.mkdir(parents=True)
    (specs / "spec.yaml").write_text(SPEC)
    (specs / "data.jsonl").write_text('{"question": "1 + 1?"}\n')
    (tmp_path / "secret.jsonl").write_text('{"question": "the secret"}\n')
    (tmp_path / "secret.yaml").write_text(SPEC)
    monkeypatch.chdir(specs)
    return specs


def codes(e: PromptcError) -> list[str]:
    return [x.code for x in (e.errors if isinstance(e, PromptcErrors) else [e])]


# --- YAML tags ---------------------------------------------------------------------------------

DANGEROUS = [
    "!!python/object/apply:os.system ['touch PWNED']",
    "!!python/object/new:os.system ['touch PWNED']",
    "!!python/object:os._wrap_close {}",
    "!!python/name:os.system ''",
    "!!python/module:os ''",
    "!!python/tuple [1, 2]",
    "!!python/str x",
    "!!binary aGVsbG8=",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!<tag:yaml.org,2002:python/object/apply:os.system> ['touch PWNED']",
    "!custom value",
]


@pytest.mark.parametrize("tagged", DANGEROUS)
@pytest.mark.parametrize("where", ["value", "list-item", "key", "nested"])
def test_yaml_tags_are_refused(folder: Path, tagged: str, where: str) -> None:
    line = {
        "value": f"description: {tagged}\n",
        "list-item": f"demos:\n  - {tagged}\n",
        "key": f"? {tagged}\n: 1\n",
        "nested": f"strategy:\n  selection:\n    method: {tagged}\n",
    }[where]
    (folder / "spec.yaml").write_text(SPEC + line)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == ["yaml-tag"]
    assert info.value.errors[0].location is not None
    assert info.value.errors[0].location.line >= 10
    assert not (folder / "PWNED").exists()


def test_tag_error_points_at_the_tag(folder: Path) -> None:
    (folder / "spec.yaml").write_text(
        SPEC + "description: &x !!python/object/apply:os.system [ls]\n"
    )
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert str(info.value).startswith(
        "spec.yaml:10:17: description: YAML tag '!!python/object/apply:os.system' is not allowed"
    )


def test_tags_in_an_extended_file_are_refused(folder: Path) -> None:
    (folder / "base.yaml").write_text(SPEC + "description: !!python/name:os.system ''\n")
    (folder / "spec.yaml").write_text("extends: base.yaml\n")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert [str(e.location) for e in info.value] == ["base.yaml:10:14"]


# --- data paths --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code"),
    [
        ("../../etc/passwd", "escapes-folder"),
        ("../../secret.jsonl", "escapes-folder"),
        ("sub/../../../secret.jsonl", "escapes-folder"),
        ("/etc/passwd", "absolute-path"),
        ("~/secret.jsonl", "absolute-path"),
    ],
)
def test_data_paths_may_not_leave_the_spec_folder(folder: Path, path: str, code: str) -> None:
    (folder / "spec.yaml").write_text(SPEC.replace("data.jsonl", path))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == [code]
    assert str(info.value.errors[0].location) == "spec.yaml:8:14"


def test_data_symlink_pointing_outside_is_refused(folder: Path) -> None:
    os.symlink(folder.parent.parent / "secret.jsonl", folder / "link.jsonl")
    (folder / "spec.yaml").write_text(SPEC.replace("data.jsonl", "link.jsonl"))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format() == (
        "spec.yaml:8:14: data.path: data path 'link.jsonl' leaves the "
        "spec's folder (keep data files inside the spec's folder)"
    )


def test_data_symlink_inside_the_folder_is_fine(folder: Path) -> None:
    (folder / "sub").mkdir()
    os.symlink(folder / "data.jsonl", folder / "sub" / "link.jsonl")
    (folder / "spec.yaml").write_text(SPEC.replace("data.jsonl", "sub/link.jsonl"))
    assert [i.inputs["question"] for i in compile_spec("spec.yaml").items] == ["1 + 1?"]


# --- extends -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "code"),
    [
        ("../../secret.yaml", "extends-escape"),
        ("../specs/../../secret.yaml", "extends-escape"),
        ("/etc/passwd", "extends-absolute"),
        ("~/secret.yaml", "extends-absolute"),
    ],
)
def test_extends_may_not_leave_the_project(folder: Path, target: str, code: str) -> None:
    (folder / "spec.yaml").write_text(f"extends: {target}\nname: x\n")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == [code]
    assert str(info.value.errors[0].location) == "spec.yaml:1:10"


def test_extends_symlink_pointing_outside_is_refused(folder: Path) -> None:
    os.symlink(folder.parent.parent / "secret.yaml", folder / "base.yaml")
    (folder / "spec.yaml").write_text("extends: base.yaml\n")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == ["extends-escape"]


def test_extends_takes_only_a_spec_never_another_mapping_of_the_project(folder: Path) -> None:
    """A home folder kept in git is a project folder: a spec downloaded there may not extend
    a credentials file (any YAML mapping, its keys nulled) and so open its folder to
    ``{% include %}``."""
    (folder.parent / ".git").mkdir()
    config = folder.parent / "config"
    config.mkdir()
    (config / "hosts.yml").write_text("github.com: {oauth_token: gho_SECRET}\n")
    (folder / "spec.yaml").write_text(
        SPEC + "extends: ../config/hosts.yml\ngithub.com: ~\ntemplates: {single: t.j2}\n"
    )
    (folder / "t.j2").write_text('{% block user %}{% include "hosts.yml" %}{% endblock %}')
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == ["extends-not-spec"]
    assert info.value.format().startswith(
        f"spec.yaml:{SPEC.count(chr(10)) + 1}:10: extends: extended file "
        "'../config/hosts.yml' is no promptc spec"
    )


def test_project_folder_is_the_nearest_with_git_or_pyproject(folder: Path) -> None:
    (folder.parent / ".git").mkdir()
    (folder.parent / "base.yaml").write_text(SPEC.replace("data.jsonl", "specs/data.jsonl"))
    (folder / "spec.yaml").write_text("extends: ../base.yaml\n")
    assert compile_spec("spec.yaml").name == "math"
    (folder / "spec.yaml").write_text("extends: ../../secret.yaml\n")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == ["extends-escape"]


# --- templates ---------------------------------------------------------------------------------


def test_template_paths_may_not_leave_the_spec_folder(folder: Path) -> None:
    os.symlink(folder.parent.parent / "secret.yaml", folder / "t.j2")
    (folder / "spec.yaml").write_text(
        SPEC + "templates:\n  single: ../../secret.yaml\n  batch: /etc/passwd\n  few-shot: t.j2\n"
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert codes(info.value) == ["template-escape", "template-absolute", "template-escape"]


# --- hostile YAML ------------------------------------------------------------------------------


def test_billion_laughs_is_stopped_quickly(folder: Path) -> None:
    lines = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i, name in enumerate("bcdefghi"):
        prev = "abcdefghi"[i]
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]")
    (folder / "spec.yaml").write_text("\n".join(lines) + "\n")
    start = time.perf_counter()
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert time.perf_counter() - start < 5
    assert info.value.code == "too-many-values"


def test_aliases_of_long_text_are_capped_by_the_characters_they_expand_to(
    folder: Path,
) -> None:
    """Few values, much text: a 900 KB description aliased 1,000 times in ``model.stop`` is
    900 MB that every request would carry (a build ran out of memory, exit 3)."""
    big = "x" * 900_000
    aliases = ", ".join(["*big"] * 1000)
    (folder / "spec.yaml").write_text(f"description: &big {big}\nmodel: {{stop: [{aliases}]}}\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "too-much-text"
    assert info.value.format() == (
        "spec.yaml:2:1: model: the spec's values expand to more than 4,000,000 characters "
        "(are aliases of long text repeated too often?)"
    )
    # The same text written once is within the bound.
    (folder / "spec.yaml").write_text(f"description: &big {big}\nmodel: {{stop: [*big]}}\n")
    assert load_spec("spec.yaml").data["model"]["stop"] == [big]


def test_anchors_nested_through_aliases_are_capped(folder: Path) -> None:
    lines = ["a0: &a0 [[[[[[[[[[x]]]]]]]]]]"]
    for i in range(1, 30):
        lines.append(f"a{i}: &a{i} [[[[[[[[[[*a{i - 1}]]]]]]]]]]")
    (folder / "spec.yaml").write_text("\n".join(lines) + "\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "too-deep"


@pytest.mark.parametrize("style", ["flow-list", "flow-map", "block-list", "block-map"])
def test_deep_nesting_is_an_error_not_a_crash(folder: Path, style: str) -> None:
    n = 5000
    text = {
        "flow-list": "x: " + "[" * n + "]" * n,
        "flow-map": "x: " + "{a: " * n + "1" + "}" * n,
        "block-list": "x:\n" + "".join("  " * i + "-\n" for i in range(300)),
        "block-map": "".join("  " * i + "k:\n" for i in range(300)),
    }[style]
    (folder / "spec.yaml").write_text(text + "\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "too-deep"
    assert info.value.message == "nesting is deeper than 50 levels"


def test_recursive_alias(folder: Path) -> None:
    (folder / "spec.yaml").write_text("a: &a {b: *a}\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "recursive-alias"


def test_huge_file_is_refused_unread(folder: Path) -> None:
    (folder / "spec.yaml").write_text("# " + "x" * MAX_SPEC_BYTES + "\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.format() == f"spec.yaml: spec file is larger than {MAX_SPEC_BYTES} bytes"


def test_huge_integer_is_an_error(folder: Path) -> None:
    (folder / "spec.yaml").write_text("promptc: " + "1" * 10000 + "\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "number-too-large"


@pytest.mark.parametrize("number", ["0x" + "f" * 5000])
def test_huge_integer_in_any_base_is_an_error(folder: Path, number: str) -> None:
    # YAML reads hexadecimal integers without Python's digit limit: refused at the number all
    # the same, not later in a message or a JSON file.
    (folder / "spec.yaml").write_text(f"promptc: 1\nmodel: {{max_tokens: {number}}}\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "number-too-large"
    assert info.value.format().startswith("spec.yaml:2:21: model.max_tokens: number ")


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ('!!bool "abc"', "!!bool cannot hold 'abc': expected true or false"),
        ('!!int "abc"', "!!int cannot hold 'abc': expected an integer"),
        ('!!int ""', "!!int cannot hold '': expected an integer"),
        ('!!float "."', "!!float cannot hold '.': expected a number"),
        ("!!int 0b102", "!!int cannot hold '0b102': expected an integer"),
    ],
)
def test_tagged_value_the_tag_cannot_hold(folder: Path, value: str, said: str) -> None:
    # PyYAML's constructors raise KeyError, IndexError or ValueError for text their tag
    # cannot hold: a located error saying what the tag holds, never a number "too large".
    (folder / "spec.yaml").write_text(f"promptc: 1\nmodel: {{max_tokens: {value}}}\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.code == "bad-tagged-value"
    assert info.value.format() == f"spec.yaml:2:21: model.max_tokens: {said}"


def test_a_name_is_at_most_200_characters(folder: Path) -> None:
    # The name heads every grammar file of every request shape and every vllm-batch body's
    # constraint: a 900 KB name made a build of 100 items 264 MB.
    (folder / "spec.yaml").write_text(SPEC.replace("name: math", "name: " + "n" * 201))
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    (e,) = info.value.errors
    assert (e.code, e.format()) == (
        "too-long",
        "spec.yaml:2:7: name: expected a string of at most 200 characters, found 201",
    )


def test_an_enum_holds_at_most_1000_choices(folder: Path) -> None:
    # Every choice is spelt in the grammar of every request shape and in the JSON Schema
    # once per item: 60,000 choices took 38 s to build and 32 s to parse one output.
    many = ", ".join(f"c{i}" for i in range(1001))
    text = SPEC.replace("answer: {type: number}", f"answer: {{type: enum, choices: [{many}]}}")
    (folder / "spec.yaml").write_text(text)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    (e,) = info.value.errors
    assert (e.code, e.format()) == (
        "too-many",
        "spec.yaml:7:33: outputs.answer.choices: expected at most 1,000 items, found 1,001",
    )


@pytest.mark.parametrize("marker", ["Ａ", "Ans\u200bwer", "A\u00a0B", "Q\u2212"])
def test_a_marker_the_parser_reads_as_another_is_refused(folder: Path, marker: str) -> None:
    # The model writes the marker as the prompt shows it; the parser finds markers in the
    # output with lookalikes normalised: Ａ[1]: would never be found, every answer missing.
    (folder / "spec.yaml").write_text(SPEC + f"markers: {{answer: {json.dumps(marker)}}}\n")
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    (e,) = info.value.errors
    assert e.code == "bad-marker" and "which the parser reads as" in e.message


def test_an_answer_format_with_an_invisible_character_is_refused(folder: Path) -> None:
    # The parser reads outputs without zero-width characters: a literal holding one beside a
    # no-break space never matched, and every answer was malformed.
    text = SPEC + 'answer_format: "The answer is\\u00a0\\u200b {answer}"\n'
    (folder / "spec.yaml").write_text(text)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    (e,) = info.value.errors
    assert e.code == "invisible-in-format" and "U+200B" in e.message


@pytest.mark.parametrize("tag", ["<think>", "</think>", "</THINK>"])
def test_an_answer_format_with_a_thinking_tag_is_refused_at_the_tag(folder: Path, tag: str) -> None:
    # The parser leaves a reasoning model's thinking out of every output: a format asking for
    # the tags made every answer malformed, in both modes.
    text = SPEC + f'answer_format: "{tag} The answer is {{answer}}"\n'
    (folder / "spec.yaml").write_text(text)
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    e = info.value.errors[0]
    assert e.code == "think-in-format" and tag in e.message
    assert e.location is not None and e.location.col == text.splitlines()[-1].index(tag) + 1


def test_not_utf8(folder: Path) -> None:
    (folder / "spec.yaml").write_bytes(b"promptc: 1\nname: caf\xe9\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.format() == "spec.yaml:2:10: spec file is not UTF-8 text: invalid byte 0xe9"


def test_not_utf8_after_a_bom(folder: Path) -> None:
    """The BOM is not text: the bad byte is found where it is, not three bytes off."""
    (folder / "spec.yaml").write_bytes(b"\xef\xbb\xbfpromptc: 1\nname: caf\xe9\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.format() == "spec.yaml:2:10: spec file is not UTF-8 text: invalid byte 0xe9"
    (folder / "spec.yaml").write_bytes(b"\xef\xbb\xbfpromptc: 1\n")
    assert load_spec("spec.yaml").data == {"promptc": 1}


def test_control_characters(folder: Path) -> None:
    (folder / "spec.yaml").write_text("promptc: 1\nname: a\x07b\n")
    with pytest.raises(LoadError) as info:
        load_spec("spec.yaml")
    assert info.value.format() == (
        "spec.yaml:2:8: invalid YAML: special character '\\x07' is not allowed"
    )


def test_a_folder_is_not_a_spec(folder: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_spec(".")
    assert info.value.format() == ". : cannot read spec file '.': not a regular file".replace(
        ". :", ".:"
    )


def test_missing_spec_file(folder: Path) -> None:
    with pytest.raises(LoadError) as info:
        load_spec("nope.yaml")
    assert info.value.format() == "nope.yaml: cannot read spec file 'nope.yaml': no such file"


# --- item id expressions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        (
            "{{ row.__class__.__mro__ }}",
            ("access to attribute '__class__' of 'dict' object is unsafe."),
        ),
        (
            "{{ row.update({'x': 1}) }}",
            ("access to attribute 'update' of 'dict' object is unsafe."),
        ),
        (
            "{{ 'x' * 1000000000 }}",
            (
                "template exceeds the limit of 2,000,000 characters (or list items) per value: a "
                "repetition would build a larger one"
            ),
        ),
        (
            "{{ 9 ** 9999999 }}",
            (
                "template exceeds the limit of 100,000-bit integers: an arithmetic expression "
                "would compute a larger one"
            ),
        ),
        # A width builds a string as large as it asks: 1 GB a row, before the expression ends.
        (
            "{{ '%0999999999d' % 1 }}",
            (
                "template exceeds the limit of 2,000,000 characters per value: a width or count "
                "asks for more"
            ),
        ),
        (
            "{{ '{:0999999999}'.format(1) }}",
            (
                "template exceeds the limit of 2,000,000 characters per value: a width or count "
                "asks for more"
            ),
        ),
        (
            "{{ 1 }}{% for i in range(2000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}",
            (
                "template exceeds the limit of 1,000,000 loop iterations per message: the loops "
                "of this message ran more often"
            ),
        ),
        # Each part within the bound, what the expression writes past it.
        (
            "{% for i in range(3) %}{{ 'x' * 1000000 }}{% endfor %}",
            (
                "template exceeds the limit of 2,000,000 characters (or list items) per value: "
                "an expression built a larger one"
            ),
        ),
    ],
    ids=[
        "dunder",
        "mutation",
        "repeat",
        "power",
        "percent-width",
        "format-width",
        "loop",
        "written",
    ],
)
def test_id_expressions_run_in_a_sandbox(folder: Path, expr: str, problem: str) -> None:
    (folder / "spec.yaml").write_text(
        SPEC.replace("{path: data.jsonl}", f'{{path: data.jsonl, id: "{expr}"}}')
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert info.value.format() == (f"data.jsonl:1:1: data.id: item id expression failed: {problem}")


def test_an_id_expression_failing_when_its_row_is_read_again_is_said_as_such(
    folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row is read twice (checked, then read back as its item is used): an expression that
    fails only the second time (the memory left then, its time) is the expression's error at
    the row, not "the data file changed", which running again would not mend."""
    expr = "{% for i in range(100) %}{% endfor %}{{ row.question }}"
    (folder / "spec.yaml").write_text(
        SPEC.replace("{path: data.jsonl}", f'{{path: data.jsonl, id: "{expr}"}}')
    )
    task = compile_spec("spec.yaml")
    monkeypatch.setattr(budget, "MAX_LOOP_ITERATIONS", 10)
    with pytest.raises(PromptcError) as info:
        task.items[0]
    assert info.value.format() == (
        "data.jsonl:1:1: data.id: item id expression failed: template exceeds the limit of 10 "
        "loop iterations per message: the loops of this message ran more often"
    )


def test_an_extends_chain_is_held_to_the_values_of_one_spec(folder: Path) -> None:
    # Each file under the bound, the merged spec over it: refused at the extends value, so
    # that a chain of 32 such files is not merged layer upon layer (quadratic before).
    extra = "".join(f"    k{j}: [1, 2, 3, 4, 5]\n" for j in range(10000))
    (folder / "base.yaml").write_text(
        SPEC.replace("model: {name: test-model}", "model:\n  name: test-model\n  extra:\n" + extra)
    )
    more = "".join(f"    m{j}: [1, 2, 3, 4, 5]\n" for j in range(10000))
    (folder / "child.yaml").write_text("extends: base.yaml\nmodel:\n  extra:\n" + more)
    load_spec("base.yaml")  # 60,000 values: under the bound
    with pytest.raises(LoadError) as info:
        load_spec("child.yaml")
    assert info.value.code == "too-many-values"
    assert info.value.format().startswith("child.yaml:1:10: extends: the spec expands to more")


def test_demos_aliases_amplify_are_refused_at_the_demos(folder: Path) -> None:
    # One long text repeated in every demo through an alias: check says so at `demos`,
    # rather than the renderer running out of memory at no file or line.
    text = "x " * 60_000
    demos = "".join("  - {question: *a, answer: 1}\n" for _ in range(30))
    (folder / "spec.yaml").write_text(
        SPEC.replace("instruction:", f'description: &a "{text}"\ninstruction:') + "demos:\n" + demos
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec(folder / "spec.yaml")
    assert "demos: the demos hold 3,600,000 characters, more than one message may hold" in (
        info.value.format()
    )


@pytest.mark.parametrize(
    ("written", "value"),
    [
        ("0100", "0100"),
        ("01000", "01000"),
        ("1:30", "1:30"),
        ("0b11", "0b11"),
        ("1_000", "1_000"),
        ("0" + "7" * 6000, "0" + "7" * 6000),
        ("59:" * 3000 + "59", "59:" * 3000 + "59"),
        ("100", 100),
        ("0x10", 16),
        ("-0", 0),
        ("1.5", 1.5),
    ],
)
def test_numbers_only_yaml_1_1_reads_are_kept_as_written(
    folder: Path, written: str, value: object
) -> None:
    """``01000`` is octal 512 and ``1:30`` base-60 90 in YAML 1.1 alone: a demo's postcode or
    time was sent as a number nobody wrote, ``max_tokens: 0100`` as 64. Their text is kept
    (an integer field then says it is no integer); numbers as YAML 1.2 reads them stay."""
    (folder / "spec.yaml").write_text(f"promptc: 1\nmodel: {{stop: [{written}]}}\n")
    assert load_spec("spec.yaml").data["model"]["stop"] == [value]


def test_a_nul_in_the_specs_own_text_is_refused_as_in_a_data_row(folder: Path) -> None:
    """A ``"\\0"`` escape in the instruction or a demo: refused at its value, as a NUL in a
    data row is (servers end a C string there)."""
    (folder / "spec.yaml").write_text(
        SPEC.replace("instruction: Solve the problem.", 'instruction: "Solve\\0 it."')
    )
    with pytest.raises(PromptcErrors) as info:
        compile_spec("spec.yaml")
    assert "instruction: the text holds a NUL character, which no prompt can carry" in (
        info.value.format()
    )


@pytest.mark.parametrize(
    ("source", "lookup"),
    [
        ("{{ row.pid }}", True),
        ("q{{ loop_index }}-{{ row['id'] }}", True),
        ("{{ row.a ~ row.b }}", False),
        ("{{ row.a | upper }}", False),
        ("{{ row.a * 3 }}", False),
        ("{% for x in row.xs %}{{ x }}{% endfor %}", False),
        ("{% set s = row.a %}{{ s }}", False),
        ("{{ row.f() }}", False),
    ],
)
def test_only_an_expression_that_looks_values_up_renders_without_the_os_limits(
    source: str, lookup: bool
) -> None:
    """The OS limits cost more than ``{{ row.pid }}`` takes (200,000 rows took 3 times as
    long to check): an expression that only writes text and looked-up values cannot build
    a value larger than its row's and goes without them; any operator, filter, call, loop
    or assignment keeps them."""
    from promptc.spec.expressions import bounded_by_its_values

    assert bounded_by_its_values(source) is lookup
