"""Jinja templates of the strategies, shipped as package data (``promptc.templates``)."""
