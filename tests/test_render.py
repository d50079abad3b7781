"""Selection and rendering on hand-built IR tasks: batches, prompts, template checks."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from promptc import ir
from promptc.errors import SelectionError, TemplateError
from promptc.render.checks import check_templates
from promptc.render.renderer import Renderer, render
from promptc.select import methods as select
from promptc.spec.lower import compile_spec
from promptc.strategies import NAMES

TaskFactory = Callable[..., ir.Task]


# ---------------------------------------------------------------- selection


def ids(result: select.SelectionResult) -> list[list[str]]:
    return [list(b.item_ids) for b in result.batches]


def test_sequential_cuts_items_in_file_order(task_factory: TaskFactory) -> None:
    result = select.select(task_factory(kind="batch", batch_size=2, n_items=5))
    assert ids(result) == [["q0", "q1"], ["q2", "q3"], ["q4"]]
    assert [b.index for b in result.batches] == [0, 1, 2]
    assert result.info == {
        "method": "sequential",
        "batch_size": 2,
        "items": 5,
        "requests": 3,
        "cost": "3 requests for 5 items (up to 2 items per request)",
    }


@pytest.mark.parametrize("kind", ["single", "few-shot"])
def test_one_item_strategies_send_one_item_per_request(
    task_factory: TaskFactory, kind: str
) -> None:
    result = select.select(task_factory(kind=kind, batch_size=8, n_items=3))
    assert ids(result) == [["q0"], ["q1"], ["q2"]]
    assert result.info["batch_size"] == 1


def test_random_is_seeded_and_the_same_on_every_python(task_factory: TaskFactory) -> None:
    task = task_factory(kind="batch", batch_size=4, n_items=10, method="random", seed=0)
    # random.Random(0).shuffle(list(range(10))), fixed by Python's documented algorithm.
    assert ids(select.select(task)) == [
        ["q7", "q8", "q1", "q5"],
        ["q3", "q4", "q2", "q0"],
        ["q9", "q6"],
    ]
    assert select.select(task) == select.select(task)
    other = task_factory(kind="batch", batch_size=4, n_items=10, method="random", seed=7)
    assert ids(select.select(other))[0] == ["q8", "q3", "q1", "q4"]
    assert select.select(task).info["seed"] == 0


def test_random_covers_every_item_once(task_factory: TaskFactory) -> None:
    task = task_factory(kind="auto-demo", batch_size=3, n_items=50, method="random", seed=11)
    flat = [i for b in ids(select.select(task)) for i in b]
    assert sorted(flat) == sorted(it.id for it in task.items)


def test_method_table_is_the_one_place_methods_are_found(
    task_factory: TaskFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    def reversed_order(task: ir.Task) -> select.SelectionResult:
        order = list(range(len(task.items)))[::-1]
        return select.SelectionResult(select.Chunks(task, order), {"note": "reversed"})

    monkeypatch.setattr(select, "METHODS", {**select.METHODS, "sequential": reversed_order})
    result = select.select(task_factory(kind="batch", batch_size=2, n_items=3))
    assert ids(result) == [["q2", "q1"], ["q0"]]
    assert result.info["note"] == "reversed"
    assert result.info["requests"] == 2


def test_every_declared_method_has_an_entry() -> None:
    assert set(select.METHODS) == set(ir.SELECTION_METHODS)


def test_similarity_method_without_the_extra_says_what_to_install(
    task_factory: TaskFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "promptc.select.similarity", None)  # import fails
    with pytest.raises(SelectionError) as e:
        select.select(task_factory(method="partition"))
    assert e.value.message.startswith(
        "selection method 'partition' needs sentence-transformers, which is not installed"
    )
    assert e.value.hint == "install it with: pip install 'promptc-compiler[embed]'"
    assert e.value.key_path == "strategy.selection.method"


# ---------------------------------------------------------------- rendering


def request_texts(task: ir.Task) -> list[dict[str, str]]:
    return [{m.role: m.content for m in r.messages} for r in render(task, select.select(task))]


def test_batch_prompt_lists_questions_and_asks_for_answer_lines(task_factory: TaskFactory) -> None:
    task = task_factory(kind="batch", batch_size=3, n_items=4)
    requests = render(task, select.select(task))
    assert [r.id for r in requests] == ["r0001", "r0002"]
    assert requests[0].params == {"model": "test-model", "temperature": 0.0, "max_tokens": 256}
    first = {m.role: m.content for m in requests[0].messages}
    assert (
        first["user"] == "Q[1]: What is 0 plus 0?\nQ[2]: What is 1 plus 1?\nQ[3]: What is 2 plus 2?"
    )
    assert "A[i]: <reasoning> The answer is <answer>." in first["system"]
    assert "where <reasoning> is free text and <answer> is a number." in first["system"]
    # demos as one solved batch: questions first, then answers written by write_answer
    assert (
        "Q[1]: What is 2 plus 3?\nQ[2]: Half of 9?\n"
        "A[1]: 2 + 3 = 5. The answer is 5.\nA[2]: 9 / 2 = 4.5. The answer is 4.5."
    ) in first["system"]
    assert {m.role: m.content for m in requests[1].messages}["user"] == "Q[1]: What is 3 plus 3?"


def test_auto_demo_asks_to_repeat_each_question(task_factory: TaskFactory) -> None:
    system = request_texts(task_factory(kind="auto-demo", n_items=2))[0]["system"]
    assert (
        "first repeat it exactly as it was given, on a line starting with its marker Q[i]:"
        in system
    )
    assert (
        "Q[i]: <the question, repeated exactly>\nA[i]: <reasoning> The answer is <answer>."
        in system
    )
    assert "Q[1]: What is 2 plus 3?\nA[1]: 2 + 3 = 5. The answer is 5.\nQ[2]: Half of 9?" in system


def test_single_and_few_shot(task_factory: TaskFactory) -> None:
    single = request_texts(task_factory(kind="single", n_items=2))
    assert single[1]["user"] == "What is 1 plus 1?"
    assert "Solved examples" not in single[0]["system"]
    few = request_texts(task_factory(kind="few-shot", n_items=2))[0]["system"]
    assert "Example 2:\nHalf of 9?\nAnswer: 9 / 2 = 4.5. The answer is 4.5." in few


def test_multi_field_inputs_render_with_labels(task_factory: TaskFactory) -> None:
    texts = request_texts(task_factory(kind="batch", multi_field=True, n_items=2))[0]
    assert texts["user"] == (
        "Q[1]: Premise: Premise number 0.\nHypothesis: Claim 0.\n"
        "Q[2]: Premise: Premise number 1.\nHypothesis: Claim 1."
    )
    assert "where <label> is one of: entailment, neutral, contradiction." in texts["system"]


def test_no_demos_means_no_examples_section(task_factory: TaskFactory) -> None:
    for kind in NAMES:
        texts = request_texts(task_factory(kind=kind, demos=0))[0]
        assert "Solved examples" not in texts["system"]
        assert "\n\n\n" not in texts["system"]


# ---------------------------------------------------------------- a spec's own templates


SPEC = """\
promptc: 1
name: own
instruction: Label the text.
inputs: {{text: {{}}}}
outputs: {{label: {{type: enum, choices: [a, b]}}}}
data: {{path: data.jsonl}}
strategy: {{kind: batch, batch_size: 2}}
templates: {{batch: {template}}}
model: {{name: m}}
"""


def own_spec(
    tmp_path: Path, template: str, name: str = "mine.j2", extra: dict[str, str] | None = None
) -> Path:
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"text": t}) + "\n" for t in ["one", "two", "three"]), encoding="utf-8"
    )
    (tmp_path / name).write_text(template, encoding="utf-8")
    for rel, text in (extra or {}).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC.format(template=name), encoding="utf-8")
    return spec


def test_a_namespace_counts_within_a_message_and_starts_afresh_in_each(tmp_path: Path) -> None:
    # A namespace of a template imported without context lives in the module Jinja keeps:
    # each request still sees it as it was made ("Call 1" in each), and a message's own
    # namespace counts as usual.
    spec = own_spec(
        tmp_path,
        '{% block user %}{% import "m.j2" as m %}Call {{ m.bump() }}{{ m.bump() }}; '
        "{% set n = namespace(k=0) %}{% for i in items %}{% set n.k = n.k + 1 %}{% endfor %}"
        "{{ n.k }} items{% endblock %}",
        extra={
            "m.j2": "{% set ns = namespace(c=0) %}"
            "{% macro bump() %}{% set ns.c = ns.c + 1 %}{{ ns.c }}{% endmacro %}"
        },
    )
    task = compile_spec(spec)
    requests = tuple(Renderer(task).iter_render(select.select(task)))
    assert [r.messages[-1].content for r in requests] == ["Call 12; 2 items", "Call 12; 1 items"]


def test_own_template_may_extend_a_shipped_one(tmp_path: Path) -> None:
    spec = own_spec(
        tmp_path,
        '{% extends "promptc/batch.j2" %}\n'
        "{% block system %}Be brief. {{ super() }}{% endblock %}\n",
    )
    task = compile_spec(spec)
    assert check_templates(task) == []
    r = Renderer(task)
    requests = tuple(r.iter_render(select.select(task)))
    system = requests[0].messages[0].content
    assert system.startswith("Be brief. Label the text.\n\nYou will be given several questions")
    assert requests[0].messages[1].content == "Q[1]: one\nQ[2]: two"
    assert sorted(r.loader.used) == ["mine.j2", "promptc/batch.j2", "promptc/partials/questions.j2"]


def test_a_misspelt_block_of_an_extended_template_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Jinja drops a child's block its parents do not define: the override would vanish. The
    blocks every template up the chain defines (nested ones too) are the ones a child may
    override."""
    monkeypatch.chdir(tmp_path)
    base = (
        '{% extends "promptc/batch.j2" %}\n'
        "{% block system %}{% block tone %}Be kind.{% endblock %} {{ super() }}{% endblock %}\n"
    )
    child = (
        '{% extends "base.j2" %}\n{% block tone %}Be brief.{% endblock %}\n'
        "{% block usr %}x{% endblock %}\n"
    )
    task = compile_spec(own_spec(tmp_path, child, extra={"base.j2": base}))
    assert [e.format() for e in check_templates(task)] == [
        (
            "mine.j2:3: unknown message block 'usr'; expected a block 'base.j2' defines "
            "('system', 'tone' or 'user') (did you mean 'user'?)"
        )
    ]
    fixed = child.replace("{% block usr %}x{% endblock %}\n", "")
    task = compile_spec(own_spec(tmp_path, fixed, extra={"base.j2": base}))
    assert check_templates(task) == []
    system = render(task, select.select(task))[0].messages[0].content
    assert system.startswith("Be brief. Label the text.")


