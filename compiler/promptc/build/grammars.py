"""The grammar files of a build, and each request's own grammar: made, named and read back.

A build holds the answer grammar (:mod:`promptc.grammar.answer`) of every request size it has,
``answer.lark`` for the nominal size and ``answer-K.lark`` for a request of K items, with their
exports (``.gbnf``, ``.schema.json``, ``.regex``, ``.parse.regex``). Where the grammar depends
on the items (an enum with ``choices_from``), each request also gets its own files,
``grammars/<request id>.<suffix>``, admitting exactly its items' choices. A ``vllm-batch``
body carries its request's own grammar (:func:`constraint`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from promptc import ir, markers
from promptc.build.files import inside, read_text
from promptc.build.targets import BuiltRequest, Constraint, GrammarForm
from promptc.errors import Location, UsageError
from promptc.grammar.answer import AnswerGrammar, build_grammar, item_choices, own_choices
from promptc.select.batches import batch_size
from promptc.strategies import Strategy
from promptc.text import sha256_text

GRAMMAR_STEM = "answer"
#: The folder of the requests' own grammars (``grammars/<request id>.gbnf`` …), written when
#: the grammar depends on the items (an enum with ``choices_from``).
REQUEST_GRAMMARS = "grammars"
#: The suffixes of a request's own grammar files, as of the shared ones.
GRAMMAR_SUFFIXES = (".lark", ".gbnf", ".schema.json", ".regex", ".parse.regex")
#: A request id that can name a file of ``grammars/`` (promptc's own: ``r0001``).
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def grammar_stem(n_items: int, nominal: int) -> str:
    """``answer`` for the nominal item count, ``answer-K`` for a request of K items."""
    return GRAMMAR_STEM if n_items == nominal else f"{GRAMMAR_STEM}-{n_items}"


@dataclass(frozen=True)
class Grammars:
    """The grammar files of a build: stem per item count, and file name → text."""

    stems: Mapping[int, str]
    files: Mapping[str, str]

    def manifest(self) -> dict[str, object]:
        """What the manifest's ``grammar`` says of them: stems and each file's sha256."""
        return {
            "stems": {str(n): s for n, s in sorted(self.stems.items())},
            "files": {name: sha256_text(text) for name, text in sorted(self.files.items())},
        }


def grammars(task: ir.Task, counts: Sequence[int], kind: Strategy | None = None) -> Grammars:
    """The grammar files for every item count in ``counts``: the request shapes the build
    has. Only a build without requests gets the nominal batch size's (for its exports) —
    a shape no request has would cost its size for nothing (``batch_size: 1000`` with 3 items).
    """
    nominal = batch_size(task)
    stems: dict[int, str] = {}
    files: dict[str, str] = {}
    for n in sorted(set(counts) or {nominal}):
        stem = grammar_stem(n, nominal)
        stems[n] = stem
        files.update(build_grammar(task, n, kind or task.strategy.kind).files(stem))
    return Grammars(stems, files)


class ConstraintCache:
    """What :func:`constraint` makes once per build: the grammar of each (kind, item
    count) and the items by id."""

    def __init__(self, task: ir.Task) -> None:
        self.grammars: dict[tuple[Strategy, int], AnswerGrammar] = {}
        self.items = {it.id: it for it in task.items}


def constraint(
    task: ir.Task,
    kind: Strategy | None,
    item_ids: Sequence[str],
    form: GrammarForm = "gbnf",
    cache: ConstraintCache | None = None,
) -> Constraint:
    """A request's own grammar, as a ``vllm-batch`` body carries it: its GBNF or, with
    ``form="json_schema"``, its JSON Schema (the model then answers in the grammar's JSON
    form, which the parser reads as well) — an Auto-Demo request's questions pinned, and each
    item's options where an enum's choices are the item's (``choices_from``), as
    ``promptc run`` sends them to llama.cpp.

    ``cache`` keeps what is the same for every request of a build.
    """
    memo = cache if cache is not None else ConstraintCache(task)
    k = kind or task.strategy.kind
    n = len(item_ids)
    if (k, n) not in memo.grammars:
        memo.grammars[(k, n)] = build_grammar(task, n, k)
    g = memo.grammars[(k, n)]
    questions: list[str] = []
    if k.repeats_questions:
        questions = [markers.question_text(task.inputs, memo.items[i].inputs) for i in item_ids]
    choices = item_choices(task, item_ids)
    pinned = k.repeats_questions or choices is not None
    if form == "json_schema":
        return Constraint(form, g.json_schema_for(questions, choices) if pinned else g.json_schema)
    return Constraint(form, g.gbnf_for(questions, choices) if pinned else g.gbnf)


class RequestGrammars:
    """The requests' own grammars of a build whose grammar depends on the items (an enum
    with ``choices_from``): per request, every export with exactly its items' choices
    (:meth:`promptc.grammar.answer.AnswerGrammar.for_items`), an Auto-Demo request's
    questions pinned in ``.gbnf`` and ``.regex``. Made one request at a time, so memory
    does not grow with the build."""

    def __init__(self, task: ir.Task) -> None:
        self.task = task
        self.shared: dict[tuple[int, Strategy], AnswerGrammar] = {}

    @staticmethod
    def needed(task: ir.Task) -> bool:
        """Whether ``task``'s grammar depends on its items."""
        return any(o.choices_from for o in task.outputs)

    def files(self, request: ir.Request) -> dict[str, str]:
        """File name (``grammars/<request id><suffix>``) → text of ``request``'s own grammar."""
        task = self.task
        # By position, as the renderer reads them: no lookup that grows with the items.
        items = [task.items[p] for p in request.batch.item_indices]
        key = (len(items), request.kind)
        if key not in self.shared:
            self.shared[key] = build_grammar(task, len(items), request.kind)
        fields = [o for o in task.outputs if o.choices_from]
        g = self.shared[key].for_items([own_choices(fields, it) for it in items])
        questions: list[str] = []
        if request.kind.repeats_questions:
            questions = [markers.question_text(task.inputs, it.inputs) for it in items]
        files: dict[str, str] = g.request_files(questions)
        return {request_grammar_name(request.id, suffix): text for suffix, text in files.items()}

    @staticmethod
    def constraint(own: Mapping[str, str], form: GrammarForm) -> Constraint:
        """The constraint of a body, from the request's own grammar files: the very text of
        ``grammars/<id>.gbnf`` or ``.schema.json``."""
        suffix = ".gbnf" if form == "gbnf" else ".schema.json"
        (text,) = [t for name, t in own.items() if name.endswith(suffix)]
        return Constraint(form, text if form == "gbnf" else json.loads(text))


