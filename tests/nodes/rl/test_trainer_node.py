"""PPOTrainerNode in a graph: stamp alignment, one trigger per transition, NaN losses."""
from __future__ import annotations

import asyncio
import json
import math
import threading
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.learner import Learner
from dnne.nodes.rl.trainer_node import PPOTrainerNode
from dnne.nodes.types import ActingRule, Dones, ModelSpec, PolicyOutput
from dnne.runtime import Input, Node, Output, Param, default_registry, load_graph
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.runner import GraphRun
from dnne.runtime.testing import run_node_sync
from dnne.runtime.types import Token

ROOT = Path(__file__).resolve().parents[3]
N = 3


def transitions(count: int) -> dict[str, list[Any]]:
    """Trainer inputs for ``count`` transitions of 3 envs with a 4-d observation."""
    torch.manual_seed(0)
    model = ActorCritic(4, 2, (8,), "tanh", "discrete")
    observations = [torch.randn(N, 4) for _ in range(count + 1)]
    outputs = []
    for obs in observations[:-1]:
        act = model.act(obs)
        outputs.append(PolicyOutput(act.action, act.value, act.log_prob, act.params, act.observation, 0))
    no = torch.zeros(N, dtype=torch.bool)
    return {
        "policy_outputs": outputs,
        "states": observations[1:],
        "rewards": [torch.ones(N) for _ in range(count)],
        "dones": [Dones(no, no, obs) for obs in observations[1:]],
        "model": [ModelSpec(model.architecture, model.state_dict(), 1e-3)],
    }


class TestAlignment:
    def test_one_trigger_per_transition(self) -> None:
        """Aligned inputs (policy output k with step outputs k + 1) give one training_complete per transition,
        stamped k + 1."""
        out = run_node_sync("PPOTrainerNode", transitions(5), {"horizon_length": 16})
        assert out["training_complete"] == [Token("transition")] * 5

    def test_misaligned_reward_is_an_error(self) -> None:
        """A reward one step late is refused with an error naming the late input and the observations of both
        sides, never paired silently."""
        inputs = transitions(4)
        stamps = {"rewards": [2, 3, 4, 5], "states": [1, 2, 3, 4], "dones": [1, 2, 3, 4]}
        with pytest.raises(RuntimeError, match="out of step") as caught:
            run_node_sync("PPOTrainerNode", inputs, {"horizon_length": 16}, stamps=stamps)
        message = str(caught.value)
        assert "input 'rewards' holds step 1" in message and "holds step 0" in message

    def test_update_at_horizon_end(self) -> None:
        """At a horizon end the trainer updates once and reports every loss term, its time and the lag (0 in sync);
        the weights it publishes after the update differ from the model's (checked in TestPublishedWeights)."""
        out = run_node_sync("PPOTrainerNode", transitions(4), {"horizon_length": 4, "epochs": 2,
                                                               "minibatch_size": 6})
        (info,) = out["loss_info"]
        assert info["iteration"] == 1 and info["minibatches"] == 4
        for key in ("policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
                    "learning_rate", "update_time_s", "lag_mean", "lag_max"):
            assert math.isfinite(info[key]), key
        assert info["update_time_s"] > 0 and info["lag_mean"] == info["lag_max"] == 0
        assert torch.isfinite(out["loss"][0])


class TestPublishedWeights:
    def test_version_0_then_one_per_update(self) -> None:
        """The trainer publishes the model's own weights as version 0 before any update, then version 1 after the
        first update, each with the sync acting rule (its horizon, no lag allowed)."""
        inputs = transitions(4)
        (spec,) = inputs["model"]
        out = run_node_sync("PPOTrainerNode", inputs, {"horizon_length": 4, "epochs": 2, "minibatch_size": 6})
        first, second = out["weights"]
        assert (first.version, second.version) == (0, 1)
        assert all(torch.equal(first.parameters[k], v) for k, v in spec.weights.items())
        assert not all(torch.equal(second.parameters[k], v) for k, v in spec.weights.items())
        assert first.rule == second.rule == ActingRule(first_version=0, horizon=4, max_lag=0)


class PoisonRewards(Node):
    """Passes rewards on; from firing ``after`` on (or only during ``count`` firings) they are NaN."""

    rewards = Input("Tensor", offset=1)
    out = Output("Tensor", offset=1)
    after = Param(int, 64, ge=0, le=1_000_000)
    count = Param(int, 1_000_000, ge=1, le=1_000_000)

    async def compute(self, rewards: torch.Tensor) -> Mapping[str, Any]:
        if self.after < self.firings <= self.after + self.count:
            return {"out": torch.full_like(rewards, float("nan"))}
        return {"out": rewards}


def poisoned_run(tmp_path: Path, after: int, count: int) -> tuple[Any, GraphRun]:
    """The Cartpole graph with poisoned rewards, a run directory checkpointing every iteration."""
    document = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())  # 8 envs x 32 steps
    document["nodes"]["poison"] = {"type": "PoisonRewards", "params": {"after": after, "count": count}}
    document["links"].remove(["step.rewards", "trainer.rewards"])
    document["links"] += [["step.rewards", "poison.rewards"], ["poison.out", "trainer.rewards"]]
    document["run"].update(target_return=None, max_iterations=8)
    registry = default_registry()
    registry.add_node(PoisonRewards)
    graph = load_graph(document, registry=registry)
    graph_run = GraphRun(graph, registry, run_dir=tmp_path, hooks=[RunDirectory(tmp_path, checkpoint_every=1)])
    return asyncio.run(graph_run.execute()), graph_run


