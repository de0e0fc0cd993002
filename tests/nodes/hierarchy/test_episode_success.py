"""EpisodeSuccessNode: success rates per interval of env steps, against counts done by hand."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
import torch

from dnne.runtime import Graph, Node, Output, default_registry, load_graph
from dnne.runtime.runner import GraphRun

NUM_ENVS = 10
# (returns of the episodes that end after each step); 10 env steps per step
STEPS = [[1.0], [], [0.0, 1.0, 1.0], [0.5], [], [0.0], [], [], [2.0, 0.99], [1.0]]


class InfoSource(Node):
    """A stand-in step node: adds NUM_ENVS env steps, sends that step's info, and lets it be taken before the next
    step (a real step node waits for the trainer's trigger)."""

    info = Output("Dict")

    async def run(self) -> None:
        for k, returns in enumerate(STEPS):
            self.ctx.counters.add("env_steps", NUM_ENVS)
            await self.emit("info", {"episode_returns": torch.tensor(returns), "episode_lengths":
                                     torch.ones(len(returns), dtype=torch.long)}, stamp=k + 1)
            await asyncio.sleep(0.01)


def run_success(params: dict[str, Any]) -> tuple[list[dict[str, float]], GraphRun]:
    registry = default_registry()
    registry.add_node(InfoSource)
    graph = Graph().add("source", "InfoSource").add("success", "EpisodeSuccessNode", **params)
    graph.link("source.info", "success.info")
    graph.run = {"timeout": 30}
    graph_run = GraphRun(load_graph(graph, registry=registry), registry)
    rows: list[dict[str, float]] = []
    graph_run.context.metric_sinks.append(lambda node_id, values: rows.append(dict(values)))
    result = asyncio.run(graph_run.execute())
    assert result.error is None, result.error
    return rows, graph_run


def test_rows_per_interval_count_returns_at_the_threshold() -> None:
    """interval 30: rows at 30, 60 and 90 env steps; the episodes that ended since the previous row, a return of at
    least 1 a success; the step at 70-80 ends nothing and records nothing; the counter holds the last rate."""
    rows, graph_run = run_success({"interval": 30})
    assert [(row["success_rate"], row["success_episodes"]) for row in rows] == [
        (pytest.approx(3 / 4), 4), (pytest.approx(0 / 2), 2), (pytest.approx(1 / 2), 2)]
    assert graph_run.counters.get("success_rate") == pytest.approx(0.5)


def test_threshold_and_a_row_skipped_when_no_episode_ended() -> None:
    """interval 20 with threshold 0.5: a return of 0.5 counts, the 40-60 interval ends one episode (0.0), 60-80
    none (no row), 80-100 three (2.0, 0.99 and 1.0)."""
    rows, _ = run_success({"interval": 20, "threshold": 0.5})
    assert [(row["success_rate"], row["success_episodes"]) for row in rows] == [
        (pytest.approx(1 / 1), 1), (pytest.approx(3 / 4), 4), (pytest.approx(0 / 1), 1), (pytest.approx(3 / 3), 3)]


def test_info_without_returns_is_an_error() -> None:
    """A Dict without episode_returns (a trainer's loss_info linked by mistake) stops the run with a clear cause."""
    class BadSource(Node):
        info = Output("Dict")

        async def run(self) -> None:
            await self.emit("info", {"policy_loss": 0.1}, stamp=1)

    registry = default_registry()
    registry.add_node(BadSource)
    graph = Graph().add("source", "BadSource").add("success", "EpisodeSuccessNode")
    graph.link("source.info", "success.info")
    graph.run = {"timeout": 30}
    result = asyncio.run(GraphRun(load_graph(graph, registry=registry), registry).execute())
    assert result.error is not None and "episode_returns" in str(result.error)
