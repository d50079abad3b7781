"""Jinja's immutable sandbox with promptc's budgets: what every template and every data
expression (``data.id``, ``data.gold``) is rendered in.

``environment`` (:class:`~promptc.sandbox.environment.BoundedSandbox`: the sandbox, bounded
through Jinja's public hooks), ``budget`` (the limits, their counters and the value checks)
and ``os_limits`` (the time and memory limits around rendering, for what the hooks cannot
see).
"""