def test_own_template_with_includes_inside_the_spec_folder(tmp_path: Path) -> None:
    spec = own_spec(
        tmp_path,
        '{% block user %}{% for item in items %}{% include "parts/q.j2" %}{% endfor %}{% endblock %}',
        extra={"parts/q.j2": "<{{ item.index }}|{{ item.question }}>"},
    )
    task = compile_spec(spec)
    assert check_templates(task) == []
    messages = render(task, select.select(task))[0].messages
    assert messages == (ir.Message("user", "<1|one><2|two>"),)


def test_a_variable_the_template_sets_inside_an_if_is_its_own(tmp_path: Path) -> None:
    """Jinja's code generator calls ``heading`` undeclared (set in one branch, read in it):
    it is the template's own variable, not one it expects to be given."""
    spec = own_spec(
        tmp_path,
        "{% block user %}{% if items|length > 1 %}{% set heading = 'Reviews' %}"
        "{{ heading }}:{% endif %}{% if true %}{% set ns = namespace(s=1) %}{{ ns.s }}{% endif %}"
        "{% endblock %}",
    )
    task = compile_spec(spec)
    assert check_templates(task) == []
    assert render(task, select.select(task))[0].messages == (ir.Message("user", "Reviews:1"),)


CHECK_CASES = [
    (
        "{% block user %}\n{{ item.question }}\n{% endblock %}",
        (
            "mine.j2:2: template uses undeclared variable 'item'; templates can use answer_format, "
            "batch_size, demos, inputs, items, kind, markers, outputs, task (did you mean 'items'?)"
        ),
    ),
    (
        "{% block user %}\n\n{% for x in items %}{{ x.question }\n{% endblock %}",
        "mine.j2:3: template syntax error: unexpected '}'",
    ),
    (
        "Hello\n{% block user %}{{ items|length }}{% endblock %}",
        (
            "mine.j2:1: text or statements outside {% block system %} and {% block user %} belong to "
            "no message; move them inside a block"
        ),
    ),
    (
        "{% block sytem %}x{% endblock %}{% block user %}y{% endblock %}",
        "mine.j2:1: unknown message block 'sytem'; expected 'system' or 'user' (did you mean 'system'?)",
    ),
    (
        '{% extends "promptc/batch.j2" %}\n{% block sytem %}You are a grader.{% endblock %}\n',
        (
            "mine.j2:2: unknown message block 'sytem'; expected a block 'promptc/batch.j2' "
            "defines ('system' or 'user') (did you mean 'system'?)"
        ),
    ),
    (
        "{% block system %}x{% endblock %}",
        (
            "mine.j2: template 'mine.j2' has no {% block user %}; a template must define the user "
            "message (and may define {% block system %})"
        ),
    ),
    (
        "{% block user %}\n{{ items[0].nope }}\n{% endblock %}",
        "mine.j2:2: template uses an undefined value: 'dict object' has no attribute 'nope'",
    ),
    # Inside a list, tuple or dict written as text (repr of its items): it was "[Undefined]".
    *(
        (
            "{% block user %}\n" + written + "\n{% endblock %}",
            "mine.j2:2: template uses an undefined value: 'dict object' has no attribute 'nope'",
        )
        for written in (
            '{{ items|map(attribute="nope")|list }}',
            "{{ [items[0].nope] }}",
            "{{ (1, items[0].nope) }}",
            '{{ {"a": items[0].nope} }}',
            "{{ [items[0].nope]|string }}",
        )
    ),
    (
        '{% block user %}\n{{ items|map(attribute="__class__")|list }}\n{% endblock %}',
        (
            "mine.j2:2: template tried to leave its sandbox (access to attribute '__class__' of "
            "'dict' object is unsafe.); templates may only read the documented variables, not "
            "Python internals"
        ),
    ),
    (
        '{% block user %}\n{% include "missing.j2" %}\n{% endblock %}',
        (
            "mine.j2:2: template 'missing.j2' not found; shipped templates are named 'promptc/<file>' "
            "(promptc/auto-demo.j2, promptc/batch.j2, promptc/few-shot.j2, "
            "promptc/partials/answer-form.j2, promptc/partials/questions.j2, promptc/single.j2), "
            "a spec's own by their path inside the spec's folder"
        ),
    ),
]


