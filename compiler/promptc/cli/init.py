"""``promptc init``: a commented starter spec, three rows of data and the spec's JSON Schema.

::

    promptc init [DIR] [--strategy K] [--task text|number|enum]

writes ``DIR/task.yaml``, ``DIR/data/task.jsonl`` and ``DIR/spec.schema.json``. The spec's
first line is the ``yaml-language-server`` modeline pointing at that schema, beside the spec,
so an editor validates it wherever the folder is moved or copied. Nothing is overwritten: if
any of the three files exists, nothing is written at all.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import click

from promptc import strategies
from promptc.cli.common import json_format_option, write_json
from promptc.errors import Location, UsageError
from promptc.resources import read_schema
from promptc.text import or_list
from promptc.values import ENUM, NAMES, NUMBER, TEXT

SPEC_FILE = "task.yaml"
DATA_FILE = "data/task.jsonl"
SCHEMA_FILE = "spec.schema.json"

_HEAD = """\
# yaml-language-server: $schema={schema}
# A promptc task spec, written by `promptc init`. Every key: docs/spec.md of promptc.
#   promptc check {spec}             validate it (schema, demos, data, templates)
#   promptc build {spec} -o build    compile it into build/requests.jsonl + answer grammars
#   promptc show {spec} --request 1  look at one rendered request
promptc: 1                 # the spec format version
name: {name}
"""


@dataclass(frozen=True)
class Starter:
    """A starter task: what ``--task`` chooses, named after the type of its answer.

    Attributes:
        description: The spec's ``description``.
        instruction: Its ``instruction``.
        inputs: Its ``inputs`` entries, as YAML lines.
        outputs: Its ``outputs`` entries, as YAML lines.
        answer_format: Its ``answer_format``, as YAML.
        demos: Its ``demos`` entries, as YAML lines.
        rows: The rows of its data file.
        max_tokens: Its ``model.max_tokens_per_item`` (every strategy's requests are then
            sent a budget that fits their items).
    """

    description: str
    instruction: str
    inputs: str
    outputs: str
    answer_format: str
    demos: str
    rows: tuple[dict[str, str], ...]
    max_tokens: int

    @property
    def field(self) -> str:
        """The input the data rows fill (every row's key besides ``id``)."""
        return next(k for k in self.rows[0] if k != "id")

    def spec_keys(self) -> str:
        """The spec's own keys, ``description`` to ``demos``, commented."""
        types = or_list(NAMES)
        return (
            f"description: {self.description}\n"
            "# The instruction every request starts with.\n"
            f"instruction: {self.instruction}\n"
            "# Inputs are text fields; each data row gives a value for each (see data.fields).\n"
            f"inputs:\n{self.inputs}"
            f"# Outputs are typed: {types}. The answer grammar is made\n"
            "# from them, and promptc parse reads each model answer back into these fields.\n"
            f"outputs:\n{self.outputs}"
            "# How one answer is written: literal text and a {field} placeholder per output.\n"
            f"answer_format: {self.answer_format}\n"
            "# Solved examples, shown by few-shot (and as worked batches by batch and auto-demo).\n"
            f"demos:\n{self.demos}"
        )


#: The starter tasks by the type of their answer: free text, a number after reasoning, a
#: choice among labels.
STARTERS: dict[str, Starter] = {
    TEXT.name: Starter(
        description="Answer short general-knowledge questions in a few words.",
        instruction="Answer the question in a few words. Do not explain.",
        inputs='  question: {type: text, description: "A short general-knowledge question."}\n',
        outputs='  answer: {type: text, description: "The answer, in a few words."}\n',
        answer_format='"{answer}"',
        demos=(
            "  - question: What is the capital of France?\n"
            "    answer: Paris\n"
            "  - question: How many legs does a spider have?\n"
            "    answer: Eight\n"
        ),
        rows=(
            {"id": "q1", "question": "What is the largest planet in the solar system?"},
            {"id": "q2", "question": "Which element has the chemical symbol O?"},
            {"id": "q3", "question": "In which continent is Kenya?"},
        ),
        max_tokens=256,
    ),
    NUMBER.name: Starter(
        description="Solve short math word problems, reasoning before the answer.",
        instruction=(
            "Solve the math word problem. Think step by step, then state the final answer as a "
            "number."
        ),
        inputs="  question: {type: text}\n",
        outputs=(
            '  reasoning: {type: text, description: "The steps of the solution."}\n'
            '  answer: {type: number, description: "The final numeric answer."}\n'
        ),
        answer_format='"{reasoning} The answer is {answer}."',
        demos=(
            "  - question: A baker fills 6 trays with 12 rolls each and sells 50. How many rolls"
            " are left?\n"
            "    reasoning: 6 trays hold 6 * 12 = 72 rolls, and 72 - 50 = 22.\n"
            "    answer: 22\n"
            "  - question: Mia reads 15 pages a day. How many days does a 105-page book take"
            " her?\n"
            "    reasoning: 105 / 15 = 7.\n"
            "    answer: 7\n"
        ),
        rows=(
            {
                "id": "q1",
                "question": "Leo has 3 boxes of 24 crayons and gives away 17. How many are left?",
            },
            {"id": "q2", "question": "A bus ticket costs $2.50. How much do 8 tickets cost?"},
            {
                "id": "q3",
                "question": "A garden has 9 rows of 7 plants. Rabbits eat 5. How many remain?",
            },
        ),
        max_tokens=1024,
    ),
    ENUM.name: Starter(
        description="Classify the sentiment of short customer reviews.",
        instruction=(
            "Classify the sentiment of each customer review as positive, negative or neutral."
        ),
        inputs='  review: {type: text, description: "One customer review."}\n',
        outputs=(
            "  sentiment:\n"
            "    type: enum\n"
            "    choices: [positive, negative, neutral]   # compared case-insensitively\n"
            "    aliases: {pos: positive, neg: negative}  # other spellings a model may write\n"
        ),
        answer_format='"{sentiment}"',
        demos=(
            "  - review: The soup arrived hot and the bread was still warm. Lovely.\n"
            "    sentiment: positive\n"
            "  - review: The charger stopped working after two days.\n"
            "    sentiment: negative\n"
        ),
        rows=(
            {"id": "r1", "review": "Best pancakes I have had in years."},
            {"id": "r2", "review": "The headphones crackle whenever the bass kicks in."},
            {"id": "r3", "review": "Delivery took four days, as the site said it would."},
        ),
        max_tokens=128,
    ),
}
#: The names ``--task`` takes.
TASKS = tuple(STARTERS)

_TAIL = """\
# The items to compile: one JSON object a line (also json or csv), relative to this file.
data:
  path: {data}
  id: id                   # the column holding each item's unique id
  fields: {{{field}: {field}}}   # input name -> column of the data file
# How items become requests: single (one per request), few-shot (one, after the demos),
# batch (batch_size items as Q[1]..Q[N], answered A[1]..A[N]) or auto-demo (batch, with each
# question repeated before its answer). Try another with `promptc build --strategy K`.
strategy:
  kind: {strategy}
  batch_size: 8            # items per request for batch and auto-demo
  selection: {{method: sequential}}   # or random; retrieval, partition, diverse need promptc-compiler[embed]
# The model and its sampling parameters, sent with every request.
model:
  name: gpt-4o-mini
  temperature: 0
  max_tokens_per_item: {max_tokens}   # each request's max_tokens: this per item, fitted to its items
"""


#: The longest spec ``name`` (the schema's ``maxLength``).
MAX_NAME = 200


def task_name(folder: Path) -> str:
    """The spec's name: the folder's name made a plain word, else ``task``."""
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", folder.resolve().name).strip("-")
    return name[:MAX_NAME].rstrip("-") or "task"  # a folder's name may be longer than a spec's


def starter_files(folder: Path, strategy: str, task: str) -> dict[str, str]:
    """The files ``promptc init`` writes, by path relative to ``folder``."""
    starter = STARTERS[task]
    spec = (
        _HEAD.format(schema=SCHEMA_FILE, spec=SPEC_FILE, name=json.dumps(task_name(folder)))
        + starter.spec_keys()
        + _TAIL.format(
            data=DATA_FILE, field=starter.field, strategy=strategy, max_tokens=starter.max_tokens
        )
    )
    rows = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in starter.rows)
    return {SPEC_FILE: spec, DATA_FILE: rows, SCHEMA_FILE: read_schema()}


