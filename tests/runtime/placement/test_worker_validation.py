"""A worker validates its part of a split graph against the whole graph's run section: its part's own run section
holds no stop conditions, so a check that needs the run's length (a linear learning-rate schedule) would refuse a
good graph there."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun

CARTPOLE = Path(__file__).resolve().parents[3] / "graphs" / "cartpole_ppo.json"


@pytest.mark.slow
@pytest.mark.nodes
def test_a_linear_schedule_in_a_worker_runs() -> None:
    """The Cartpole graph (linear schedule, run length max_steps) with its trainer in a worker loads there and
    trains to its length."""
    document = json.loads(CARTPOLE.read_text())
    document["placement"], document["workers"] = {"trainer": "learner"}, {"learner": {}}
    document["run"].update(max_steps=1024, target_return=None, timeout=None)
    registry = default_registry()
    run = GraphRun(load_graph(document, registry=registry), registry)
    result = asyncio.run(asyncio.wait_for(run.execute(), 300))
    assert result.error is None and result.stop_reason == "max_steps"
