"""The RL subcommands of ``dnne`` (``play``, ``eval``, ``export``, ``plot``) and ``dnne run``'s ``--max-steps``,
added through the ``dnne.cli`` entry point group (``dnne.runtime.cli.extensions``)."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dnne.runtime.cli.extensions import CommandLine


def extend(cli: CommandLine) -> None:
    """Add the RL subcommands and run flags to the ``dnne`` parser."""
    from dnne.runtime.cli.shared import at_least

    from . import export, plot, play
    from . import eval as evaluate

    cli.add_run_flag("--max-steps", key="max_steps", type=at_least(1),
                     help="stop at this many env steps (summed over envs)")
    play.add_parser(cli.sub, cli.graph_args)
    evaluate.add_parser(cli.sub, cli.graph_args)
    plot.add_parser(cli.sub, cli.common)
    export.add_parser(cli.sub, cli.common)
