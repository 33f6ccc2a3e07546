"""Outputs: one writer per product (catalog items, STAC output items, manifest, Transactions publish)."""
