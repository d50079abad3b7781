"""An item's options as answers: the ``enum`` whose choices are an ``options`` input's.

An ``options`` input lists each item's own options, shown as ``(a) … (b) …``; an enum output
with ``choices_from`` naming it is answered with one of them. By ``answer_with``, an answer
names an option by its ``letter`` (``b``), by its ``text`` (``refrigerator``) or by
``either``; the value read is always the letter. With text answers the grammar shared by every
item reads any one-line text (:func:`option_text_regex`), and :func:`resolve_option` then
names the option of *that item* it is; a request's own grammar spells each item's exact
choices (:func:`option_choices`, :func:`choices_regex`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from promptc.values.dialects import PORTABLE_NOT_WS

#: How an answer names one of an item's options (an enum with ``choices_from``): by its
#: ``letter`` (``b``), by its ``text`` (``refrigerator``), or by ``either``.
AnswerWith = Literal["letter", "text", "either"]
ANSWER_WITH: tuple[AnswerWith, ...] = ("letter", "text", "either")

#: The letters of an ``options`` input's options, in order: ``(a)`` to ``(z)``.
OPTION_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def option_text(option: str) -> str:
    """The text an answer gives for an option: the option with each white-space run as one
    space, stripped (``"  hunger  for sleep"`` → ``"hunger for sleep"``)."""
    return " ".join(option.split())


def option_choices(answer_with: AnswerWith, options: Sequence[str]) -> list[str]:
    """The exact answers an item with ``options`` admits: its letters (``a`` …), its option
    texts (:func:`option_text`), or both, letters first, each once."""
    out: list[str] = []
    if answer_with in ("letter", "either"):
        out.extend(OPTION_LETTERS[: len(options)])
    if answer_with in ("text", "either"):
        out.extend(option_text(o) for o in options)
    return list(dict.fromkeys(out))


def resolve_option(
    answer_with: AnswerWith, options: Sequence[str], answer: str, exact: bool
) -> list[str]:
    """The letters of the options of one item that ``answer`` names: one letter when it names
    exactly one, none when it names none of them, several when it is ambiguous.

    A letter (``letter``, ``either``) is read in any case, as enum choices are. An option's
    text (``text``, ``either``) must equal :func:`option_text` of the option: exactly when
    ``exact`` (strict parsing), else in any case and with any white space
    (``"Hunger  for\tsleep"``). Never a guess: an answer that equals two options' texts, or
    a letter and another option's text, names both — except that of options equal but for
    case or spacing (``Apple``, ``apple``), the one written exactly as the answer is the one
    it names, as in strict parsing (each request's own grammar offers both spellings).
    """
    letters = OPTION_LETTERS[: len(options)]
    found = answer.strip()
    hits: list[str] = []
    if answer_with in ("letter", "either") and len(found) == 1 and found.lower() in letters:
        hits.append(found.lower())
    if answer_with in ("text", "either"):
        want = found if exact else " ".join(found.split()).casefold()
        texts = [
            (letter, text)
            for letter, text in zip(letters, map(option_text, options))
            if (text if exact else text.casefold()) == want and letter not in hits
        ]
        same = [(letter, text) for letter, text in texts if text == found]
        if len(texts) > 1 and len(same) == 1:
            texts = same
        hits += [letter for letter, _ in texts]
    return sorted(hits)


#: What a model writes around an option's text or letter that is no part of it: emphasis
#: and code marks at its ends, a full stop or exclamation mark after it.
OPTION_NOISE = re.compile(r"^[*_`\s]+|[*_`\s.!]+$")

#: An option's letter as the prompt shows it, ``(b)``, or as a list marks it, ``b)``,
#: ``B.``; or a letter and a space before the option's text, ``b windowsill``.
_LETTER_LABEL = re.compile(r"\(([a-z])\)|([a-z])[.)]|([a-z])(?=\s)", re.IGNORECASE)


def resolve_labelled_option(options: Sequence[str], answer: str) -> list[str]:
    """The letters of the options an answer (``answer_with: either``, when recovering) names
    by a letter in the prompt's own form and, after it, perhaps a text: ``(b)``, ``b)``,
    ``B.``, ``(b) windowsill``, ``b) windowsill``, ``B. windowsill``, ``b windowsill``.

    One letter when the letter is one of the item's and the text after it, if any, is that
    option's own (as :func:`resolve_option` reads a text, in any case and spacing); none when
    the letter is past the last option or the text names no option; both when the text is
    another option's (``(b) closet`` with ``closet`` as option a): never a guess."""
    found = answer.strip()
    label = _LETTER_LABEL.match(found)
    if label is None:
        return []
    letter = (label[1] or label[2] or label[3]).lower()
    if letter not in OPTION_LETTERS[: len(options)]:
        return []
    rest = OPTION_NOISE.sub("", found[label.end() :])
    if not rest:
        return [letter]
    named = resolve_option("text", options, rest, exact=False)
    return sorted({letter, *named}) if named else []


def option_text_regex(max_chars: int) -> str:
    """A text answer naming an item's option (``answer_with: text | either``) in a grammar
    shared by every item: one line of at most twice ``max_chars`` characters (the longest
    option's), no white space at its ends. Which option it is (if any) is decided per item
    after reading (:func:`resolve_option`); each request's own grammar spells its options."""
    # Twice the longest, so that an option written with wider spacing is still read.
    limit = 2 * max(max_chars, 1)
    return f"{PORTABLE_NOT_WS}(?:[^\\n]{{0,{limit - 2}}}{PORTABLE_NOT_WS})?"


def choices_regex(choices: Sequence[str]) -> str:
    """The exact choices of one item (letters and/or option texts), any case, longest first."""
    ordered = sorted(dict.fromkeys(choices), key=lambda w: (-len(w), w.lower(), w))
    return "(?i:" + "|".join(re.escape(c) for c in ordered) + ")"
