"""The answer grammar of a task: generate it and export it.

:func:`build_grammar` turns a task's ``outputs`` and ``answer_format`` into an
:class:`AnswerGrammar` for one request shape:

- ``single`` / ``few-shot``: the whole output is one answer in the answer_format; text fields
  may span lines.
- ``batch`` of N: exactly N lines ``A[1]: <answer>`` … ``A[N]: <answer>``, in order.
- ``auto-demo`` of N: for each item the repeated question ``Q[i]: <question>`` (one or more
  lines; it ends where a line starts with ``A[``), then ``A[i]: <answer>`` on one line. With
  indexed inputs the question is one marked line (or more) per input, ``Premise[i]: <premise>``
  then ``Hypothesis[i]: <hypothesis>``, each ending where a line starts with a marker.

In ``batch`` and ``auto-demo`` every answer is on one line (as the templates ask): text fields
stop at the end of the line. A literal of the answer_format that itself holds a line break is
the one exception: the answer then spans exactly as many lines as the format does.

Slack the parsing grammar allows (the GBNF export, used to *constrain* a model, writes only the
canonical layout): white space before and after the output, blank lines between lines, spaces
after a marker and at the end of a line, literal text of the format in any case and with any
run of spaces for each space (any white space in ``single``/``few-shot``).

Values (``grammars/*.lark``, normalised by :mod:`promptc.values`): a text value is never empty
and never starts or ends with white space. The last text field of an answer extends to the LAST
place where the rest of the answer still matches to the end of the item, so in
``"{reasoning} The answer is {answer}."`` the answer is the number after the last "The answer
is" that is followed by a valid number and the end; a text field followed by another text
field ends at the first delimiter. Regex, lark and GBNF agree on this (GBNF by keeping every
reading alive).

The targets, all generated from the same terminals (:mod:`promptc.grammar.lark_source`):

- :attr:`AnswerGrammar.lark`: a self-contained lark grammar, for LALR;
- :attr:`AnswerGrammar.parse_regex`: one Python regex for the whole output, with the parser's
  slack and a named group per item and value (:attr:`AnswerGrammar.parse_groups`;
  ``answer.parse.regex``); :attr:`AnswerGrammar.answer_regex` and
  :attr:`AnswerGrammar.lenient_answer_regex` read one answer body;
- :attr:`AnswerGrammar.portable_regex`: the canonical outputs in the regex dialect that
  constrained-decoding engines read (``answer.regex``; :mod:`promptc.grammar.portable`);
- :attr:`AnswerGrammar.gbnf`: llama.cpp's GBNF, for constrained decoding
  (:mod:`promptc.grammar.gbnf`; text bounded in length there); :meth:`AnswerGrammar.gbnf_for`
  pins an Auto-Demo request's own questions in it;
- :attr:`AnswerGrammar.json_schema`: JSON Schema for structured-output APIs
  (:mod:`promptc.grammar.json_schema`).

Model output is read with these by :mod:`promptc.parse`: the parse regex first, lark to say
where and why an output is not in the grammar, the answer regexes for one answer at a time.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

from promptc import markers
from promptc.errors import GrammarError
from promptc.grammar.gbnf import gbnf_source
from promptc.grammar.json_schema import JsonAnswer, json_answer_text, schema_text
from promptc.grammar.json_schema import json_schema as schema_of
from promptc.grammar.lark_source import (
    Blueprint,
    item_blueprint,
    lark_source,
    layout,
    lenient_body_regex,
    make_blueprint,
    marker_regex,
)
from promptc.grammar.portable import portable_regex as portable_regex_of
from promptc.ir import AnswerFormat, Item, OutputField, Task, Value
from promptc.strategies import Strategy, strategy
from promptc.values import option_choices

__all__ = [
    "AnswerGrammar",
    "RegexItem",
    "build_grammar",
]

_ASCII_WS = " \t\n\r\f\v"


@dataclass(frozen=True)
class RegexItem:
    """The named groups of one item in :attr:`AnswerGrammar.parse_regex`.

    Attributes:
        index: The item's 1-based index.
        start: The group where the item starts: its question marker (``auto-demo``), its
            answer marker (``batch``) or its answer (``single``, ``few-shot``).
        end: The group of its answer, where the item ends.
        question: The group of the question it repeats (``auto-demo``), else ``None``.
        fields: (output field name, group) for each field of its answer, in format order.
    """

    index: int
    start: str
    end: str
    question: str | None
    fields: tuple[tuple[str, str], ...]


@dataclass(frozen=True, eq=False)
class AnswerGrammar:
    """The answer grammar of one request shape of a task, with its exports.

    Build it with :func:`build_grammar`. The exports (:attr:`lark`, :attr:`gbnf`,
    :attr:`json_schema`, :attr:`portable_regex`, :attr:`parse_regex`) are deterministic text;
    :meth:`files` names them.
    """

    kind: Strategy
    n_items: int
    task_name: str
    blueprint: Blueprint = field(repr=False)
    _format: AnswerFormat = field(repr=False, default=AnswerFormat("", ()))

    # ------------------------------------------------------------------ exports

    @property
    def fields(self) -> tuple[OutputField, ...]:
        """The output fields of the answer format, in format order."""
        return self.blueprint.fields

    @cached_property
    def lark(self) -> str:
        """The lark grammar source (``answer.lark``)."""
        return lark_source(self.blueprint, self.task_name)

    @cached_property
    def gbnf(self) -> str:
        """The GBNF grammar (``answer.gbnf``) that constrains a llama.cpp model to this shape."""
        return gbnf_source(self.blueprint, self.task_name)

    def gbnf_for(
        self,
        questions: Sequence[str] = (),
        item_choices: Sequence[Mapping[str, Sequence[str]]] | None = None,
    ) -> str:
        """The GBNF grammar of one request: :attr:`gbnf` with each item's question pinned.

        With ``item_choices`` (per item, enum field → the choices it admits: an enum whose
        choices are the item's own options, ``choices_from``), each item's answer admits
        exactly its own, in every kind (:meth:`for_items`).

        In an ``auto-demo`` grammar each ``Q[i]:`` must be followed by exactly
        ``questions[i - 1]`` (a GBNF string literal, line breaks included); :attr:`gbnf`, shared
        by every request of this size, admits any question. Other kinds have no questions and
        get :attr:`gbnf` itself.

        Args:
            questions: The question text of each item, as
                :func:`promptc.markers.question_text` writes it (``auto-demo`` only).

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions, or not one
                item choice per item.
        """
        g, pinned = self._pinned(questions, item_choices)
        return g.gbnf if pinned is None else gbnf_source(g.blueprint, self.task_name, pinned)

    @cached_property
    def json_schema(self) -> dict[str, object]:
        """The JSON Schema (Draft 2020-12) of the answer's JSON form."""
        return schema_of(self.blueprint, self.task_name)

    def json_schema_for(
        self,
        questions: Sequence[str] = (),
        item_choices: Sequence[Mapping[str, Sequence[str]]] | None = None,
    ) -> dict[str, object]:
        """:attr:`json_schema` of one request, pinned as :meth:`gbnf_for` pins its GBNF: in
        ``auto-demo`` each answer's ``question`` is exactly ``questions[i - 1]``; with
        ``item_choices`` each item's enum admits exactly its own choices.

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions, or not one
                item choice per item.
        """
        g, pinned = self._pinned(questions, item_choices)
        return g.json_schema if pinned is None else schema_of(g.blueprint, self.task_name, pinned)

    def _pinned(
        self,
        questions: Sequence[str],
        item_choices: Sequence[Mapping[str, Sequence[str]]] | None = None,
    ) -> tuple[AnswerGrammar, list[str] | None]:
        """The grammar of one request (:meth:`for_items` with ``item_choices``) and, in
        ``auto-demo``, the questions its constraining exports pin (``None`` in other kinds).

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions, or not one
                item choice per item.
        """
        g = self if item_choices is None else self.for_items(item_choices)
        if not self.kind.repeats_questions:
            return g, None
        if isinstance(questions, str) or len(questions) != self.n_items:
            got = "a string" if isinstance(questions, str) else f"{len(questions)}"
            raise ValueError(f"expected {self.n_items} question(s), got {got}")
        return g, list(questions)

    @cached_property
    def parse_regex(self) -> str:
        """One Python regex for the whole output, for parsing (every supported format is
        regular): the layout slack of the parser, named groups (:attr:`parse_groups`),
        lookaheads, atomic groups."""
        return self._full_regex[0]

    @cached_property
    def portable_regex(self) -> str:
        """The canonical outputs as a regex in the dialect constrained-decoding engines read
        (no named groups, lookarounds, atomic groups, inline flags or anchors)."""
        return portable_regex_of(self.blueprint)

    def portable_regex_for(self, questions: Sequence[str]) -> str:
        """:attr:`portable_regex` of one Auto-Demo request, each item's question pinned (as
        :meth:`gbnf_for`); other kinds get :attr:`portable_regex` itself.

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions.
        """
        _, pinned = self._pinned(questions)
        return self.portable_regex if pinned is None else portable_regex_of(self.blueprint, pinned)

    def for_items(self, item_choices: Sequence[Mapping[str, Sequence[str]]]) -> AnswerGrammar:
        """The grammar of one request whose items each admit their own choices: per item,
        enum field → its exact choices (:func:`item_choices`). Every export of the result
        (:meth:`files`) admits, for item i, exactly item i's letters and/or option texts.

        Raises:
            ValueError: Not exactly :attr:`n_items` item choices.
        """
        return AnswerGrammar(
            kind=self.kind,
            n_items=self.n_items,
            task_name=self.task_name,
            blueprint=item_blueprint(self.blueprint, item_choices),
            _format=self._format,
        )

    def request_files(self, questions: Sequence[str] = ()) -> dict[str, str]:
        """The exports of one request's own grammar (:meth:`for_items`), by suffix:
        ``.lark``, ``.gbnf``, ``.schema.json``, ``.regex``, ``.parse.regex`` — as
        :meth:`files` names them, with an Auto-Demo request's questions pinned in the
        constraining forms (``.gbnf``, ``.schema.json``, ``.regex``), as :meth:`gbnf_for`
        and :meth:`json_schema_for` pin them."""
        out = self.files("")
        if self.kind.repeats_questions:
            out[".gbnf"] = self.gbnf_for(questions)
            out[".schema.json"] = schema_text(self.json_schema_for(questions)) + "\n"
            out[".regex"] = self.portable_regex_for(questions)
        return out

    @cached_property
    def answer_regex(self) -> str:
        """A regex of one answer body, with a named group per output field."""
        return "".join(
            f"(?P<{p.field.name}>{p.bare})" if p.field is not None else p.bare
            for p in self.blueprint.parts
        )

    @cached_property
    def lenient_answer_regex(self) -> str:
        """A regex of one answer body read leniently (:func:`lenient_body_regex`), a named
        group per output field."""
        return lenient_body_regex(self.blueprint)

    def write_output(
        self,
        answers: Sequence[Mapping[str, Value]],
        questions: Sequence[str] = (),
    ) -> str:
        """The canonical output of this shape: what the GBNF lets a model write.

        Args:
            answers: One mapping of field values per item.
            questions: The question text of each item (``auto-demo`` only), as
                :func:`promptc.markers.question_text` writes it.
        """
        # Here, not at the top: importing promptc.spec imports the whole front end (the YAML
        # loader, validation: about 40 ms), which reading outputs with the grammar never needs.
        from promptc.spec.answer_format import write_answer

        if len(answers) != self.n_items:
            raise ValueError(f"expected {self.n_items} answer(s), got {len(answers)}")
        fmt = self.blueprint
        bodies = [write_answer(self._format, self.fields, a).strip(_ASCII_WS) for a in answers]
        if fmt.kind.one_item:
            return bodies[0]
        lines: list[str] = []
        for i, body in enumerate(bodies, start=1):
            if fmt.kind.repeats_questions:
                lines.append(markers.question_lines(questions[i - 1], i, fmt.question_prefixes))
            lines.append(markers.answer_marker(i, fmt.markers) + markers.MARKER_SEPARATOR + body)
        return markers.ITEM_SEPARATOR.join(lines)

    def files(self, stem: str = "answer") -> dict[str, str]:
        """The export files by name: ``answer.lark``, ``.gbnf``, ``.schema.json``, ``.regex``
        (portable, for constrained decoding) and ``.parse.regex`` (Python's, for parsing)."""
        return {
            f"{stem}.lark": self.lark,
            f"{stem}.gbnf": self.gbnf,
            # Keys stay in the order built (fields as the answer format orders them), not
            # sorted: constrained decoders generate properties in schema order, and reasoning
            # must come before the answer it leads to. The order is fixed, so output is stable.
            f"{stem}.schema.json": schema_text(self.json_schema) + "\n",
            # The regex files end with the regex: engines and ``re`` read a file's text as the
            # pattern, and a final line break would be part of it (every answer refused).
            f"{stem}.regex": self.portable_regex,
            f"{stem}.parse.regex": self.parse_regex,
        }

    def text_of_json(self, output: str, questions: Sequence[str] = ()) -> str | None:
        """The text form of an output written in the JSON form (:attr:`json_schema`), or
        ``None`` if it is not such JSON (:meth:`read_json`)."""
        read = self.read_json(output, questions)
        return None if read is None else read.text

    def read_json(self, output: str, questions: Sequence[str] = ()) -> JsonAnswer | None:
        """An output written in the JSON form: its text form and its entries holding a value
        not of its field's type; ``None`` if it is not such JSON
        (:func:`promptc.grammar.json_schema.json_answer_text`)."""
        return json_answer_text(self.blueprint, self._format, output, questions)

    # ------------------------------------------------------------------ the parse regex

    @cached_property
    def parse_groups(self) -> tuple[RegexItem, ...]:
        """Where each item is in a match of :attr:`parse_regex`: its named groups, item by item.

        The names are stable, for readers that use :attr:`parse_regex` directly: per item
        ``i``, ``a{i}`` is its answer marker (``batch``, ``auto-demo``), ``q{i}`` its question
        marker and ``qt{i}`` the question text (``auto-demo``), ``i{i}`` its answer body, and
        ``g{i}_{k}`` the value of the answer's ``k``-th part.
        """
        return self._full_regex[1]

    @cached_property
    def _full_regex(self) -> tuple[str, tuple[RegexItem, ...]]:
        """The whole-output regex and the groups of each item."""
        bp = self.blueprint
        items: list[RegexItem] = []

        def body(i: int) -> tuple[str, tuple[tuple[str, str], ...]]:
            out, groups = [], []
            for k, p in enumerate(bp.parts_of(i)):
                if p.field is None:
                    out.append(p.bare)
                else:
                    name = f"g{i}_{k}"
                    groups.append((p.field.name, name))
                    out.append(f"(?P<{name}>{p.bare})")
            return "".join(out), tuple(groups)

        lead = f"(?:{layout('_LEAD')})?"
        trail = f"(?:{layout('_TRAIL')})?"
        if bp.kind.one_item:
            regex, groups = body(1)
            return lead + f"(?P<i1>{regex})" + trail, (RegexItem(1, "i1", "i1", None, groups),)
        parts = []
        for i in range(1, bp.n_items + 1):
            regex, groups = body(i)
            answer = f"(?P<a{i}>{marker_regex(bp.markers.answer, i)})(?P<i{i}>{regex})"
            if bp.kind.repeats_questions:
                assert bp.question is not None
                # With indexed inputs qt{i} holds every input's line, the later inputs'
                # markers included (markers.read_question makes the question of it).
                text = bp.question + "".join(
                    layout("_NL") + marker_regex(prefix, i) + bp.question
                    for prefix in bp.question_prefixes[1:]
                )
                q = f"(?P<q{i}>{marker_regex(bp.markers.question, i)})(?P<qt{i}>{text})"
                answer = q + layout("_NL") + answer
                items.append(RegexItem(i, f"q{i}", f"i{i}", f"qt{i}", groups))
            else:
                items.append(RegexItem(i, f"a{i}", f"i{i}", None, groups))
            # Atomic: once an item has matched up to its line end, never re-split it.
            parts.append(f"(?>{answer}(?={bp.end}))")
        return lead + layout("_NL").join(parts) + trail, tuple(items)


def item_choices(task: Task, item_ids: Sequence[str]) -> list[dict[str, list[str]]] | None:
    """Per item of a request, each enum field whose choices are the item's own options
    (``choices_from``) → that item's exact choices (:func:`own_choices`); ``None`` if the
    task has no such field or an item is unknown. For :meth:`AnswerGrammar.gbnf_for` and
    :meth:`AnswerGrammar.for_items`."""
    fields = [o for o in task.outputs if o.choices_from]
    if not fields:
        return None
    wanted = set(item_ids)  # the request's items kept, not every item of the task
    by_id = {it.id: it for it in task.items if it.id in wanted}
    out = []
    for i in item_ids:
        item = by_id.get(i)
        if item is None:
            return None
        out.append(own_choices(fields, item))
    return out


def own_choices(fields: Sequence[OutputField], item: Item) -> dict[str, list[str]]:
    """One item's exact choices for each enum field whose choices are its options
    (``choices_from``): its letters, option texts or both (``answer_with``,
    :func:`promptc.values.option_choices`); the field's choices if the item has no options."""
    return {
        f.name: option_choices(f.answer_with, item.options.get(f.choices_from, ()))
        or list(f.choices)
        for f in fields
    }


def build_grammar(task: Task, n_items: int, kind: Strategy | str | None = None) -> AnswerGrammar:
    """The answer grammar of ``task`` for a request of ``n_items`` items.

    Args:
        task: The compiled task (its ``outputs`` and ``answer_format`` are used).
        n_items: Items in the request: 1 for ``single`` and ``few-shot``, 1–N for the others.
        kind: The strategy (or its name); defaults to the task's.

    Raises:
        GrammarError: The answer format names an unknown output, uses one twice, has none, or
            ``n_items`` does not fit the strategy.
    """
    kind = strategy(kind) if kind is not None else task.strategy.kind
    if n_items < 1 or (kind.one_item and n_items != 1):
        raise GrammarError(
            f"a {kind} answer grammar needs "
            + ("exactly 1 item" if kind.one_item else "at least 1 item")
            + f", not {n_items}",
            location=task.strategy.location,
            code="grammar-item-count",
        )
    blueprint = make_blueprint(
        task.answer_format, task.outputs, kind, n_items, task.inputs, markers=task.markers
    )
    return AnswerGrammar(
        kind=kind,
        n_items=n_items,
        task_name=task.name,
        blueprint=blueprint,
        _format=task.answer_format,
    )
