"""``dnne eval``: evaluate a checkpoint on exactly N fresh, seeded episodes (``play`` without pacing or video)."""
from __future__ import annotations

import argparse
from typing import Any

from .play import add_evaluation_args, cmd_play


def add_parser(sub: Any, graph_args: argparse.ArgumentParser) -> None:
    """Add ``eval`` to the ``dnne`` parser."""
    evaluate = sub.add_parser("eval", parents=[graph_args], help="evaluate a checkpoint on N fresh episodes: mean, "
                              "std and each episode's return and length")
    add_evaluation_args(evaluate)
    evaluate.set_defaults(handler=cmd_play)
