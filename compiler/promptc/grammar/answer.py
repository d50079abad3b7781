"""The answer grammar of a task: generate it, export it, and parse model output strictly with it.

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
reading alive). With two text fields, answers longer than :data:`MAX_SPLIT_CHARS` are refused.

The targets, all generated from the same terminals (:mod:`promptc.grammar.lark_source`):

- :attr:`AnswerGrammar.lark`: a self-contained lark grammar, parsed with LALR;
- :attr:`AnswerGrammar.parse_regex`: one Python regex for the whole output, the parser's fast
  path (``answer.parse.regex``), with the parser's slack;
- :attr:`AnswerGrammar.portable_regex`: the canonical outputs in the regex dialect that
  constrained-decoding engines read (``answer.regex``; :mod:`promptc.grammar.portable`);
- :attr:`AnswerGrammar.gbnf`: llama.cpp's GBNF, for constrained decoding
  (:mod:`promptc.grammar.gbnf`; text bounded in length there); :meth:`AnswerGrammar.gbnf_for`
  pins an Auto-Demo request's own questions in it;
- :attr:`AnswerGrammar.json_schema`: JSON Schema for structured-output APIs
  (:mod:`promptc.grammar.json_schema`).

:meth:`AnswerGrammar.parse_strict` tries the regex and, when it does not match, runs the lark
parser to say where and why, as an :class:`~promptc.errors.OutputParseError` at the output's
line:col with the expected tokens by name. :meth:`AnswerGrammar.parse_answer` reads one answer
body (what follows ``A[i]:``), for the recovering parser built on top of this module.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from promptc import markers
from promptc.errors import Location, OutputParseError
from promptc.grammar.items import AnswerMismatch, ParsedItem, one_of
from promptc.grammar.lark_source import (
    Blueprint,
    input_marker_terminal,
    lark_source,
    lenient_body_regex,
    make_blueprint,
    marker_regex,
)
from promptc.ir import AnswerFormat, Item, OutputField, Task, Value
from promptc.strategies import Strategy, strategy
from promptc.text import LineTable, Span, excerpt
from promptc.values import (
    ValueOutOfBounds,
    json_value,
    option_choices,
    read_value,
    value_reader,
)
from promptc.values import expected as expected_value

if TYPE_CHECKING:
    from lark import Lark, UnexpectedInput

__all__ = [
    "AnswerGrammar",
    "AnswerMismatch",
    "ParsedItem",
    "Span",
    "build_grammar",
]

#: The longest answer (line, or whole ``single`` output) read in a format with two text
#: fields: telling where one free text ends and the next begins costs time quadratic in its
#: length, so longer answers are refused rather than left to run for minutes.
MAX_SPLIT_CHARS = 20_000

#: Where in an output a parse error is reported when it has no better name.
OUTPUT_FILE = "<output>"
_ASCII_WS = " \t\n\r\f\v"


@dataclass(frozen=True, eq=False)
class AnswerGrammar:
    """The answer grammar of one request shape of a task, with its exports and parsers.

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
        from promptc.grammar.gbnf import gbnf_source

        return gbnf_source(self.blueprint, self.task_name)

    def gbnf_for(
        self,
        questions: Sequence[str] = (),
        item_choices: Sequence[Mapping[str, Sequence[str]]] | None = None,
    ) -> str:
        """The GBNF grammar of one request: :attr:`gbnf` with each item's question pinned.

        With ``item_choices`` (per item, enum field → the choices it admits: an enum whose
        choices are the item's own options, ``choices_from``), each item's answer admits
        exactly its own, in every kind.

        In an ``auto-demo`` grammar each ``Q[i]:`` must be followed by exactly
        ``questions[i - 1]`` (a GBNF string literal, line breaks included); :attr:`gbnf`, shared
        by every request of this size, admits any question. Other kinds have no questions and
        get :attr:`gbnf` itself.

        Args:
            questions: The question text of each item, as
                :func:`promptc.markers.question_text` writes it (``auto-demo`` only).

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions.
        """
        from promptc.grammar.gbnf import gbnf_source

        if item_choices is not None and len(item_choices) != self.n_items:
            raise ValueError(f"expected {self.n_items} item choice(s), got {len(item_choices)}")
        if not self.kind.repeats_questions:
            if item_choices is None:
                return self.gbnf
            return gbnf_source(self.blueprint, self.task_name, item_choices=item_choices)
        if isinstance(questions, str) or len(questions) != self.n_items:
            got = "a string" if isinstance(questions, str) else f"{len(questions)}"
            raise ValueError(f"expected {self.n_items} question(s), got {got}")
        return gbnf_source(
            self.blueprint, self.task_name, questions=list(questions), item_choices=item_choices
        )

    @cached_property
    def json_schema(self) -> dict[str, object]:
        """The JSON Schema (Draft 2020-12) of the answer's JSON form (:meth:`to_json`)."""
        from promptc.grammar.json_schema import json_schema

        return json_schema(self.blueprint, self.task_name)

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
        from promptc.grammar.json_schema import json_schema

        if item_choices is not None and len(item_choices) != self.n_items:
            raise ValueError(f"expected {self.n_items} item choice(s), got {len(item_choices)}")
        if not self.kind.repeats_questions:
            if item_choices is None:
                return self.json_schema
            return json_schema(self.blueprint, self.task_name, item_choices=item_choices)
        if isinstance(questions, str) or len(questions) != self.n_items:
            got = "a string" if isinstance(questions, str) else f"{len(questions)}"
            raise ValueError(f"expected {self.n_items} question(s), got {got}")
        return json_schema(self.blueprint, self.task_name, list(questions), item_choices)

    @cached_property
    def parse_regex(self) -> str | None:
        """One Python regex for the whole output, for parsing (every supported format is
        regular): the layout slack of the parser, named groups, lookaheads, atomic groups."""
        return self._full_regex[0]

    @cached_property
    def portable_regex(self) -> str:
        """The canonical outputs as a regex in the dialect constrained-decoding engines read
        (no named groups, lookarounds, atomic groups, inline flags or anchors)."""
        from promptc.grammar.portable import portable_regex

        return portable_regex(self.blueprint)

    def portable_regex_for(self, questions: Sequence[str]) -> str:
        """:attr:`portable_regex` of one Auto-Demo request, each item's question pinned (as
        :meth:`gbnf_for`); other kinds get :attr:`portable_regex` itself.

        Raises:
            ValueError: ``auto-demo`` and not exactly :attr:`n_items` questions.
        """
        from promptc.grammar.portable import portable_regex

        if not self.kind.repeats_questions:
            return self.portable_regex
        if isinstance(questions, str) or len(questions) != self.n_items:
            got = "a string" if isinstance(questions, str) else f"{len(questions)}"
            raise ValueError(f"expected {self.n_items} question(s), got {got}")
        return portable_regex(self.blueprint, list(questions))

    def for_items(self, item_choices: Sequence[Mapping[str, Sequence[str]]]) -> AnswerGrammar:
        """The grammar of one request whose items each admit their own choices: per item,
        enum field → its exact choices (:func:`item_choices`). Every export of the result
        (:meth:`files`) admits, for item i, exactly item i's letters and/or option texts.

        Raises:
            ValueError: Not exactly :attr:`n_items` item choices.
        """
        from promptc.grammar.lark_source import item_blueprint

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
        from promptc.grammar.json_schema import schema_text

        out = {k[len("answer") :]: v for k, v in self.files("answer").items()}
        if self.kind.repeats_questions:
            out[".gbnf"] = self.gbnf_for(questions)
            out[".schema.json"] = schema_text(self.json_schema_for(questions)) + "\n"
            out[".regex"] = self.portable_regex_for(questions) + "\n"
        return out

    @cached_property
    def answer_regex(self) -> str:
        """A regex of one answer body, with a named group per output field."""
        return "".join(
            f"(?P<{p.field.name}>{p.bare})" if p.field is not None else p.bare
            for p in self.blueprint.parts
        )

    @property
    def regex_groups(self) -> list[tuple[int, str | None, str]]:
        """The named groups of :attr:`parse_regex`: (item, field name or ``None`` for the question,
        group name).

        The layout is stable, for readers that use :attr:`parse_regex` directly: per item ``i``,
        ``a{i}`` is its answer marker (``batch``, ``auto-demo``), ``q{i}`` its question marker
        and ``qt{i}`` the question text (``auto-demo``), ``i{i}`` its answer body, and the
        groups listed here hold the field values.
        """
        return list(self._full_regex[1])

    def read_question(self, written: str) -> str:
        """The question an Auto-Demo item repeated, from the text after its question marker,
        as :func:`promptc.markers.question_text` writes it (:func:`promptc.markers.read_question`:
        with indexed inputs ``v1\nHypothesis[1]: v2`` is ``Premise: v1\nHypothesis: v2``)."""
        if not self.blueprint.indexed:
            return written
        return markers.read_question(written, self.blueprint.question_prefixes)[0]

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
        from promptc.grammar.json_schema import schema_text

        out = {
            f"{stem}.lark": self.lark,
            f"{stem}.gbnf": self.gbnf,
            # Keys stay in the order built (fields as the answer format orders them), not
            # sorted: constrained decoders generate properties in schema order, and reasoning
            # must come before the answer it leads to. The order is fixed, so output is stable.
            f"{stem}.schema.json": schema_text(self.json_schema) + "\n",
        }
        out[f"{stem}.regex"] = self.portable_regex + "\n"
        if self.parse_regex is not None:
            out[f"{stem}.parse.regex"] = self.parse_regex + "\n"
        return out

    def to_json(self, items: Sequence[ParsedItem]) -> dict[str, object]:
        """The JSON form of parsed items, as :attr:`json_schema` describes it."""
        by_name = {f.name: f for f in self.fields}

        def values(item: ParsedItem) -> dict[str, object]:
            return {k: json_value(by_name[k], v) for k, v in item.values.items()}

        if self.kind.one_item:
            return values(items[0])
        answers: list[dict[str, object]] = []
        for item in items:
            entry: dict[str, object] = {"index": item.index}
            if self.kind.repeats_questions:
                entry["question"] = item.question
            entry.update(values(item))
            answers.append(entry)
        return {"answers": answers}

    def text_of_json(self, output: str, questions: Sequence[str] = ()) -> str | None:
        """The text form of an output written in the JSON form (:meth:`to_json`,
        :attr:`json_schema`), or ``None`` if it is not such JSON
        (:func:`promptc.grammar.json_schema.json_answer_text`)."""
        from promptc.grammar.json_schema import json_answer_text

        return json_answer_text(self.blueprint, self._format, output, questions)

    # ------------------------------------------------------------------ one answer

    @cached_property
    def _answer_re(self) -> re.Pattern[str]:
        space = "[ \\t\\n\\r\\f\\v]*" if self.blueprint.multiline else "[ \\t]*"
        return re.compile(space + self.answer_regex + space)

    def parse_answer(self, text: str) -> dict[str, Value]:
        """Reads one answer body (what follows ``A[i]:``), each field normalised.

        Raises:
            AnswerMismatch: The body does not match the answer format; says where and why.
        """
        if self._guarded and len(text) > MAX_SPLIT_CHARS:
            raise AnswerMismatch(
                MAX_SPLIT_CHARS,
                [f"an answer of at most {MAX_SPLIT_CHARS:,} characters"],
                f"{len(text):,} characters",
            )
        m = self._answer_re.fullmatch(text)
        if m is None:
            raise self.diagnose_answer(text)
        values: dict[str, Value] = {}
        for f in self.fields:
            try:
                values[f.name] = read_value(f, m.group(f.name))
            except ValueOutOfBounds as e:  # the right form, past a bound: an answer still
                raise AnswerMismatch(
                    m.start(f.name), [f"{f.name}: {e.expected}"], e.found
                ) from None
        return values

    @cached_property
    def lenient_answer_regex(self) -> str:
        """A regex of one answer body read leniently (:func:`lenient_body_regex`), a named
        group per output field."""
        return lenient_body_regex(self.blueprint)

    @cached_property
    def _lenient_re(self) -> re.Pattern[str]:
        space = "[ \\t\\n\\r\\f\\v]*" if self.blueprint.multiline else "[ \\t]*"
        return re.compile(space + self.lenient_answer_regex + space)

    def parse_answer_lenient(self, text: str) -> dict[str, Value] | None:
        """Reads one answer body leniently (the recovering parser's last resort), or ``None``.

        Accepts what :meth:`parse_answer` does and the departures of
        :func:`~promptc.grammar.lark_source.lenient_body_regex`; values are read from the
        text as written.
        """
        if len(text) > MAX_SPLIT_CHARS:
            return None
        m = self._lenient_re.fullmatch(text)
        if m is None:
            return None
        try:
            return {f.name: read_value(f, m.group(f.name)) for f in self.fields}
        except ValueError:
            return None

    def diagnose_answer(self, text: str) -> AnswerMismatch:
        """Why ``text`` is not an answer body: the deepest point any reading of it reached.

        Reading is tried part by part, every possible length of each field; among the failed
        readings the one that got furthest *through the format* wins, then the one that got
        furthest in the text. (Lark's own Earley report is the furthest character, where a
        text field that can swallow everything makes the message useless.)
        """
        from promptc.grammar.diagnose import diagnose

        offset, expected, found = diagnose(self.blueprint, text)
        return AnswerMismatch(offset, expected, found)

    # ------------------------------------------------------------------ whole outputs

    @cached_property
    def _full_regex(self) -> tuple[str, list[tuple[int, str | None, str]]]:
        """The whole-output regex and its groups: (item, field name or None for question, group)."""
        from promptc.grammar.lark_source import layout

        bp = self.blueprint
        groups: list[tuple[int, str | None, str]] = []

        def body(i: int) -> str:
            out = []
            for k, p in enumerate(bp.parts_of(i)):
                if p.field is None:
                    out.append(p.bare)
                else:
                    name = f"g{i}_{k}"
                    groups.append((i, p.field.name, name))
                    out.append(f"(?P<{name}>{p.bare})")
            return "".join(out)

        lead = f"(?:{layout('_LEAD')})?"
        trail = f"(?:{layout('_TRAIL')})?"
        if bp.kind.one_item:
            return lead + f"(?P<i1>{body(1)})" + trail, groups
        items = []
        for i in range(1, bp.n_items + 1):
            answer = f"(?P<a{i}>{marker_regex(bp.markers.answer, i)})(?P<i{i}>{body(i)})"
            if bp.kind.repeats_questions:
                assert bp.question is not None
                # With indexed inputs qt{i} holds every input's line, the later inputs'
                # markers included (read_question makes the question of it).
                text = bp.question + "".join(
                    layout("_NL") + marker_regex(prefix, i) + bp.question
                    for prefix in bp.question_prefixes[1:]
                )
                q = f"(?P<q{i}>{marker_regex(bp.markers.question, i)})(?P<qt{i}>{text})"
                groups.append((i, None, f"qt{i}"))
                answer = q + layout("_NL") + answer
            # Atomic: once an item has matched up to its line end, never re-split it.
            items.append(f"(?>{answer}(?={bp.end}))")
        return lead + layout("_NL").join(items) + trail, groups

    @cached_property
    def _compiled(self) -> re.Pattern[str]:
        assert self.parse_regex is not None
        return re.compile(self.parse_regex)

    @cached_property
    def _by_name(self) -> dict[str, OutputField]:
        return {f.name: f for f in self.fields}

    @cached_property
    def _guarded(self) -> bool:
        """Whether a text field is split from a later one (lazy), where matching is quadratic."""
        return sum(1 for f in self.fields if f.type.free_text) >= 2

    def _check_length(self, output: str) -> None:
        """Refuses an over-long answer in a format with two text fields, before matching it."""
        if not self._guarded:
            return
        start, size = 0, len(output)
        if not self.blueprint.multiline:
            size = offset = 0
            for line in output.split("\n"):
                if len(line) > size:
                    start, size = offset, len(line)
                offset += len(line) + 1
        if size > MAX_SPLIT_CHARS:
            raise _parse_error(
                output,
                start,
                [f"an answer of at most {MAX_SPLIT_CHARS:,} characters"],
                f"{size:,} characters",
                "output-too-long",
            )

    def parse_strict(self, output: str) -> list[ParsedItem]:
        """Parses a whole output that must match the grammar exactly.

        The regex fast path first; when it fails, the lark parser, for the diagnosis.

        Raises:
            OutputParseError: At the output's line:col, with the expected tokens and what was
                found there.
        """
        try:
            return self.parse_strict_regex(output)
        except OutputParseError:
            return self.parse_strict_lark(output)

    def parse_strict_regex(self, output: str) -> list[ParsedItem]:
        """The fast path alone: one regex match. Its error says only that the output differs.

        Raises:
            OutputParseError: The output does not match (no position: use :meth:`parse_strict`).
        """
        self._check_length(output)
        m = self._compiled.fullmatch(output)
        if m is None:
            raise OutputParseError(
                f"the output is not a {self._shape()}",
                location=Location(OUTPUT_FILE),
                code="output-mismatch",
            )
        lines = LineTable(output)
        regs = m.regs
        new = tuple.__new__
        items: list[ParsedItem] = []
        try:
            for i, start_group, end_group, q_group, fields in self.item_groups:
                values: dict[str, Value] = {}
                spans: dict[str, Span] = {}
                for name, group, read in fields:
                    gs, ge = regs[group]
                    values[name] = read(output[gs:ge])
                    spans[name] = Span(gs, ge, lines)
                question = question_span = None
                if q_group:
                    qs, qe = regs[q_group]
                    written = output[qs:qe].rstrip(_ASCII_WS)
                    question = self.read_question(written)
                    question_span = Span(qs, qs + len(written), lines)
                span = Span(regs[start_group][0], regs[end_group][1], lines)
                items.append(new(ParsedItem, (i, values, span, spans, question, question_span)))
        except ValueError as e:  # the fragments and read_value disagree: a promptc bug
            raise OutputParseError(
                f"cannot read a value: {e}",
                location=Location(OUTPUT_FILE),
                code="value-unreadable",
            ) from None
        return items

    @cached_property
    def item_groups(
        self,
    ) -> list[tuple[int, int, int, int, list[tuple[str, int, Callable[[str], Value]]]]]:
        """How to read each item from a match of :attr:`parse_regex`, for fast readers.

        Per item: index, group where it starts, group where it ends, question group (or 0),
        and (field, group, reader) for each field — group numbers of :attr:`parse_regex`; the
        readers are :func:`promptc.values.value_reader`'s."""
        gi = self._compiled.groupindex
        fields: dict[int, list[tuple[str, int, Callable[[str], Value]]]] = {}
        for i, name, group in self._full_regex[1]:
            if name is not None:
                fields.setdefault(i, []).append(
                    (name, gi[group], value_reader(self._by_name[name]))
                )
        groups = []
        for i in range(1, self.n_items + 1):
            if self.kind.repeats_questions:
                q, start = gi[f"qt{i}"], gi[f"q{i}"]
            elif not self.kind.one_item:
                q, start = 0, gi[f"a{i}"]
            else:
                q, start = 0, gi[f"i{i}"]
            groups.append((i, start, gi[f"i{i}"], q, fields.get(i, [])))
        return groups

    def _read(self, name: str, raw: str, output: str, start: int) -> Value:
        try:
            return read_value(self._by_name[name], raw)
        except ValueOutOfBounds as e:  # the right form, past a bound: a malformed answer
            line, col, _ = LineTable(output).position(start)
            raise OutputParseError(
                f"cannot read {name}: {e}",
                offset=start,
                expected=(f"{name}: {e.expected}",),
                found=e.found,
                location=Location(OUTPUT_FILE, line, col),
                code="value-out-of-bounds",
            ) from None
        except ValueError as e:  # the fragments and read_value disagree: a promptc bug
            line, col, _ = LineTable(output).position(start)
            raise OutputParseError(
                f"cannot read {name}: {e}",
                location=Location(OUTPUT_FILE, line, col),
                code="value-unreadable",
            ) from None

    def _shape(self) -> str:
        if self.kind.one_item:
            return "single answer in the answer format"
        return f"{self.kind} answer of {self.n_items} item(s)"

    @cached_property
    def _lark_parser(self) -> Lark:
        return _lark_parser_for(self.lark)

    def parse_strict_lark(self, output: str) -> list[ParsedItem]:
        """The lark path alone (LALR with a contextual lexer), with full diagnostics.

        Raises:
            OutputParseError: As :meth:`parse_strict`.
        """
        import lark

        try:
            self._check_length(output)
            tree = self._lark_parser.parse(output)
        except lark.UnexpectedInput as e:
            raise self._lark_error(output, e) from None
        lines = LineTable(output)
        items: list[ParsedItem] = []
        item_trees = (
            [tree] if self.kind.one_item else [c for c in tree.children if isinstance(c, lark.Tree)]
        )
        for i, item_tree in enumerate(item_trees, start=1):
            question: tuple[str, Span] | None = None
            answer = item_tree
            start_pos: int | None = None
            q_start: int | None = None
            for child in item_tree.children:
                if isinstance(child, lark.Token):
                    at = _pos(child.start_pos)
                    if start_pos is None:
                        start_pos = at
                    if child.type == "QUESTION":
                        # Indexed inputs: one QUESTION per input; the question runs from the
                        # first to the end of the last, later inputs' markers included.
                        q_start = at if q_start is None else q_start
                        q = output[q_start : _pos(child.end_pos)].rstrip(_ASCII_WS)
                        question = (self.read_question(q), lines.span(q_start, q_start + len(q)))
                elif child.data == "answer" or str(child.data).startswith("answer_"):
                    answer = child
            values: dict[str, Value] = {}
            spans: dict[str, Span] = {}
            end_pos = 0
            for tok, part in zip(answer.children, self.blueprint.parts):
                assert isinstance(tok, lark.Token)
                at, end_pos = _pos(tok.start_pos), _pos(tok.end_pos)
                if start_pos is None:
                    start_pos = at
                if part.field is not None:
                    values[part.field.name] = self._read(part.field.name, str(tok), output, at)
                    spans[part.field.name] = lines.span(at, end_pos)
            assert start_pos is not None
            items.append(
                ParsedItem(
                    index=i,
                    values=values,
                    span=lines.span(start_pos, end_pos),
                    field_spans=spans,
                    question=question[0] if question else None,
                    question_span=question[1] if question else None,
                )
            )
        return items

    # ------------------------------------------------------------------ diagnostics

    def _terminal_names(self) -> dict[str, str]:
        names: dict[str, str] = {
            "_NL": "a new line",
            "_TRAIL": "end of output",
            "$END": "end of output",
            "_LEAD": "white space",
            "QUESTION": "the question text",
        }
        for i in range(1, self.n_items + 1):
            names[f"ANSWER_MARKER_{i}"] = repr(markers.answer_marker(i, self.blueprint.markers))
            names[f"QUESTION_MARKER_{i}"] = repr(markers.question_marker(i, self.blueprint.markers))
            for k, prefix in enumerate(self.blueprint.question_prefixes[1:], start=2):
                names[input_marker_terminal(i, k)] = repr(markers.marker(prefix, i))
        for p in self.blueprint.parts:
            if p.field is not None:
                names[p.terminal] = f"{p.field.name}: {expected_value(p.field)}"
            else:
                names[p.terminal] = repr(p.text)
        return names

    def _lark_error(self, output: str, e: UnexpectedInput) -> OutputParseError:
        import lark

        names = self._terminal_names()
        offset: int
        if isinstance(e, lark.UnexpectedCharacters):
            offset = _pos(e.pos_in_stream)
            expected = set(e.allowed or ())
        elif isinstance(e, lark.UnexpectedToken):
            start = e.token.start_pos if e.token.type != "$END" else None
            offset = start if isinstance(start, int) else len(output)
            expected = set(e.expected)
        else:
            assert isinstance(e, lark.UnexpectedEOF)
            offset = len(output)
            expected = set(e.expected)
        body_terms = {p.terminal for p in self.blueprint.parts}
        if expected & body_terms:
            refined = self._refine_in_body(output, offset)
            if refined is not None:
                return refined
        if expected & {"_NL", "_TRAIL", "$END"} and offset < len(output):
            # Report what stands where the output should have ended or gone on, not the blank.
            rest = output[offset:]
            offset += len(rest) - len(rest.lstrip())
        if "_NL" in expected:
            nxt = self._next_marker(output, offset)
            names["_NL"] = f"a new line and {nxt}" if nxt else names["_NL"]
        if len(expected) > 1:
            expected.discard("_LEAD")  # optional white space is never what is missing
        want = sorted({names.get(t, t) for t in expected})
        return _parse_error(
            output, offset, want, excerpt(output, offset, end="end of output"), "unexpected-output"
        )

    def _next_marker(self, output: str, offset: int) -> str | None:
        """The marker of the item after the last complete answer before ``offset``."""
        prefix = re.escape(self.blueprint.markers.answer + markers.INDEX_OPEN)
        done = len(re.findall(f"(?m)^[ \\t]*{prefix}", output[:offset]))
        if done >= self.n_items:
            return None
        if self.kind.repeats_questions:
            return repr(markers.question_marker(done + 1, self.blueprint.markers))
        return repr(markers.answer_marker(done + 1, self.blueprint.markers))

    def _refine_in_body(self, output: str, offset: int) -> OutputParseError | None:
        """Re-reads the answer body that contains ``offset`` to say what is wrong inside it."""
        if self.blueprint.multiline:
            start = len(output) - len(output.lstrip())
            end = len(output.rstrip())
        else:
            line_start = output.rfind("\n", 0, offset) + 1
            m = re.compile(
                "[ \\t]*"
                + re.escape(self.blueprint.markers.answer + markers.INDEX_OPEN)
                + "[0-9]+"
                + re.escape(markers.INDEX_CLOSE + markers.MARKER_END)
                + "[ \\t]*"
            ).match(output, line_start)
            start = m.end() if m else offset
            nl = output.find("\n", start)
            end = len(output) if nl < 0 else nl
        body = output[start:end]
        mismatch = self.diagnose_answer(body)
        return _parse_error(
            output, start + mismatch.offset, mismatch.expected, mismatch.found, "answer-mismatch"
        )


