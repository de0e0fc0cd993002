"""The Cartpole PPO graph with its env group (env, or, action, step) in a worker process solves like the
one-process graph: with the same seed, the same number of env steps and updates (the split runs deterministically)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun

CARTPOLE = Path(__file__).parents[3] / "graphs" / "cartpole_ppo.json"


def solve(placed: bool):
    document = json.loads(CARTPOLE.read_text())
    if placed:
        document["placement"] = {node_id: "envs" for node_id in ("env", "or", "action", "step")}
    registry = default_registry()
    run = GraphRun(load_graph(document, registry=registry), registry)
    return asyncio.run(run.execute())


@pytest.mark.slow
def test_placed_cartpole_solves_like_the_one_process_graph():
    alone, placed = solve(placed=False), solve(placed=True)
    assert placed.stop_reason == "target_return" and placed.solved, placed.error
    assert placed.counters["env_steps"] == alone.counters["env_steps"]
    assert placed.counters["iterations"] == alone.counters["iterations"]
    assert placed.counters["best_mean_return"] == alone.counters["best_mean_return"]
    crossing = placed.channels["step.dones -> trainer.dones"]
    assert crossing["messages"] == alone.channels["step.dones -> trainer.dones"]["messages"]
    assert set(placed.nodes) == set(alone.nodes)
