"""Rendering: the strategies' Jinja templates, in a sandbox, into chat-message requests.

``environment`` (the Jinja environment and the loader that keeps templates inside the spec's
folder), ``sandbox`` (Jinja's immutable sandbox, bounded through its public hooks), ``budget``
(the bounds and their checks), ``os_limits`` (the time and memory limits held while rendering),
``context`` (the variables templates see), ``renderer`` (requests from batches) and ``checks``
(which templates need checking) with ``lint`` (the static template checks, located at the
template's file:line).
"""


# Nothing is imported here: `promptc check` of a spec that uses the shipped templates reads
# promptc.render.checks alone, and Jinja with the renderer are loaded only when a template is
# to be checked or rendered (importing Jinja costs about 30 ms).
