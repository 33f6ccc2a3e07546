"""Inputs: the common grid and chunk plan, input checks, band roles and PIF options."""
