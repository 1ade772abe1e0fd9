"""The `inlet` command line."""

from inlet.cli.main import app, main

__all__ = ["app", "main"]
