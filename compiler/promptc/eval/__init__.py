"""promptc eval (in progress)."""
