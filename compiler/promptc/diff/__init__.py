"""What a change to a prompt design did to its build: the diff stage, above build and parse.

::

    spec at REV ─git─▶ files in a temporary folder ─compile, plan─▶ BuildView ─┐
    spec now ──────────────────────────────────────compile, plan─▶ BuildView ─┴─compare─▶ BuildDiff
    build folder ──read──▶ BuildView                                              └─report─▶ text | JSON

- :mod:`promptc.diff.views`: a build as the diff sees it (from :func:`promptc.build.assemble` or
  from a build folder), the requests matched by the items they hold, and :class:`BuildDiff`.
- :mod:`promptc.diff.report`: the diff as lines of text (unified diffs, a summary) or as JSON.
- :mod:`promptc.diff.revision`: a spec, the specs it extends, its templates and its data as
  they were at a git revision, read with ``git cat-file``; the work tree is never touched.
- :mod:`promptc.diff.stale`: a build folder held against the build a spec makes now
  (``promptc build --check``).
"""
