"""Limits that more than one stage checks, kept where even ``promptc --help`` can read them
cheaply (this module imports nothing). docs/limits.md tables every bound promptc keeps.
"""

from __future__ import annotations

#: The most items one request may hold (``strategy.batch_size``, ``--batch-size``). A request's
#: prompt and its answer grammar grow with every item (each has its own ``Q[i]``/``A[i]`` rules),
#: and a thousand items outgrow the context window of every model but for trivial items, while
#: the batch sizes studied for batch prompting stay in the dozens: a larger value is a typo,
#: and accepting it would let ``build`` exhaust the machine. Named in docs/spec.md's limits.
MAX_BATCH_SIZE = 1000

#: The most inputs, and the most outputs, a spec may declare. Checks compare markers pairwise
#: and the answer grammar's terminals grow with every output: a spec with thousands of fields
#: (a generated one gone wrong) would take minutes and gigabytes, while real tasks declare a
#: handful. Named in docs/limits.md.
MAX_FIELDS = 100

#: Characters of one rendered message: what a prompt may hold, checked while rendering and,
#: for the demos every prompt may show, by ``promptc check``.
MAX_MESSAGE_CHARS = 2_000_000
