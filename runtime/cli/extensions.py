"""Subcommands and ``run`` flags that node packages add to ``dnne`` (the ``dnne.cli`` entry point group).

An entry point of the group names a function ``extend(cli: CommandLine)``; it adds subcommands to ``cli.sub``
(their handler set with ``set_defaults(handler=...)``, returning the exit code) and flags of ``dnne run`` that set
a run key (``cli.add_run_flag("--max-steps", key="max_steps", ...)``). A failing extension is reported, not fatal.
"""
from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "dnne.cli"
log = logging.getLogger("dnne")


@dataclass
class CommandLine:
    """What a CLI extension may add to.

    Args:
        sub: the subcommand parsers (``add_parser``).
        common: the parent parser of every subcommand (``--plugin``, ``-v``, ``-q``).
        graph_args: the parent parser of subcommands that load a graph (``FILE``, ``--set``...).
        run: the parser of ``dnne run``.
        run_flags: argparse destination -> the run key it sets (filled by ``add_run_flag``).
    """

    sub: Any
    common: argparse.ArgumentParser
    graph_args: argparse.ArgumentParser
    run: argparse.ArgumentParser
    run_flags: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.run.set_defaults(run_flags=self.run_flags)

    def add_run_flag(self, *flags: str, key: str, **options: Any) -> None:
        """Add a flag to ``dnne run`` whose value (when given) sets run key ``key`` before validation."""
        action = self.run.add_argument(*flags, **options)
        self.run_flags[action.dest] = key


def load_extensions(cli: CommandLine) -> None:
    """Let every installed package of the ``dnne.cli`` group extend ``cli``."""
    for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        try:
            entry.load()(cli)
        except Exception as error:  # a broken extension must not break the other subcommands
            log.warning("command line extension %r (%s) failed to load: %s: %s", entry.name, entry.value,
                        type(error).__name__, error)