@pytest.mark.parametrize(("template", "message"), CHECK_CASES, ids=range(len(CHECK_CASES)))
def test_check_templates_messages(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)  # locations are shown relative to the working folder
    task = compile_spec(own_spec(tmp_path, template))
    errors = check_templates(task)
    assert [e.format() for e in errors] == [message]
    assert all(isinstance(e, TemplateError) for e in errors)


def test_render_reports_runtime_errors_at_the_template_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    task = compile_spec(own_spec(tmp_path, "{% block user %}\n\n{{ 1 / 0 }}\n{% endblock %}"))
    with pytest.raises(TemplateError) as e:
        render(task, select.select(task))
    assert e.value.format() == "mine.j2:3: template failed: ZeroDivisionError: division by zero"


def test_blocks_reading_items_are_rendered_per_request(tmp_path: Path) -> None:
    """The renderer renders a block once only when it reads nothing request-specific."""
    spec = own_spec(
        tmp_path,
        '{% block system %}{% include "parts/count.j2" %}{% endblock %}'
        "{% block user %}{{ items[0].question }}{% endblock %}",
        extra={"parts/count.j2": "{{ items|length }} questions"},
    )
    task = compile_spec(spec)
    r = Renderer(task)
    assert r.constant_blocks == frozenset()
    requests = tuple(r.iter_render(select.select(task)))
    assert [m.content for m in requests[1].messages] == ["1 questions", "three"]


