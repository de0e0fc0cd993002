"""The ``dnne`` command line, one module per subcommand; ``shared`` holds what they have in common."""
from __future__ import annotations

from .main import build_parser, console, main

__all__ = ["build_parser", "console", "main"]
