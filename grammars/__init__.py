"""Lark grammars of the answer-format language and the answer value types (``promptc.grammars``)."""