def request_grammar_name(request_id: str, suffix: str) -> str:
    """``grammars/<request id><suffix>``: where a request's own grammar file is in a build."""
    if not SAFE_REQUEST_ID.fullmatch(request_id):
        raise UsageError(
            f"request id {request_id!r} cannot name a file; expected letters, digits, '.', "
            "'_' and '-'",
            code="bad-request-id",
        )
    return f"{REQUEST_GRAMMARS}/{request_id}{suffix}"


def grammar_text(build: Path, request: BuiltRequest, suffix: str) -> str:
    """The text of a request's grammar file in a build folder: its own
    (``grammars/<id><suffix>``, exact where the shared file admits the union of every item's
    choices), else the shared one of its size (``<stem><suffix>``).

    Raises:
        UsageError: The request names no grammar, or its file is missing (``no-grammar``),
            or names a file outside the folder (``outside-build``).
    """
    if request.grammar is None:
        raise UsageError(
            f"request {request.id} names no grammar, so it cannot be sent with one",
            location=request.location,
            hint="rebuild, or use --grammar none",
            code="no-grammar",
        )
    if SAFE_REQUEST_ID.fullmatch(request.id):
        own = inside(build, request_grammar_name(request.id, suffix), "grammar file")
        if own.is_file():
            return read_text(own)
    path = inside(build, request.grammar + suffix, "grammar file")
    try:
        return read_text(path)
    except OSError:
        raise UsageError(
            f"grammar file {path.name} of request {request.id} is missing from the build",
            location=Location(str(path)),
            hint="rebuild, or use --grammar none",
            code="no-grammar",
        ) from None
