"""``promptc eval``: run every variant of a spec and score it against the gold answers.

::

    spec ─plan.variants─▶ one build per variant ─run.run_build (cache, resume)─▶ results.jsonl
         ─eval.results (read a variant folder)─▶ eval.score (pure arithmetic)
         ─eval.report─▶ report.md, report.json, accuracy-vs-tokens.png, accuracy-by-position.png

:mod:`promptc.eval.score` is the arithmetic alone (accuracy with Wilson intervals, statuses,
accuracy by batch position, paired McNemar comparisons, comparison rules per type), on plain
data, so that it is tested on fixed result files with hand-computed answers.
"""
