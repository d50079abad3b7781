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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from promptc import ir, markers
from promptc.build.files import PLAIN_NAME, inside, read_text
from promptc.build.manifest import read_manifest
from promptc.build.targets import BuiltRequest, Constraint, GrammarForm
from promptc.errors import Location, UsageError
from promptc.grammar.answer import AnswerGrammar, build_grammar, own_choices
from promptc.select.batches import batch_size
from promptc.strategies import Strategy
from promptc.text import sha256_text

GRAMMAR_STEM = "answer"
#: The folder of the requests' own grammars (``grammars/<request id>.gbnf`` …), written when
#: the grammar depends on the items (an enum with ``choices_from``).
REQUEST_GRAMMARS = "grammars"
#: The suffixes of a request's own grammar files, as of the shared ones.
GRAMMAR_SUFFIXES = (".lark", ".gbnf", ".schema.json", ".regex", ".parse.regex")


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
    count). It holds no items: a build of a million items makes one per request size."""

    def __init__(self) -> None:
        self.grammars: dict[tuple[Strategy, int], AnswerGrammar] = {}


def constraint(
    task: ir.Task,
    kind: Strategy | None,
    items: Sequence[ir.Item],
    form: GrammarForm = "gbnf",
    cache: ConstraintCache | None = None,
) -> Constraint:
    """A request's own grammar, as a ``vllm-batch`` body carries it: its GBNF or, with
    ``form="json_schema"``, its JSON Schema (the model then answers in the grammar's JSON
    form, which the parser reads as well) — an Auto-Demo request's questions pinned, and each
    item's options where an enum's choices are the item's (``choices_from``), as
    ``promptc run`` sends them to llama.cpp.

    ``items`` are the request's items, in its order: a build takes them by position, as the
    renderer does, a reader of a build by id (:func:`promptc.run.bodies.request_items`).
    ``cache`` keeps what is the same for every request of a build.
    """
    memo = cache if cache is not None else ConstraintCache()
    k = kind or task.strategy.kind
    n = len(items)
    if (k, n) not in memo.grammars:
        memo.grammars[(k, n)] = build_grammar(task, n, k)
    g = memo.grammars[(k, n)]
    questions: list[str] = []
    if k.repeats_questions:
        questions = [markers.question_text(task.inputs, it.inputs) for it in items]
    fields = [o for o in task.outputs if o.choices_from]
    choices = [own_choices(fields, it) for it in items] if fields else None
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
    if not PLAIN_NAME.fullmatch(request_id):
        raise UsageError(
            f"request id {request_id!r} cannot name a file; expected letters, digits, '.', "
            "'_' and '-'",
            code="bad-request-id",
        )
    return f"{REQUEST_GRAMMARS}/{request_id}{suffix}"


class BuildGrammars:
    """The grammar files of one build folder, read as requests are sent with them: a
    request's own (``grammars/<id><suffix>``, checked against the sha256 its line of
    ``batches.jsonl`` lists), else the shared one of its size (``<stem><suffix>``, checked
    against the sha256 ``manifest.json`` lists). Each shared file is read and checked once.

    A build folder is input promptc did not necessarily write: an own grammar missing,
    edited, or put in place by something else than a regular file is refused, never replaced
    by the shared grammar, which admits the union of every item's choices.
    """

    def __init__(self, build: Path) -> None:
        self.build = build
        self._shared: dict[str, str] = {}
        self._manifest: Mapping[str, object] | None = None

    def _grammar_manifest(self) -> Mapping[str, object]:
        if self._manifest is None:
            grammar = read_manifest(self.build).get("grammar")
            self._manifest = grammar if isinstance(grammar, Mapping) else {}
        return self._manifest

    def text(self, request: BuiltRequest, suffix: str) -> str:
        """The text of ``request``'s grammar file of ``suffix``.

        Raises:
            UsageError: The request names no grammar, or its file is missing
                (``no-grammar``); names a file outside the folder (``outside-build``); a
                file is no regular file (``not-regular``), or not the one the build lists
                (``build-modified``).
        """
        if request.grammar is None:
            raise UsageError(
                f"request {request.id} names no grammar, so it cannot be sent with one",
                location=request.location,
                hint="rebuild, or use --grammar none",
                code="no-grammar",
            )
        if PLAIN_NAME.fullmatch(request.id):
            name = request_grammar_name(request.id, suffix)
            want = request.grammar_files.get(name)
            if want is not None:
                return _checked(inside(self.build, name, "grammar file"), name, want, request)
            if self._grammar_manifest().get("per_request") is not None:
                # The build wrote each request its own grammar: one that lists none was
                # changed after building, and the shared file would admit every item's
                # choices.
                own = self.build / name
                raise _modified(own, name, request, "batches.jsonl lists no sha256 for it")
        name = request.grammar + suffix
        if name not in self._shared:
            path = inside(self.build, name, "grammar file")
            files = self._grammar_manifest().get("files")
            want = files.get(name) if isinstance(files, Mapping) else None
            if not isinstance(want, str):
                if not path.exists() and not path.is_symlink():
                    raise UsageError(
                        f"grammar file {path.name} of request {request.id} is missing from "
                        "the build",
                        location=Location(str(path)),
                        hint="rebuild, or use --grammar none",
                        code="no-grammar",
                    )
                raise _modified(path, name, request, "manifest.json lists no sha256 for it")
            self._shared[name] = _checked(path, name, want, request, "manifest.json")
        return self._shared[name]


def _checked(
    path: Path, name: str, want: str, request: BuiltRequest, lister: str = "batches.jsonl"
) -> str:
    """The text of the grammar file ``name`` of ``request``, if its sha256 is ``want``."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        raise _modified(path, name, request, f"it is missing, though {lister} lists it") from None
    except OSError as e:
        raise UsageError(
            f"cannot read grammar file {name} of request {request.id}: {e.strerror or e}",
            location=Location(str(path)),
            code="unreadable",
        ) from None
    if sha256_text(text) != want:
        raise _modified(path, name, request, f"it does not match the sha256 {lister} lists")
    return text


def _modified(path: Path, name: str, request: BuiltRequest, what: str) -> UsageError:
    """``build-modified``: the grammar file ``name`` of ``request`` is not the build's."""
    return UsageError(
        f"grammar file {name} of request {request.id}: {what}; the build folder was changed "
        "after promptc build"
        + (
            " (the shared grammar, which admits every item's choices, does not stand in for "
            "a request's own)"
            if name.startswith(REQUEST_GRAMMARS + "/")
            else ""
        ),
        location=Location(str(path)),
        hint="rebuild it with promptc build SPEC -o DIR, or use --grammar none",
        code="build-modified",
    )


def grammar_text(
    build: Path, request: BuiltRequest, suffix: str, files: BuildGrammars | None = None
) -> str:
    """The text of a request's grammar file in a build folder: its own
    (``grammars/<id><suffix>``, exact where the shared file admits the union of every item's
    choices) when the build lists one for it, else the shared one of its size
    (``<stem><suffix>``); each checked against the sha256 the build lists
    (:class:`BuildGrammars`; ``files`` keeps what is read once per build).

    Raises:
        UsageError: See :meth:`BuildGrammars.text`.
    """
    return (files if files is not None else BuildGrammars(build)).text(request, suffix)
