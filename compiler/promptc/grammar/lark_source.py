"""The lark answer grammar of a task: its terminals (from ``grammars/*.lark``) and its source.

This module is the single source of every answer grammar target. It takes the regex of each
value from its type (:mod:`promptc.values`, which lets lark compile the fragments
``number.lark``, ``integer.lark``, ``boolean.lark``, ``enum.lark``, ``text.lark``), the layout
fragment (``layout.lark``) and the strategy skeletons (``single.lark``, ``batch.lark``,
``auto_demo.lark``), and composes them into a :class:`Blueprint`: the ordered terminals of one
answer body and of the markers. :func:`lark_source` writes the blueprint as a self-contained
lark grammar (LALR, contextual lexer); :mod:`promptc.grammar.answer` builds the one-regex fast
path from the *same* terminal regexes, and the other exports ask each field's type for its
value in their dialect.

Why text terminals carry a lookahead: in ``"{reasoning} The answer is {answer}."`` the reasoning
may itself contain "the answer is". A field is therefore the first match, in regex
backtracking order, after which the rest of the answer still matches up to its end — exactly
what one regular expression ``reasoning-regex literal answer-regex literal`` would choose. The
last text field of an answer is greedy (so its end is the LAST "The answer is" followed by a
valid number and the end of the item); a text field with another text field after it is lazy
(it ends at the first delimiter). See ``grammars/text.lark``. Writing that rest as a lookahead into the field's terminal lets a
deterministic LALR lexer make the same choice, so the lark path and the regex path agree by
construction (and the tests check it).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from promptc import markers
from promptc.errors import GrammarError, Location
from promptc.ir import AnswerFormat, InputField, Literal_, Markers, OutputField
from promptc.markers import DEFAULT as DEFAULT_MARKERS
from promptc.markers import INDEX_OPEN, field_label, question_prefixes, shown_markers
from promptc.resources import read_grammar
from promptc.strategies import Strategy
from promptc.values.dialects import fragment_terminals
from promptc.values.options import choices_regex
from promptc.values.types import Reading


def layout(name: str) -> str:
    """The regex of a terminal of ``layout.lark`` (``LINE_END``, ``_NL`` …)."""
    return fragment_terminals("layout.lark")[name]


#: A white-space run of a literal, read leniently in a one-line answer: spaces, or one line
#: break with spaces around it (``The answer is\n27.``, ``So 5.\nThe answer is 27.``).
LENIENT_SPACE = "(?:[ \\t]+|[ \\t]*\\n[ \\t]*)"

#: Words after a number that change it (``1.5 million``, ``2 dozen``, ``5 squared``,
#: ``3 quarters``, ``70 k``, ``2 bn``), in any case: never a unit, so the number before them
#: is not the answer.
MAGNITUDE_WORDS = (
    "hundreds?|thousands?|millions?|billions?|trillions?|dozens?|score|gross|grand|lakhs?|"
    "crores?|squared|cubed|halves|half|quarters?|thirds?|fourths?|fifths?|sixths?|sevenths?|"
    "eighths?|ninths?|tenths?|elevenths?|twelfths?|[a-z]+teenths?|[a-z]+tieths?|hundredths?|"
    "thousandths?|millionths?|tens|k|mn|mm|mln|bn|bln|mil|mio|bil|tn|trn|doz|dz|thou"
)
#: Abbreviations that change the number only in capitals (``1.5 M``, ``2 B``): ``5 m`` is
#: five metres.
MAGNITUDE_CAPITALS = "M|B|T"

#: What a lenient reading lets stand after a number followed by literal text: a percent sign
#: or one word of letters (``18%``, ``18 dollars``, ``18 km/h``), not one that changes the
#: number (:data:`MAGNITUDE_WORDS`). The value is the number.
LENIENT_UNIT = (
    "(?:[ \\t]*%|[ \\t]+(?!(?:(?i:" + MAGNITUDE_WORDS + ")|" + MAGNITUDE_CAPITALS + ")(?![A-Za-z]))"
    "[A-Za-z]{1,24}(?:/[A-Za-z]{1,24})?)?"
)


#: What the lenient reading takes after an answer format's final field: the full stop or
#: exclamation mark that ends a sentence.
LENIENT_STOP = "(?:[ \\t]*[.!])?"


def literal_regex(text: str, multiline: bool, lenient: bool = False) -> str:
    """A literal of the answer format: any case, each white-space run as white space.

    ``lenient`` (one-line answers): a white-space run may also be one line break.
    """
    out: list[str] = []
    for run in re.findall(r"\s+|\S+", text):
        if run.isspace():
            if lenient and not multiline:
                out.append(LENIENT_SPACE)
            elif multiline:
                out.append(layout("LITERAL_SPACE_MULTILINE"))
            elif "\n" in run:
                out.append(layout("LITERAL_NEWLINE"))
            else:
                out.append(layout("LITERAL_SPACE"))
        else:
            out.append("(?i:" + re.escape(run) + ")")
    return "".join(out)


@dataclass(frozen=True)
class Part:
    """One terminal of an answer body: a typed field or a literal of the format.

    Attributes:
        terminal: Its lark terminal name.
        bare: The regex of the part alone.
        regex: The terminal's regex as the lark lexer uses it: for a field, ``bare`` followed by
            a lookahead for the rest of the answer.
        field: The output field (fields only).
        text: The literal's text as written in the format, outer white space kept (literals).
    """

    terminal: str
    bare: str
    regex: str
    field: OutputField | None = None
    text: str = ""


@dataclass(frozen=True)
class Blueprint:
    """Everything the targets of one answer grammar are generated from."""

    kind: Strategy
    n_items: int
    multiline: bool
    parts: tuple[Part, ...]
    fields: tuple[OutputField, ...]
    #: Regex matching where an answer body ends (``LINE_END`` or ``OUTPUT_END``).
    end: str
    question: str | None
    #: How a repeated Auto-Demo question labels its fields (empty for a one-field input).
    question_labels: tuple[str, ...] = ()
    #: The task's markers (``Q[i]:``, ``A[i]:``), for every target, as the output shows them
    #: (:func:`promptc.markers.shown_markers`: with indexed inputs the question's marker is
    #: its first input's, ``Premise[i]:``).
    markers: Markers = DEFAULT_MARKERS
    #: The prefixes of the markers that open the lines of a repeated Auto-Demo question:
    #: ``(markers.question,)``, or with indexed inputs one per input (``Premise``,
    #: ``Hypothesis``; :func:`promptc.markers.question_prefixes`).
    question_prefixes: tuple[str, ...] = ()
    #: A request's own grammar (:func:`item_blueprint`): per item, (enum field, the exact
    #: choices it admits) for each field whose choices are the item's options; ``None`` in
    #: the grammar shared by every request of a size.
    item_choices: tuple[tuple[tuple[str, tuple[str, ...]], ...], ...] | None = None
    #: Per item, its answer's parts, the per-item fields spelled with its own choices
    #: (``None`` when :attr:`item_choices` is).
    item_parts: tuple[tuple[Part, ...], ...] | None = None

    @property
    def indexed(self) -> bool:
        """Whether a repeated question is one marked line per input (indexed inputs)."""
        return len(self.question_prefixes) > 1

    def parts_of(self, index: int) -> tuple[Part, ...]:
        """The parts of item ``index``'s (1-based) answer: :attr:`parts`, or the item's own."""
        if self.item_parts is None:
            return self.parts
        return self.item_parts[index - 1]


def item_blueprint(
    blueprint: Blueprint, item_choices: Sequence[Mapping[str, Sequence[str]]]
) -> Blueprint:
    """``blueprint`` for one request whose items each admit their own choices (an enum with
    ``choices_from``: per item, field → its letters and/or option texts): every target then
    spells, for item i, exactly item i's choices. Field terminals get an ``_I{i}`` suffix
    (a text field's lookahead holds the item's choices too); literals are shared."""
    if len(item_choices) != blueprint.n_items:
        raise ValueError(f"expected {blueprint.n_items} item choice(s), got {len(item_choices)}")
    names = {f.name for f in blueprint.fields}
    frozen = tuple(
        tuple((name, tuple(c[name])) for name in sorted(c) if name in names) for c in item_choices
    )
    per_item: list[tuple[Part, ...]] = []
    for i, choices in enumerate(frozen, 1):
        own = dict(choices)
        bares = [
            choices_regex(own[p.field.name])
            if p.field is not None and p.field.name in own
            else p.bare
            for p in blueprint.parts
        ]
        parts: list[Part] = []
        for k, p in enumerate(blueprint.parts):
            if p.field is None:
                parts.append(p)
                continue
            tail = "".join(bares[k + 1 :]) + blueprint.end
            field = p.field
            if field.name in own:
                field = replace(
                    field, choices=own[field.name], choices_from="", answer_with="letter"
                )
            parts.append(
                Part(
                    f"{p.terminal}_I{i}" if not blueprint.kind.one_item else p.terminal,
                    bares[k],
                    f"(?:{bares[k]})(?={tail})",
                    field=field,
                )
            )
        per_item.append(tuple(parts))
    return replace(blueprint, item_choices=frozen, item_parts=tuple(per_item))


def leading_text_optional(blueprint: Blueprint) -> bool:
    """Whether a recovering reader may read the answer's leading free text as left out, empty
    (``{reasoning} The answer is …``: ``The answer is 55.``, from a model that reasoned in its
    thinking): a free text first, then a literal that begins with white space."""
    parts = blueprint.parts
    return (
        len(parts) > 1
        and parts[0].field is not None
        and parts[0].field.type.free_text
        and parts[1].field is None
        and parts[1].text[:1].isspace()
    )


def lenient_body_regex(blueprint: Blueprint) -> str:
    """The regex of one answer body as the recovering parser reads it when the exact format
    fails, with a named group per field.

    What models write that the format does not say, each read as the answer it plainly is:
    the final literal left out when it is only punctuation (``The answer is 27`` for
    ``… The answer is {answer}.``); a line break for a space of a literal in a one-line
    answer (``The answer is\n27.``); a colon after a literal's last word (``The answer is:
    27.``); a full stop or an exclamation mark after a final field (``Yes.`` for
    ``{answer}``); a leading free text left out (``The answer is 27.``: a reasoning model
    reasoned in its thinking), read empty; a percent sign or a unit word after a number that
    literal text follows (``18%``, ``18 dollars``). Literal text is matched in any case, as
    always.
    Never used in strict mode, nor where the exact format matches.
    """
    out: list[str] = []
    last = len(blueprint.parts) - 1
    parts = blueprint.parts
    optional = leading_text_optional(blueprint)
    for k, p in enumerate(parts):
        if p.field is not None:
            unit = ""
            nxt = parts[k + 1] if k < last else None
            if p.field.type.takes_unit and nxt is not None and nxt.field is None:
                unit = LENIENT_UNIT
            bare = p.bare
            if p.field.type.free_text and not blueprint.multiline:
                # Reasoning written step by step, a line each (never a blank line between):
                # the answer's body ends at the next marker, so no other item's line joins.
                bare = f"{bare}(?:[ \\t]*\\n[ \\t]*{bare})*"
            out.append(f"(?P<{p.field.name}>{bare}){'?' if optional and k == 0 else ''}{unit}")
            continue
        if optional and k == 1:
            name = parts[0].field.name if parts[0].field is not None else ""
            first = _lenient_literal(p.text, k, last, blueprint.multiline)
            bare = _lenient_literal(p.text.lstrip(), k, last, blueprint.multiline)
            out.append(f"(?({name}){first}|{bare})")
            continue
        out.append(_lenient_literal(p.text, k, last, blueprint.multiline))
    if parts and parts[-1].field is not None:
        out.append(LENIENT_STOP)  # ``Yes.``, ``Positive!``: a sentence's end after the answer
    return "".join(out)


def _lenient_literal(text: str, k: int, last: int, multiline: bool) -> str:
    """The lenient regex of the answer format's literal ``text``, part ``k`` of ``0…last``
    (see :func:`lenient_body_regex`)."""
    regex = literal_regex(text, multiline, lenient=True)
    head = text.rstrip()
    if k == last and k > 0 and head and all(not c.isalnum() for c in head):
        # Final punctuation left out, or only its end (``(b)`` for ``({answer}).``), or
        # ended with ``!``: the longest prefix of it first.
        heads = [head[:n] for n in range(len(head), 0, -1) if not head[:n].isspace()]
        options = "|".join(literal_regex(h, multiline, lenient=True) for h in heads)
        regex = f"(?:{options})?" + (LENIENT_STOP if head[-1] in ".!" else "")
    if k < last and head[-1:].isalpha() and head != text:
        # A colon after the literal's last word: ``The answer is: 15``.
        tail = literal_regex(text[len(head) :], multiline, lenient=True)
        regex = literal_regex(head, multiline, lenient=True) + "(?:[ \\t]*:)?" + tail
    return regex


def _segments(
    fmt: AnswerFormat, by_name: Mapping[str, OutputField]
) -> list[Literal_ | OutputField]:
    """The format's literals and fields, with leading and trailing white space of the answer
    removed."""
    segs = [seg if isinstance(seg, Literal_) else by_name[seg.field] for seg in fmt.segments]
    if segs and isinstance(segs[0], Literal_):
        segs[0] = Literal_(segs[0].text.lstrip(), segs[0].location)
    if segs and isinstance(segs[-1], Literal_):
        segs[-1] = Literal_(segs[-1].text.rstrip(), segs[-1].location)
    return [s for s in segs if not (isinstance(s, Literal_) and s.text == "")]


def _terminal_name(field: str, taken: set[str]) -> str:
    base = "F_" + re.sub(r"[^A-Z0-9_]", "_", field.upper())
    name, k = base, 2
    while name in taken:
        name, k = f"{base}_{k}", k + 1
    taken.add(name)
    return name


def _check_placeholders(fmt: AnswerFormat, by_name: Mapping[str, OutputField]) -> None:
    """Raises the GrammarError of a placeholder that names no output or one used twice, or
    of a format without any."""

    def error(message: str, location: Location | None, code: str) -> GrammarError:
        return GrammarError(message, location=location, path=("answer_format",), code=code)

    seen: set[str] = set()
    for seg in fmt.segments:
        if isinstance(seg, Literal_):
            continue
        if seg.field not in by_name:
            expected = ", ".join(sorted(by_name))
            message = f"answer_format names '{{{seg.field}}}', which is not an output"
            raise error(
                f"{message}; expected one of {expected}", seg.location, "unknown-answer-field"
            )
        if seg.field in seen:
            message = (
                f"answer_format uses '{{{seg.field}}}' twice; expected each output at most once"
            )
            raise error(message, seg.location, "duplicate-answer-field")
        seen.add(seg.field)
    if not seen:
        message = "answer_format has no {field} placeholder; expected at least one output in it"
        raise error(message, fmt.location, "answer-format-without-field")


def make_blueprint(
    fmt: AnswerFormat,
    outputs: Sequence[OutputField],
    kind: Strategy,
    n_items: int,
    inputs: Sequence[InputField] = (),
    markers: Markers = DEFAULT_MARKERS,
) -> Blueprint:
    """Resolves the format's placeholders to typed fields and composes the body terminals.

    Raises:
        GrammarError: A placeholder names no output, a field appears twice, or the format has
            no placeholder.
    """
    marker_set = shown_markers(inputs, markers)
    prefixes = question_prefixes(inputs, markers)
    by_name = {o.name: o for o in outputs}
    multiline = kind.one_item
    _check_placeholders(fmt, by_name)
    segs = _segments(fmt, by_name)
    bares: list[str] = []
    for k, part in enumerate(segs):
        if isinstance(part, Literal_):
            bares.append(literal_regex(part.text, multiline))
            continue
        # Free text with more free text after it takes its shortest reading.
        reading: Reading = ""
        if any(isinstance(s, OutputField) and s.type.free_text for s in segs[k + 1 :]):
            nxt = segs[k + 1]
            reading = "words" if isinstance(nxt, Literal_) and nxt.text[:1].isspace() else "chars"
        bares.append(part.type.regex(part, multiline, reading))
    end = layout("OUTPUT_END" if multiline else "LINE_END")
    taken: set[str] = set()
    parts: list[Part] = []
    n_literals = 0
    for k, (part, bare) in enumerate(zip(segs, bares)):
        if isinstance(part, Literal_):
            n_literals += 1
            parts.append(Part(f"LIT_{n_literals}", bare, bare, text=part.text))
        else:
            regex = f"(?:{bare})(?={''.join(bares[k + 1 :]) + end})"
            parts.append(Part(_terminal_name(part.name, taken), bare, regex, field=part))
    question = None
    if kind.repeats_questions:
        stop = "|".join(re.escape(prefix + INDEX_OPEN) for prefix in (marker_set.answer, *prefixes))
        lead = layout("MARKER_LEAD")
        blank = layout("QUESTION_BLANK_LINE")
        question = (
            layout("QUESTION_LINE")
            + f"(?:{layout('QUESTION_BREAK')}(?!{lead}(?:{stop}))(?:{blank})*+"
            + f"{layout('QUESTION_CONTINUATION')})*+"
        )
    fields = tuple(p.field for p in parts if p.field is not None)
    labels = tuple(field_label(f) for f in inputs) if len(inputs) > 1 else ()
    return Blueprint(
        kind, n_items, multiline, tuple(parts), fields, end, question, labels, marker_set, prefixes
    )


def marker_regex(prefix: str, index: int) -> str:
    """``A[3]:`` and the spaces after it, from the constants of :mod:`promptc.markers`."""
    return re.escape(markers.marker(prefix, index)) + layout("MARKER_SPACE")


def input_marker_terminal(i: int, k: int) -> str:
    """The lark terminal of item ``i``'s marker of its ``k``-th input (2, 3 …) with indexed
    inputs: ``INPUT_MARKER_1_2`` is ``Hypothesis[1]:``."""
    return f"INPUT_MARKER_{i}_{k}"


def _question_rule(i: int, prefixes: Sequence[str]) -> str:
    """The symbols of item ``i``'s repeated question in the ``auto-demo`` skeleton."""
    out = f"QUESTION_MARKER_{i} QUESTION"
    for k in range(2, len(prefixes) + 1):
        out += f" _NL {input_marker_terminal(i, k)} QUESTION"
    return out


