"""Masks: which pixels may inform the statistics (cloud masks, s2cloudless, pseudo-invariant features)."""