def test_lipsum_is_not_available(tmp_path: Path) -> None:
    task = compile_spec(own_spec(tmp_path, "{% block user %}{{ lipsum() }}{% endblock %}"))
    assert [e.code for e in check_templates(task)] == ["template-undeclared-variable"]


def test_random_is_not_available_and_is_said_at_its_line(tmp_path: Path) -> None:
    # |random draws at random: the same spec would give another build each time.
    task = compile_spec(
        own_spec(
            tmp_path, "{% block user %}\n{{ items|map(attribute='question')|random }}{% endblock %}"
        )
    )
    (e,) = check_templates(task)
    assert e.format() == (
        f"{tmp_path / 'mine.j2'}:2: template syntax error: No filter named 'random'."
    )


@pytest.mark.parametrize(
    "written",
    ["{{ markers.question }}", "{{ markers }}", "{{ [range] }}", "{{ {'f': markers.answer} }}"],
)
def test_a_function_or_an_objects_address_is_never_written(tmp_path: Path, written: str) -> None:
    # A helper written without its call shows a Python object's text, whose address in memory
    # differs in every process: refused at its line, never a build that differs each time.
    task = compile_spec(own_spec(tmp_path, "{% block user %}\nQ: " + written + "{% endblock %}"))
    (e,) = check_templates(task)
    assert e.code == "template-runtime" and e.location is not None and e.location.line == 2
    assert "writes a" in e.format()