def _skeleton(
    kind: Strategy, n_items: int, prefixes: Sequence[str] = (), per_item: bool = False
) -> str:
    """The strategy skeleton with its per-item lines expanded (``per_item``: item i's line
    names its own rule ``answer_i``)."""
    lines = [ln for ln in read_grammar(kind.skeleton).splitlines() if not ln.startswith("//")]
    items = " _NL ".join(f"item_{i}" for i in range(1, n_items + 1))
    out: list[str] = []
    for line in lines:
        if re.search(r"\$i\b", line):
            if per_item:
                line = re.sub(r"\banswer\b", "answer_$i", line)
            for i in range(1, n_items + 1):
                question = _question_rule(i, prefixes)
                out.append(string.Template(line).substitute(i=i, items=items, question=question))
        else:
            out.append(string.Template(line).substitute(items=items))
    return "\n".join(out).strip() + "\n"


def _regex_literal(regex: str) -> str:
    return "/" + regex.replace("/", "\\/") + "/"


def lark_source(blueprint: Blueprint, task_name: str) -> str:
    """The self-contained lark grammar (``answer.lark``) of a blueprint; parse it with LALR."""
    head = [
        # (the name on one line: a line break in it would end the comment)
        (
            f"// Answer grammar of task '{' '.join(task_name.split())}': {blueprint.kind}, "
            f"{blueprint.n_items} item(s)."
        ),
        "// Generated by promptc from the task's outputs and answer_format and the fragments",
        '// in promptc\'s grammars/ folder. Parse with lark.Lark(source, parser="lalr").',
        "",
    ]
    per_item = blueprint.item_parts is not None and not blueprint.kind.one_item
    skeleton = _skeleton(blueprint.kind, blueprint.n_items, blueprint.question_prefixes, per_item)
    body = [skeleton.rstrip("\n"), ""]
    if per_item:
        for i in range(1, blueprint.n_items + 1):
            body.append(f"answer_{i}: " + " ".join(p.terminal for p in blueprint.parts_of(i)))
    else:
        body.append("answer: " + " ".join(p.terminal for p in blueprint.parts_of(1)))
    body.append("")
    if not blueprint.kind.one_item:
        for i in range(1, blueprint.n_items + 1):
            if blueprint.kind.repeats_questions:
                body.append(
                    f"QUESTION_MARKER_{i}: "
                    + _regex_literal(marker_regex(blueprint.markers.question, i))
                )
                for k, prefix in enumerate(blueprint.question_prefixes[1:], start=2):
                    body.append(
                        f"{input_marker_terminal(i, k)}: " + _regex_literal(marker_regex(prefix, i))
                    )
            body.append(
                f"ANSWER_MARKER_{i}: " + _regex_literal(marker_regex(blueprint.markers.answer, i))
            )
        body.append("")
    if blueprint.question is not None:
        body.append("QUESTION: " + _regex_literal(blueprint.question))
    written: set[str] = set()
    for i in range(1, (blueprint.n_items if per_item else 1) + 1):
        for p in blueprint.parts_of(i):
            if p.terminal in written:
                continue
            written.add(p.terminal)
            note = f"  // {p.field.name}: {p.field.type}" if p.field else f"  // {p.text!r}"
            body.append(f"{p.terminal}: {_regex_literal(p.regex)}{note}")
    body.append("")
    for name in ("_NL", "_LEAD", "_TRAIL"):
        body.append(f"{name}: {_regex_literal(layout(name))}")
    return "\n".join(head + body) + "\n"
