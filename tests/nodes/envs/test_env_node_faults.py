"""Env faults inside a running graph: each stops the graph cleanly with an error naming the node."""
from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch

from dnne.runtime import GraphError, Input, Node, Output, Param, default_registry, load_graph
from dnne.runtime.runner import GraphRun, RunResult

ROOT = Path(__file__).resolve().parents[3]


class SpoilActions(Node):
    """Passes actions on, spoiling them from firing ``after`` on: NaN, a wrong shape or a wrong dtype."""

    action = Input("Tensor")
    spoiled = Output("Tensor")
    how = Param(str, "nan", choices=("nan", "shape", "dtype"))
    after = Param(int, 3, ge=0, le=1_000_000)

    async def compute(self, action: torch.Tensor) -> Mapping[str, Any]:
        if self.firings <= self.after:
            return {"spoiled": action}
        if self.how == "nan":
            return {"spoiled": torch.full(action.shape, float("nan"))}
        if self.how == "shape":
            return {"spoiled": action[:-1]}
        return {"spoiled": action.float() + 0.5}


class KillWorker(Node):
    """Kills one subprocess of an async Gymnasium env after a few steps (through the env handle)."""

    env_handle = Input("EnvHandle")
    action = Input("Tensor")
    passed = Output("Tensor")

    async def compute(self, env_handle: Any, action: torch.Tensor) -> Mapping[str, Any]:
        if self.firings == 3:
            env_handle.env._env.processes[0].kill()
            env_handle.env._env.processes[0].join()
        return {"passed": action}


def graph_with(node_type: str, params: dict[str, Any], env: dict[str, Any] | None = None,
               handle: bool = False, name: str = "cartpole_ppo.json") -> dict[str, Any]:
    """A shipped graph with a node between the action node and the step node."""
    graph = json.loads((ROOT / "graphs" / name).read_text())
    graph["nodes"]["fault"] = {"type": node_type, "params": params}
    graph["links"].remove(["action.action", "step.actions"])
    graph["links"] += [["action.action", "fault.action"], [f"fault.{'passed' if handle else 'spoiled'}",
                                                            "step.actions"]]
    if handle:
        graph["links"].append(["env.env_handle", "fault.env_handle"])
    if env:
        graph["nodes"]["env"]["params"].update(env)
    graph["run"].update(target_return=None, max_steps=100_000, timeout="60s")
    return graph


def run_graph(document: dict[str, Any]) -> tuple[RunResult, GraphRun]:
    """Run a graph document with the fault nodes registered."""
    registry = default_registry()
    registry.add_node(SpoilActions)
    registry.add_node(KillWorker)
    graph_run = GraphRun(load_graph(document, registry=registry), registry)
    return asyncio.run(graph_run.execute()), graph_run


class TestEnvFaults:
    @pytest.mark.parametrize("how, text, name", [("nan", "NaN", "pendulum_ppo.json"),
                                                  ("shape", "shape", "cartpole_ppo.json"),
                                                  ("dtype", "dtype", "cartpole_ppo.json")])
    def test_bad_actions_stop_the_graph(self, how: str, text: str, name: str) -> None:
        """NaN, wrongly shaped or wrongly typed actions fail the step node with a message saying so, and the env
        takes no step after them."""
        document = graph_with("SpoilActions", {"how": how, "after": 3}, name=name)
        result, _ = run_graph(document)
        assert result.stop_reason == "failed"
        assert result.error is not None and result.error.node_id == "step"
        assert text.lower() in str(result.error.cause).lower()
        assert result.counters["env_steps"] == 3 * document["nodes"]["env"]["params"]["num_envs"]

    def test_dead_env_subprocess_stops_the_graph(self) -> None:
        """A Gymnasium async env whose worker process dies fails the step node with an error naming the task."""
        document = graph_with("KillWorker", {}, {"backend": "gymnasium", "task": "CartPole-v1", "num_envs": 2,
                                                    "vectorization": "async"}, handle=True)
        result, _ = run_graph(document)
        assert result.stop_reason == "failed"
        assert result.error is not None and result.error.node_id == "step"
        assert "CartPole-v1" in str(result.error.cause)

    def test_unknown_task_is_a_setup_error(self) -> None:
        """An unknown built-in task fails the env node at setup with the valid names listed."""
        document = json.loads((ROOT / "graphs" / "cartpole_ppo.json").read_text())
        document["nodes"]["env"]["params"]["task"] = "Nope"
        result, _ = run_graph(document)
        assert result.error is not None and result.error.node_id == "env" and result.error.phase == "setup"
        assert "Cartpole" in str(result.error.cause)

    def test_unknown_backend_is_a_validation_error(self) -> None:
        """An unknown backend is refused before anything runs (value_not_in_choices on env.backend)."""
        document = json.loads((ROOT / "graphs" / "cartpole_ppo.json").read_text())
        document["nodes"]["env"]["params"]["backend"] = "nope"
        with pytest.raises(GraphError) as caught:
            load_graph(document)
        assert [(i.code, i.node, i.field) for i in caught.value.errors] == [("value_not_in_choices", "env", "backend")]