@pytest.mark.parametrize(
    "written",
    [
        "{{ markers|pprint }}",
        "{{ markers.question|string }}",
        '{{ "%s"|format(markers) }}',
        '{{ ["x"]|map("upper")|string }}',
        '{{ "%s" % joiner() }}',
        '{{ "{}".format(markers) }}',
        "{{ (joiner()|string)[-5:-1] }}",
        "{{ cycler(1)|lower }}",
        "{{ cycler(1)|trim }}",
        "{{ cycler(1)|title }}",
        "{{ cycler(1)|center(80) }}",
        '{{ cycler(1)|replace("a", "b") }}',
        "{{ [markers.question]|join }}",
        '{{ [cycler(1)]|map("lower")|join(",") }}',
        "{{ cycler(1)|urlencode }}",
    ],
)
def test_a_conversion_to_text_of_an_object_with_an_address_is_refused(
    tmp_path: Path, written: str
) -> None:
    # The {{ }} check sees the text a filter, % or str.format made of the object: the
    # conversion itself is refused, at its line.
    task = compile_spec(own_spec(tmp_path, "{% block user %}\nQ: " + written + "{% endblock %}"))
    (e,) = check_templates(task)
    assert e.code == "template-runtime" and e.location is not None and e.location.line == 2
    assert "holds its address in memory" in e.format()


def test_conversions_of_plain_values_and_lists_of_them_are_written(tmp_path: Path) -> None:
    body = (
        '{% block user %}{{ [1, "a"]|string }} {{ "%s-%d" % ("x", 2) }} {{ "{}".format(1.5) }} '
        '{{ ", ".join(["p", "q"]|map("upper")) }}{% endblock %}'
    )
    task = compile_spec(own_spec(tmp_path, body))
    assert check_templates(task) == []
    (request, *_) = Renderer(task).iter_render(select.select(task))
    assert request.messages[-1].content == "[1, 'a'] x-2 1.5 P, Q"


@pytest.mark.parametrize(
    "written",
    [
        '{{ "abc"|truncate(-5) }}',
        '{{ "abcdef"|truncate(3, end="....") }}',
        '{{ "abc"|dictsort }}',
        "{{ 1|xmlattr }}",
    ],
)
def test_a_filter_given_what_it_does_not_take_fails_at_its_line(
    tmp_path: Path, written: str
) -> None:
    task = compile_spec(own_spec(tmp_path, "{% block user %}\n" + written + "{% endblock %}"))
    (e,) = check_templates(task)
    assert e.code == "template-runtime" and e.location is not None and e.location.line == 2


def test_text_that_reads_like_an_address_is_written_as_it_is(tmp_path: Path) -> None:
    task = compile_spec(
        own_spec(
            tmp_path,
            "{% block user %}{{ 'crash <f at 0x7ffe>' }} {{ [1, 2] }} "
            "{{ 'Crash <F at 0x7ffe>'|lower }}{% endblock %}",
        )
    )
    assert check_templates(task) == []
    (request, *_) = Renderer(task).iter_render(select.select(task))
    assert request.messages[-1].content == "crash <f at 0x7ffe> [1, 2] crash <f at 0x7ffe>"


