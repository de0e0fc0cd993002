"""The built-in package's registrations: its subcommands and ``--max-steps`` through the ``dnne.cli`` group, its run
keys (stop shorthands and play's settings) validated like the engine's own."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime import default_registry, load_graph
from dnne.runtime.cli import build_parser
from dnne.runtime.errors import GraphError
from dnne.runtime.stopping import stop_rules

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
ARGS = {"play": ["g.json", "--checkpoint", "c"], "eval": ["g.json", "--checkpoint", "c"], "export": ["r", "-o", "x"],
        "plot": ["r"]}


def test_subcommands_and_run_flag_come_from_the_entry_point():
    """play, eval, export and plot are there, and --max-steps sets run key max_steps."""
    parser = build_parser()
    for command in ("play", "eval", "export", "plot"):
        assert parser.parse_args([command, *ARGS[command]]).command == command
    args = parser.parse_args(["run", "g.json", "--max-steps", "64"])
    assert args.run_flags == {"max_steps": "max_steps"} and args.max_steps == 64


def test_shorthands_are_the_predicates_they_stand_for():
    """Each shorthand key of today's files reads as its counter predicate, target_return as solved."""
    registry = default_registry()
    rules = stop_rules({"max_steps": 100, "max_iterations": 3, "max_episodes": 5, "target_return": 475},
                       registry.vocabulary.shorthands)
    assert [(r.counter, r.op, r.value, r.reason, r.solved) for r in rules] == [
        ("env_steps", ">=", 100, "max_steps", False), ("iterations", ">=", 3, "max_iterations", False),
        ("episodes", ">=", 5, "max_episodes", False), ("mean_return", ">=", 475, "target_return", True)]


@pytest.mark.parametrize("key, value", [("stochastic", "yes"), ("realtime", 1), ("video_format", "avi"),
                                        ("video_dir", ""), ("max_steps", 0), ("target_return", "high")])
def test_play_settings_and_shorthands_are_validated(key, value):
    """A bad value of a registered run key is a bad_run_option (or non_finite_value) error, pointing at /run/KEY
    when the file holds it and at the --set argument when the command line gave it."""
    document = json.loads(CARTPOLE.read_text())
    document["run"][key] = value
    with pytest.raises(GraphError) as info:
        load_graph(document, registry=default_registry())
    (issue,) = info.value.errors
    assert issue.code in ("bad_run_option", "non_finite_value") and issue.where == f"/run/{key}"
    with pytest.raises(GraphError) as info:
        load_graph(CARTPOLE, [f"run.{key}={value!r}".replace("'", '"')] if isinstance(value, str) else
                   [f"run.{key}={value}"], registry=default_registry())
    (issue,) = info.value.errors
    assert issue.code in ("bad_run_option", "non_finite_value") and issue.where == f"--set run.{key}"
