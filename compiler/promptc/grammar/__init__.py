"""Answer grammars, generated from the spec: one layout, several exports.

``answer`` holds :class:`AnswerGrammar` (the facade: lark parser, strict parsing, exports) and
:func:`build_grammar`; ``lark_source`` the layout and its lark text; ``gbnf``, ``json_schema``
the exports; ``diagnose`` the expected/found of a strict parse failure; ``items`` what a strict
parse returns.
"""

from __future__ import annotations

from promptc.grammar.answer import AnswerGrammar, build_grammar

__all__ = ["AnswerGrammar", "build_grammar"]
