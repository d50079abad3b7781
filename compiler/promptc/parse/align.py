"""Question alignment for Auto-Demo: whether the question a model repeated is the item's own."""

from __future__ import annotations

import difflib
import functools
import math
import string
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from promptc import markers
from promptc.parse.shape import RequestShape, marker_label

#: A repeated question (``Q[i]``) matches item i's question when the similarity (difflib ratio of the
#: normalised texts: casefolded, NFKC, punctuation stripped, whitespace collapsed) is at least
#: this. 0.9 tolerates a dropped word or a typo in a sentence, not a different question.
QUESTION_SIMILARITY = 0.9

#: Questions are compared on at most this many normalised characters: a longer one on its first
#: and last half of them, so that a repeat cut short, or a question that differs in its last
#: sentences (a passage's question), is still seen. The bound is the cost of difflib's ratio,
#: computed for every misaligned answer: it grows with the square of the length on everyday
#: text and up to its cube on text of a few letters (measured, a run of one letter against a
#: question: 2 s at 2,000 characters, 8 ms at 300; two everyday questions: 90 ms at 2,000,
#: 2 ms at 300).
QUESTION_COMPARE_CHARS = 300

#: To say whose question a misaligned one is, besides looking up an equal question, at most this
#: many other items' questions are compared in full: those nearest by difflib's quick bound.
#:
#: So an output's work is bounded: per answer whose question is not its item's, one ratio with
#: its item's question and at most this many with others, each of at most
#: QUESTION_COMPARE_CHARS a side (O(300²) steps on everyday text, about 2 ms; O(300³) at worst,
#: about 0.3 s, on text of one or two letters on both sides), plus one look-up and one quick
#: bound (O(letters)) per other item: O(batch) per answer, O(batch²) per output, about 10 µs
#: a pair. Normalising is linear in the output and the request.
OTHER_QUESTIONS_COMPARED = 4


# --------------------------------------------------------------------------------------------
# Question alignment (auto-demo)
# --------------------------------------------------------------------------------------------

_PUNCT = str.maketrans({c: " " for c in string.punctuation + "“”‘’«»…–—¿¡"})


def normalise_question(text: str) -> str:
    """The form questions are compared in: NFKC, casefolded, punctuation → space, whitespace
    collapsed."""
    t = unicodedata.normalize("NFKC", text).casefold().translate(_PUNCT)
    return " ".join(t.split())


def question_similarity(written: str, expected: str) -> float:
    """1.0 for the same question; difflib's ratio of the normalised texts otherwise."""
    if written == expected:
        return 1.0
    return _similarity(_compared(written), _compared(expected))


def question_matches(written: str, expected: str) -> bool:
    """Whether ``question_similarity(written, expected) >= QUESTION_SIMILARITY``, skipping the
    full comparison when difflib's cheap upper bounds already fall short."""
    if written == expected:
        return True
    a, b = _compared(written), _compared(expected)
    if a == b:
        return True
    if not a or not b:
        return False
    sm = difflib.SequenceMatcher(None, a, b, autojunk=False)
    return (
        sm.real_quick_ratio() >= QUESTION_SIMILARITY
        and sm.quick_ratio() >= QUESTION_SIMILARITY
        and sm.ratio() >= QUESTION_SIMILARITY
    )


def _compared(text: str) -> str:
    t = normalise_question(text)
    if len(t) <= QUESTION_COMPARE_CHARS:
        return t
    head = QUESTION_COMPARE_CHARS // 2
    return t[:head] + t[len(t) - (QUESTION_COMPARE_CHARS - head) :]


def _similarity(a: str, b: str) -> float:
    """:func:`question_similarity` of two texts in :func:`_compared`'s form."""
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


def check_alignment(
    shape: RequestShape,
    index: int,
    written: str | None,
    prefixes: Sequence[str] = (markers.QUESTION_PREFIX,),
) -> tuple[bool, str]:
    """Whether a repeated question matches item ``index``'s, and why not. With indexed inputs
    each input repeated must match the item's own, on its own (a wrong hypothesis under the
    right premise is no repeat of the item).

    Args:
        shape: The request.
        index: The item's 1-based index.
        written: The question as repeated, in :func:`promptc.markers.question_text`'s form
            (:func:`promptc.markers.read_question`), or ``None`` if none was.
        prefixes: The prefixes of the question's markers, for the message
            (:func:`promptc.markers.question_prefixes`: the spec's ``Q``, or its inputs' labels).
    """
    if not shape.kind.repeats_questions or written is None:
        return True, ""
    expected = shape.questions[index - 1] if index - 1 < len(shape.questions) else ""
    if not expected or written == expected:
        return True, ""
    indexed = len(prefixes) > 1
    try:
        got = markers.split_question(written, prefixes)
        want = markers.split_question(expected, prefixes)
    except ValueError:  # an input left out: compared as one text
        got, want = [written], [expected]
    for k, (w, e) in enumerate(zip(got, want)):
        if k == 0 and not w and len(got) > 1:
            continue  # the first input left out (its marker too): the others are compared
        # One ratio, both for the decision and for the message.
        similarity = question_similarity(w, e)
        if similarity >= QUESTION_SIMILARITY:
            continue
        # Rounded down, so that a similarity just below the threshold never reads as equal to it.
        sim = math.floor(similarity * 100) / 100
        label = prefixes[k] if len(got) > 1 else prefixes[0]
        what = label.lower() if len(got) > 1 else "inputs" if indexed else "question"
        msg = (
            f"{marker_label(label, index)} does not repeat item {index}'s {what} "
            f"(similarity {sim:.2f} < {QUESTION_SIMILARITY})"
        )
        asked = _asked(shape.questions, tuple(prefixes))
        j = _whose(asked, index, _Question.of(written, prefixes))
        if j is not None:
            msg += f"; they are item {j}'s inputs" if indexed else f"; it is item {j}'s question"
        return False, msg
    return True, ""


