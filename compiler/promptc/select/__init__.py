"""Batch selection: which items share a request, in which order.

``methods`` holds :func:`select` and its static table of methods (``sequential``, ``random``,
and the similarity methods, which ``similarity`` implements over ``embed`` and ``neighbors``
and which import the optional ``embed`` extra only when used).
"""
