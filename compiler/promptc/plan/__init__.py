"""``promptc plan``: what each strategy will cost before anything is sent.

::

    spec ─compile (one variant per strategy × batch size)─▶ build.plan (requests in memory)
         ─tokenizers.Tokenizer─▶ input tokens per request (chat framing included)
         ─estimate─▶ output tokens per question (an estimate),
                     the floor, cost from a price table

:mod:`promptc.plan.variants` names the variants (shared with ``promptc eval``),
:mod:`promptc.plan.tokenizers` counts tokens offline with a real tokenizer, and
:mod:`promptc.plan.estimate` does the arithmetic. Nothing here talks to a model.
"""
