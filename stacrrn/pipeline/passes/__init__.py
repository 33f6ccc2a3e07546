"""Passes: pass 1 (overlap statistics), the model fit, pass 2 (apply) and overlap metrics."""