@click.command("init")
@click.argument("folder", metavar="[DIR]", default=".", type=click.Path(file_okay=False))
@click.option(
    "--strategy",
    type=click.Choice(strategies.NAMES),
    default=strategies.BATCH.name,
    show_default=True,
    help="The strategy the spec starts with.",
)
@click.option(
    "--task",
    type=click.Choice(TASKS),
    default=NUMBER.name,
    show_default=True,
    help="A free-text answer, a number after reasoning, or a choice among labels.",
)
@json_format_option
def init_command(folder: str, strategy: str, task: str, fmt: str) -> None:
    """Write a commented starter spec, three rows of data and the spec's JSON Schema into DIR.

    DIR/task.yaml starts with a yaml-language-server modeline pointing at DIR/spec.schema.json,
    so that editors validate the spec. Existing files are never overwritten.
    """
    root = Path(folder)
    files = starter_files(root, strategy, task)
    try:
        existing = [name for name in files if os.path.lexists(root / name)]
        if existing:
            shown = ", ".join(str(root / name) for name in existing)
            raise UsageError(
                f"refusing to overwrite {shown}",
                location=Location(str(root / existing[0])),
                hint="choose another folder, or move the files away",
                code="init-exists",
            )
        linked = sorted({d for name in files for d in _folders(root, name) if d.is_symlink()})
        if linked:
            raise UsageError(
                f"refusing to write through {linked[0]}, a symbolic link: init writes only "
                f"inside {folder}",
                location=Location(str(linked[0])),
                hint="choose another folder, or remove the link",
                code="init-exists",
            )
        in_way = sorted({d for name in files for d in _folders(root, name) if d.is_file()})
        if in_way:
            raise UsageError(
                f"{in_way[0]} is a file, where init writes the folder {in_way[0]}{os.sep}",
                location=Location(str(in_way[0])),
                hint="choose another folder, or move the file away",
                code="init-exists",
            )
        _write_new(root, files)
    except OSError as e:
        where = str(e.filename) if e.filename else folder
        raise UsageError(
            f"cannot write into {where!r}: {e.strerror or e}",
            location=Location(where),
            code="init-not-writable",
        ) from None
    spec = root / SPEC_FILE
    # Quoted for the shell: a folder may hold spaces, quotes or $, or start with a dash.
    shown, out = _shell(spec), _shell(root / "build")
    following = f"promptc check {shown} && promptc build {shown} -o {out}"
    if fmt == "json":
        write_json({"files": [str(root / name) for name in files], "next": following})
        return
    click.echo(f"wrote {spec}, {root / DATA_FILE} and {root / SCHEMA_FILE}")
    click.echo(f"next: {following}")


def _shell(path: Path) -> str:
    """A path as a shell word: ``./`` before one that starts with a dash, so that no
    command takes it for an option, then quoted where it needs it."""
    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)


def _folders(root: Path, name: str) -> list[Path]:
    """The folders under ``root`` that the file ``name`` is written into (``data``)."""
    parts = Path(name).parts[:-1]
    return [root.joinpath(*parts[: k + 1]) for k in range(len(parts))]


def _write_new(root: Path, files: Mapping[str, str]) -> None:
    """Writes each file, never over an existing one (nor through a link); on a failure the
    files already written are removed, so that nothing half-written stays.

    Raises:
        OSError: A file cannot be written (one exists now, a full or read-only disk).
    """
    written: list[Path] = []
    try:
        for name, text in files.items():
            path = root / name
            path.parent.mkdir(parents=True, exist_ok=True)
            # "x": O_CREAT | O_EXCL, which never follows a link and never overwrites.
            f = open(path, "x", encoding="utf-8", newline="\n")  # noqa: SIM115
            written.append(path)  # made by this command: removed if a later step fails
            with f:
                f.write(text)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
