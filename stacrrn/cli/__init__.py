"""Command-line front end (typer)."""