def _pos(value: int | None) -> int:
    """A position lark reports (``None`` only for tokens it made up itself)."""
    assert value is not None
    return value


def _parse_error(
    output: str, offset: int, expected: Sequence[str], found: str, code: str
) -> OutputParseError:
    """An error at ``offset`` of the output, carrying ``offset``, ``expected`` and ``found``."""
    offset = min(offset, len(output))
    line, col, _ = LineTable(output).position(offset)
    return OutputParseError(
        f"expected {one_of(expected)}, found {found}",
        location=Location(OUTPUT_FILE, line, col),
        code=code,
        offset=offset,
        expected=expected,
        found=found,
    )


@lru_cache(maxsize=32)
def _lark_parser_for(source: str) -> Lark:
    """An LALR parser per grammar text: building one for 64 items takes most of a second."""
    import lark

    return lark.Lark(source, parser="lalr", lexer="contextual")


def item_choices(task: Task, item_ids: Sequence[str]) -> list[dict[str, list[str]]] | None:
    """Per item of a request, each enum field whose choices are the item's own options
    (``choices_from``) → that item's exact choices (:func:`own_choices`); ``None`` if the
    task has no such field or an item is unknown. For :meth:`AnswerGrammar.gbnf_for` and
    :meth:`AnswerGrammar.for_items`."""
    fields = [o for o in task.outputs if o.choices_from]
    if not fields:
        return None
    by_id = {it.id: it for it in task.items}
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
    from promptc.errors import GrammarError

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
