"""Question alignment for Auto-Demo: whether the question a model repeated is the item's own."""

from __future__ import annotations

import difflib
import math
import string
import unicodedata
from collections.abc import Sequence

from promptc import markers
from promptc.parse.shape import RequestShape, marker_label

#: A repeated question (``Q[i]``) matches item i's question when the similarity (difflib ratio of the
#: normalised texts: casefolded, NFKC, punctuation stripped, whitespace collapsed) is at least
#: this. 0.9 tolerates a dropped word or a typo in a sentence, not a different question.
QUESTION_SIMILARITY = 0.9


#: Questions are compared on at most this many normalised characters (difflib is quadratic).
QUESTION_COMPARE_CHARS = 2000


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
    a, b = _compared(written), _compared(expected)
    if a == b:
        return 1.0
    if not a or not b:
        return 0.0
    return difflib.SequenceMatcher(None, a, b, autojunk=False).ratio()


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
    return normalise_question(text)[:QUESTION_COMPARE_CHARS]


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
        if question_matches(w, e):
            continue
        # Rounded down, so that a similarity just below the threshold never reads as equal to it.
        sim = math.floor(question_similarity(w, e) * 100) / 100
        label = prefixes[k] if len(got) > 1 else prefixes[0]
        what = label.lower() if len(got) > 1 else "inputs" if indexed else "question"
        msg = (
            f"{marker_label(label, index)} does not repeat item {index}'s {what} "
            f"(similarity {sim:.2f} < {QUESTION_SIMILARITY})"
        )
        for j, q in enumerate(shape.questions, 1):
            if j != index and q and _inputs_match(written, q, prefixes):
                msg += (
                    f"; they are item {j}'s inputs" if indexed else f"; it is item {j}'s question"
                )
                break
        return False, msg
    return True, ""


def _inputs_match(written: str, expected: str, prefixes: Sequence[str]) -> bool:
    try:
        got = markers.split_question(written, prefixes)
        want = markers.split_question(expected, prefixes)
    except ValueError:
        return question_matches(written, expected)
    return all(question_matches(w, e) for w, e in zip(got, want))
