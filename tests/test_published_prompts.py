"""The published Batch Prompting prompts, ported: specs/gsm8k-batch-prompting.yaml, specs/mnli.yaml and specs/commonsense-qa.yaml.

The prompts of the xlang-ai/batch-prompting repository (hub/batch_inference/<task>/
prompt-batch=N.txt; Cheng, Kasai & Yu, 2023) are one text: demo batches of N questions then N
answers, separated by blank lines, then the request's questions. Each test below states that
layout as a skeleton (every line's marker, the text elided, the closing literal kept) and
checks the rendered request against it; the rendered requests themselves are golden files
(tests/golden/<spec>/batch/requests.jsonl). The demonstration answers of each prompt, fed back
as the model's output, parse ok in both modes with the demos' own values.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from promptc.build import assemble
from promptc.ir import Task
from promptc.parse.output import parse_output
from promptc.spec.lower import compile_spec

SPECS = Path(__file__).resolve().parents[1] / "specs"

#: The published layout for batches of 2 (prompt-batch=2.txt), with 2 demo batches.
GSM8K_LAYOUT = """\
Q[1]: …
Q[2]: …
A[1]: … The answer is N.
A[2]: … The answer is N.

Q[1]: …
Q[2]: …
A[1]: … The answer is N.
A[2]: … The answer is N.

Q[1]: …
Q[2]: …"""

#: The published MNLI layout (prompt-12shot-batch=2.txt): its instruction line first.
MNLI_LAYOUT = """\
Determine whether the hypotheses in a batch can be entailed by the corresponding premises, True or False or Neutral?

Premise[1]: …
Hypothesis[1]: …
Premise[2]: …
Hypothesis[2]: …
Answer[1]: … So the answer is L.
Answer[2]: … So the answer is L.

Premise[1]: …
Hypothesis[1]: …
Premise[2]: …
Hypothesis[2]: …
Answer[1]: … So the answer is L.
Answer[2]: … So the answer is L.

Premise[1]: …
Hypothesis[1]: …
Premise[2]: …
Hypothesis[2]: …"""

#: The published CommonsenseQA layout (prompt-batch=2.txt): per question its Answer Choices.
CSQA_LAYOUT = """\
Q[1]: …
Answer Choices[1]: (a) … (b) …
Q[2]: …
Answer Choices[2]: (a) … (b) …
A[1]: … So the answer is (x).
A[2]: … So the answer is (x).

Q[1]: …
Answer Choices[1]: (a) … (b) …
Q[2]: …
Answer Choices[2]: (a) … (b) …
A[1]: … So the answer is (x).
A[2]: … So the answer is (x).

Q[1]: …
Answer Choices[1]: (a) … (b) …
Q[2]: …
Answer Choices[2]: (a) … (b) …"""

_LINE = re.compile(r"^(?P<marker>[A-Z][A-Za-z ]*\[\d+\]:) (?P<text>.*)$")
_CLOSING = re.compile(r" ((?:So )?[Tt]he answer is) (\S+?)\.$")


def skeleton(text: str) -> str:
    """Each line as its marker and ``…``, an answer's closing literal kept (value elided)."""
    out = []
    for line in text.split("\n"):
        m = _LINE.match(line)
        if m is None:
            out.append(line)
            continue
        close = _CLOSING.search(m.group("text"))
        tail = ""
        if m.group("text").startswith("(a) "):
            tail = " (a) … (b) …"
        elif close is not None and close.group(2).startswith("("):
            tail = f" {close.group(1)} (x)."
        elif close is not None:
            tail = f" {close.group(1)} {'N' if close.group(2)[0].isdigit() else 'L'}."
        text = " (a) … (b) …" if tail == " (a) … (b) …" else f" …{tail}"
        out.append(f"{m.group('marker')}{text}")
    return "\n".join(out)


def _task(name: str) -> Task:
    return compile_spec(SPECS / f"{name}.yaml")


@pytest.mark.parametrize(
    ("name", "layout"),
    [
        ("gsm8k-batch-prompting", GSM8K_LAYOUT),
        ("mnli", MNLI_LAYOUT),
        ("commonsense-qa", CSQA_LAYOUT),
    ],
)
def test_rendered_prompt_has_the_published_layout(name: str, layout: str) -> None:
    built = assemble(_task(name))
    for request in built.requests:
        (message,) = request.messages
        assert message.role == "user"
        assert skeleton(message.content) == layout


@pytest.mark.parametrize("name", ["gsm8k-batch-prompting", "mnli", "commonsense-qa"])
@pytest.mark.parametrize("mode", ["recover", "strict"])
def test_demonstration_answers_parse_with_their_values(name: str, mode: str) -> None:
    """The answer lines of every demo batch in the prompt, as a model's output."""
    task = _task(name)
    request = assemble(task).requests[0]
    text = request.messages[0].content
    blocks = [b for b in text.split("\n\n") if re.search(r"^\w+\[1\]:", b, re.MULTILINE)]
    answer = re.escape(task.markers.answer) + r"\[\d+\]: "
    demos = list(task.demos)
    for block in blocks[:-1]:  # the last block is the request's own questions
        output = "\n".join(line for line in block.split("\n") if re.match(answer, line))
        batch, demos = demos[:2], demos[2:]
        results = parse_output(task, request, output, mode=mode)  # type: ignore[arg-type]
        assert [r.status for r in results] == ["ok"] * len(batch), output
        assert [dict(r.values) for r in results] == [dict(d.outputs) for d in batch]
    assert demos == []


def test_answers_written_as_the_published_extractor_expects() -> None:
    """Answers in the published answers' own style, each read to its number; the last misses
    its final period and the extractor's regex would have read it anyway."""
    task = _task("gsm8k-batch-prompting")
    request = assemble(task).requests[0]
    output = (
        "A[1]: He wants to write 3 * 400 = 1200 pages. So it takes 1200 / 20= 60 days The answer is 60.\n"
        "A[2]: It rained 3 + 4 = 7 inches So he makes 105 * 1.2 = 126. The answer is 126"
    )
    results = parse_output(task, request, output)
    assert [(r.status, int(r.values["answer"])) for r in results] == [("ok", 60), ("ok", 126)]


def test_each_item_accepts_only_its_own_options() -> None:
    """c02 has four options: (e) is no answer to it, though (e) is one to c01."""
    task = _task("commonsense-qa")
    request = assemble(task).requests[0]
    assert list(request.batch.item_ids) == ["c01", "c02"]
    output = "A[1]: Plants need sun. So the answer is (e).\nA[2]: Shoes. So the answer is (e)."
    for mode in ("recover", "strict"):
        results = parse_output(task, request, output, mode=mode)  # type: ignore[arg-type]
        assert [r.status for r in results] == ["ok", "malformed"]
        assert results[1].message == "answer 'e' is not one of item c02's 4 options (a to d)"
    results = parse_output(
        task,
        request,
        output.replace("Shoes. So the answer is (e).", "Shoes. So the answer is (c)."),
    )
    assert [(r.status, r.values["answer"]) for r in results] == [("ok", "e"), ("ok", "c")]
