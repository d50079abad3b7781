"""The JSON Schema of task specs, shipped as package data (``promptc.schema``)."""
