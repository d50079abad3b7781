"""``promptc eval``: run every variant of a spec and score it against the gold answers.

::

    spec ─plan.variants─▶ one build per variant ─run.run_build (cache, resume)─▶ results.jsonl
         ─eval.results (read a variant folder; items cut by max_tokens marked truncated)
         ─▶ eval.score (pure arithmetic) ─▶ eval.decide (Pareto front on total cost, the
         recommended variant, the smallest detectable difference)
         ─▶ eval.report (report.json, report.md) ─▶ eval.charts (two PNGs) ─▶ eval.html
         (report.html)

:mod:`promptc.eval.score` is the arithmetic alone (accuracy with Wilson intervals, statuses,
accuracy by batch position, paired McNemar comparisons, comparison rules per type, the paired
non-inferiority bound and Connor's detectable difference), on plain data, so that it is tested
on fixed result files with hand-computed answers.
"""
