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

#: Most values a spec may expand to (counting each alias use): stops "billion laughs". A
#: build's ``task.json`` is held to it too.
MAX_SPEC_VALUES = 100_000

#: The most characters a spec's scalar values may add up to, aliases expanded: four spec
#: files' worth. A 900 KB text repeated by 1,000 aliases is 900 MB of values, which every
#: request would then carry. A build's ``task.json`` is held to it too.
MAX_SPEC_CHARS = 4 * 1_000_000

#: Deepest nesting of a spec's mappings and lists (real specs need about six levels), and of
#: a build's ``task.json``.
MAX_SPEC_DEPTH = 50