class TestNaNLosses:
    def test_transient_nan_skips_the_update_and_goes_on(self, tmp_path: Path) -> None:
        """One rollout with NaN rewards: its update is skipped and reported, training then goes on to the end."""
        result, _ = poisoned_run(tmp_path, after=64, count=32)
        assert result.error is None and result.stop_reason == "max_iterations"
        assert any("update 3 skipped" in w for w in result.warnings)
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert rows[2]["minibatches"] == 0 and rows[2]["nan_skipped"] > 0 and rows[3]["minibatches"] > 0

    def test_persistent_nan_stops_with_last_good_checkpoint(self, tmp_path: Path) -> None:
        """NaN rewards from iteration 3 on: three skipped updates stop the run (failed, FloatingPointError); no
        checkpoint is written after the failure and the learner's weights in the last one are those of iteration 2."""
        result, _ = poisoned_run(tmp_path, after=64, count=1_000_000)
        assert result.stop_reason == "failed" and isinstance(result.error.cause, FloatingPointError)
        assert result.error.node_id == "trainer"
        saved = sorted((tmp_path / "checkpoints").glob("ckpt-*.pt"))
        assert saved[-1].name == "ckpt-00000004.pt"
        last = torch.load(saved[-1], weights_only=True)["nodes"]["trainer"]["learner"]
        second_path = tmp_path / "checkpoints" / "ckpt-00000002.pt"
        second = torch.load(second_path, weights_only=True)["nodes"]["trainer"]["learner"]
        assert all(torch.equal(last[k], second[k]) for k in last)
        assert all(torch.isfinite(v).all() for v in last.values())
        assert json.loads((tmp_path / "summary.json").read_text())["stop_reason"] == "failed"


class TestCheckpointThread:
    @pytest.mark.parametrize("mode", ["sync", "async"])
    def test_the_learner_s_state_is_copied_off_its_thread_only_while_no_update_runs(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str) -> None:
        """Checkpointing every iteration: a copy taken on the event loop's thread never overlaps an update (it
        would tear the weights); while one runs (async with two versions of staleness: an iteration ends while the
        next update is already running, which here waits until the copy is asked for) the copy is made on the
        learner's thread, after it. In sync mode no update runs when an iteration ends, so every copy is taken on
        the loop's thread."""
        training, asked = threading.Event(), threading.Event()
        calls: list[tuple[str, bool]] = []
        train, state_dict, updating = Learner.train, Learner.state_dict, PPOTrainerNode._updating
        started = []

        def gated_train(self: Learner, *args: Any) -> Any:
            training.set()
            try:
                if started and mode == "async":
                    asked.wait(timeout=2.0)  # the previous iteration's copy, asked for while this update runs
                started.append(True)
                asked.clear()
                return train(self, *args)
            finally:
                training.clear()

        def recorded(self: Learner) -> dict[str, Any]:
            calls.append((threading.current_thread().name, training.is_set()))
            return state_dict(self)

        def watched(self: PPOTrainerNode) -> bool:
            running = updating(self)
            if running:
                asked.set()
            return running

        monkeypatch.setattr(Learner, "train", gated_train)
        monkeypatch.setattr(Learner, "state_dict", recorded)
        monkeypatch.setattr(PPOTrainerNode, "_updating", watched)
        document = json.loads((ROOT / "graphs" / "presets" / "cartpole_zoo.json").read_text())
        document["nodes"]["trainer"]["params"].update(mode=mode, max_staleness=2 if mode == "async" else 1)
        document["run"].update(target_return=None, max_iterations=8)
        registry = default_registry()
        graph_run = GraphRun(load_graph(document, registry=registry), registry, run_dir=tmp_path,
                             hooks=[RunDirectory(tmp_path, checkpoint_every=1)])
        result = asyncio.run(graph_run.execute())
        assert result.error is None and len(calls) >= 8
        on_learner = [overlapped for name, overlapped in calls if name.startswith("dnne-learner-")]
        on_loop = [overlapped for name, overlapped in calls if not name.startswith("dnne-learner-")]
        assert not any(on_loop) and not any(on_learner)  # never beside a running update
        assert (len(on_learner) >= 5) if mode == "async" else (len(on_learner) == 0), calls

    def test_an_update_whose_await_was_cancelled_counts_as_running_until_its_thread_returns(self) -> None:
        """A stop cancels the task awaiting an async update, which marks the loop's future done while the learner's
        thread still trains; the trainer keeps treating it as running (a copy then queues behind it) until the
        thread has returned."""
        release = threading.Event()
        trainer = SimpleNamespace(learner=SimpleNamespace(train=lambda rollout, lag: release.wait(5.0)),
                                  executor=ThreadPoolExecutor(1), rule=SimpleNamespace(max_lag=1), submitted=[])

        async def cancel_then_release() -> tuple[bool, bool, bool]:
            awaited = PPOTrainerNode._submit(trainer, [])  # type: ignore[arg-type]
            awaited.cancel()
            await asyncio.sleep(0.01)
            during = PPOTrainerNode._updating(trainer)  # type: ignore[arg-type]
            release.set()
            await asyncio.sleep(0.05)
            return awaited.done(), during, PPOTrainerNode._updating(trainer)  # type: ignore[arg-type]

        try:
            done, during, after = asyncio.run(cancel_then_release())
        finally:
            release.set()
            trainer.executor.shutdown(wait=True)
        assert done and during and not after