def restated_as(shape: RequestShape, index: int, written: str, prefix: str) -> int | None:
    """The other item whose question an answer that was not asked to repeat its questions
    (``batch``) restated under ``Q[index]``, or ``None``: when it is the item's own, or no
    item's (a paraphrase is no evidence). A model that skips a question and numbers on
    restates the next item's question under each later marker."""
    expected = shape.questions[index - 1] if 0 < index <= len(shape.questions) else ""
    if not expected or not written or question_similarity(written, expected) >= QUESTION_SIMILARITY:
        return None
    asked = _asked(shape.questions, (prefix,))
    return _whose(asked, index, _Question.of(written, (prefix,)))


# --------------------------------------------------------------------------------------------
# Whose question it is
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Form:
    """Texts in :func:`_compared`'s form, with their letters counted for difflib's quick bound."""

    texts: tuple[str, ...]
    counts: tuple[Counter[str], ...]

    @classmethod
    def of(cls, texts: Sequence[str]) -> _Form:
        compared = tuple(_compared(t) for t in texts)
        return cls(compared, tuple(Counter(t) for t in compared))


@dataclass(frozen=True, slots=True)
class _Question:
    """A question as it is compared: as one text, and input by input when it has the inputs'
    form (:func:`promptc.markers.split_question`)."""

    whole: _Form
    parts: _Form | None

    @classmethod
    def of(cls, text: str, prefixes: Sequence[str]) -> _Question:
        try:
            parts: _Form | None = _Form.of(markers.split_question(text, prefixes))
        except ValueError:
            parts = None
        return cls(_Form.of([text]), parts)

    def compared_with(self, other: _Question) -> tuple[_Form, _Form]:
        """Both questions input by input when both have the inputs' form, else as one text
        each: as :func:`check_alignment` compares them."""
        if self.parts is not None and other.parts is not None:
            return self.parts, other.parts
        return self.whole, other.whole


@dataclass(frozen=True, slots=True)
class _Asked:
    """A request's questions in compared form, with look-ups of the equal ones."""

    texts: tuple[str, ...]
    questions: tuple[_Question, ...]
    by_parts: dict[tuple[str, ...], int]
    by_whole: dict[tuple[str, ...], int]


@functools.lru_cache(maxsize=8)
def _asked(texts: tuple[str, ...], prefixes: tuple[str, ...]) -> _Asked:
    """Made once for all the answers of an output (and of its repairs), not once per misaligned
    answer and item: normalising every question for every answer is the batch² × length work
    this module avoids."""
    questions = tuple(_Question.of(q, prefixes) for q in texts)
    by_parts: dict[tuple[str, ...], int] = {}
    by_whole: dict[tuple[str, ...], int] = {}
    for j, (text, q) in enumerate(zip(texts, questions), 1):
        if text:
            by_whole.setdefault(q.whole.texts, j)
            if q.parts is not None:
                by_parts.setdefault(q.parts.texts, j)
    return _Asked(texts, questions, by_parts, by_whole)


def _whose(asked: _Asked, index: int, written: _Question) -> int | None:
    """The other item (1-based) whose question ``written`` matches, or ``None``.

    An equal question is looked up first (what a model that skips a question writes): the
    first item that has it. Otherwise the full ratio is computed for at most
    :data:`OTHER_QUESTIONS_COMPARED` items, those whose questions come nearest by difflib's
    quick_ratio (the letters both have, counted once per question) among those that pass it and
    real_quick_ratio (the lengths); the first of them that matches is the answer.
    """
    if written.parts is not None:
        equal = asked.by_parts.get(written.parts.texts)
    else:
        equal = asked.by_whole.get(written.whole.texts)
    if equal is not None and equal != index:
        return equal
    near: list[tuple[float, int, _Form, _Form]] = []
    for j, (text, q) in enumerate(zip(asked.texts, asked.questions), 1):
        if j == index or not text:
            continue
        got, want = written.compared_with(q)
        if got.texts == want.texts:  # as one text, where the item's has no inputs' form
            return j
        bound = min(map(_bound, got.texts, want.texts, got.counts, want.counts))
        if bound >= QUESTION_SIMILARITY:
            near.append((-bound, j, got, want))
    near.sort(key=lambda n: n[:2])
    for _, j, got, want in near[:OTHER_QUESTIONS_COMPARED]:
        if all(_similarity(a, b) >= QUESTION_SIMILARITY for a, b in zip(got.texts, want.texts)):
            return j
    return None


def _bound(a: str, b: str, a_counts: Counter[str], b_counts: Counter[str]) -> float:
    """An upper bound of difflib's ratio of ``a`` and ``b``: its real_quick_ratio (from the
    lengths) when that already falls short of the threshold, else its quick_ratio (from the
    letters both have)."""
    if not a or not b:
        return 1.0 if a == b else 0.0
    total = len(a) + len(b)  # difflib's own arithmetic, so that the bounds are exactly its own
    lengths = 2.0 * min(len(a), len(b)) / total
    if lengths < QUESTION_SIMILARITY:
        return lengths
    return 2.0 * (a_counts & b_counts).total() / total
