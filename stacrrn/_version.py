"""The package version: a leaf module every layer may import (``pyproject.toml`` reads it too)."""

__version__ = "0.1.0"