def test_template_named_by_an_extended_spec_comes_from_its_folder(tmp_path: Path) -> None:
    """``templates`` paths are relative to the spec that declares them, also when inherited."""
    from promptc.build import build

    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'p'\n", encoding="utf-8")
    base = own_spec(
        tmp_path,
        '{% extends "promptc/batch.j2" %}{% block user %}'
        '{% include "parts/list.j2" %}{% endblock %}',
        extra={"parts/list.j2": "{% for i in items %}* {{ i.question }}\n{% endfor %}"},
    )
    variant = tmp_path / "variants" / "small.yaml"
    variant.parent.mkdir()
    variant.write_text(f"promptc: 1\nextends: ../{base.name}\nname: small\n", encoding="utf-8")
    task = compile_spec(variant)
    assert check_templates(task) == []
    result = build(task, tmp_path / "out")
    assert result.requests[0].messages[-1].content == "* one\n* two"  # the base's data, too
    assert [(t["name"], t.get("path")) for t in result.manifest["templates"]] == [  # type: ignore[index]
        ("mine.j2", "../mine.j2"),
        ("parts/list.j2", "../parts/list.j2"),
        ("promptc/batch.j2", None),
    ]


# ---------------------------------------------------------------- properties

pieces = st.sampled_from(
    list("ab {}%#[]:\n\t\u00e9\u4e2d\U0001f600\\\"'<>")
    + ["{{ 7*7 }}", "{% for %}", "Q[1]:", "A[2]: x"]
)
texts = (
    st.lists(pieces, min_size=1, max_size=12)
    .map("".join)
    .filter(lambda t: t.strip() == t and t != "")
)


# task_factory returns a pure function, so sharing it across examples is safe. (Importing it
# from "conftest" would be ambiguous: tests/integration has a conftest of its own.)
@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    questions=st.lists(texts, min_size=1, max_size=7),
    kind=st.sampled_from(NAMES),
    size=st.integers(1, 4),
)
def test_data_is_shown_verbatim_never_run_as_template(
    task_factory: Callable[..., ir.Task], questions: list[str], kind: str, size: int
) -> None:
    """Item text reaches the prompt unchanged, whatever Jinja or marker syntax it holds, in
    every strategy; the same input renders the same prompts."""
    base = task_factory(kind=kind, batch_size=size, n_items=0)
    items = tuple(ir.Item(f"i{k}", k, {"question": q}) for k, q in enumerate(questions))
    task = ir.Task(**{**{f: getattr(base, f) for f in base.__dataclass_fields__}, "items": items})
    selection = select.select(task)
    first = render(task, selection)
    assert first == render(task, selection)
    users = [r.messages[-1].content for r in first]
    shown = "\n".join(users)
    for q in questions:
        assert q in shown
    if kind in ("single", "few-shot"):
        assert users == questions
    else:
        expected = [
            "\n".join(f"Q[{i}]: {q}" for i, q in enumerate(questions[s : s + size], 1))
            for s in range(0, len(questions), size)
        ]
        assert users == expected


@pytest.mark.parametrize("kind", ["single", "few-shot", "batch", "auto-demo"])
def test_shipped_templates_pass_their_own_checks_for_every_example_spec(kind: str) -> None:
    """What lets ``promptc check`` skip the shipped templates (check_templates' default)."""
    from promptc import ir
    from promptc.errors import PromptcErrors

    specs = sorted((Path(__file__).resolve().parents[1] / "specs").glob("*.yaml"))
    assert specs
    for spec in specs:
        try:
            task = compile_spec(spec, overrides={("strategy", "kind"): kind})
        except PromptcErrors:
            continue  # few-shot needs demos: that spec is refused before any template
        assert isinstance(task, ir.Task)
        assert check_templates(task, shipped=True) == [], spec.name
        assert check_templates(task) == [], spec.name


def test_a_specs_own_template_is_checked_and_a_shipped_one_only_when_asked(
    tmp_path: Path,
) -> None:
    spec = own_spec(tmp_path, "{% block user %}{{ nonsense }}{% endblock %}\n")
    errors = check_templates(compile_spec(spec))
    assert [e.code for e in errors] == ["template-undeclared-variable"]
