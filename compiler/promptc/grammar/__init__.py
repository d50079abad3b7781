"""Answer grammars, generated from the spec: one layout, several exports.

``answer`` holds :class:`AnswerGrammar` (the grammar of a request shape and its exports) and
:func:`build_grammar`; ``lark_source`` the layout and its lark text; ``gbnf``, ``json_schema``,
``portable`` the exports; ``diagnose`` the expected/found of an answer that does not match;
``items`` what reading an output with the grammar gives (:mod:`promptc.parse` reads).
"""
