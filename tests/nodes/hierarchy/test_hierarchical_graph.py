"""graphs/hierarchical_ppo.json: stamps and sync gating of both levels, and learning with seed 1."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dnne.nodes.types import PolicyOutput
from dnne.runtime import Input, Node, default_registry, load_graph
from dnne.runtime.cli import main
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[3]
GRAPH = ROOT / "graphs" / "hierarchical_ppo.json"
RANDOM_RETURN = 3.4  # uniform random actions on the graph's task, 3,072 episodes (benchmarks/point_mass_nav.py)


pytestmark = pytest.mark.usefixtures("one_thread")  # as ``dnne run`` does (tests/nodes/conftest.py)


class VersionProbe(Node):
    """Records (stamp, policy version, batch size) of every policy output it sees."""

    policy_output = Input("PolicyOutput")

    async def compute(self, policy_output: PolicyOutput) -> None:
        self.ctx.shared("probes", dict).setdefault(self.id, []).append(
            (self.stamp, policy_output.version, policy_output.action.shape[0]))


def test_stamps_and_sync_gating_of_both_levels() -> None:
    """The high level acts on high-level indices j and the low level on env indices k, each in sync mode: output j
    (k) comes from version j // its horizon (k // its horizon). No join disagrees on stamps, so every trainer's
    transition pairs the decision with the rewards that followed it."""
    document = load_graph(GRAPH, registry=default_registry()).to_native()  # its groups expanded
    document["nodes"]["high_probe"] = {"type": "VersionProbe"}
    document["nodes"]["low_probe"] = {"type": "VersionProbe"}
    document["links"] += [["high_agent.policy_output", "high_probe.policy_output"],
                          ["low_agent.policy_output", "low_probe.policy_output"]]
    interval = document["nodes"]["high_step"]["params"]["interval"]
    high_horizon = document["nodes"]["high_trainer"]["params"]["horizon_length"]
    low_horizon = document["nodes"]["low_trainer"]["params"]["horizon_length"]
    num_envs = document["nodes"]["env"]["params"]["num_envs"]
    document["run"].update(max_steps=num_envs * interval * high_horizon * 3, target_return=None, timeout="2m")
    registry = default_registry()
    registry.add_node(VersionProbe)
    graph_run = GraphRun(load_graph(document, registry=registry), registry)
    result = asyncio.run(graph_run.execute())
    assert result.error is None, result.error
    assert result.stop_reason == "max_steps"
    probes = graph_run.context.shared("probes", dict)
    high, low = probes["high_probe"], probes["low_probe"]
    assert [stamp for stamp, _, _ in high] == list(range(len(high)))
    assert [stamp for stamp, _, _ in low] == list(range(len(low)))
    assert len(high) - 1 == (len(low) - 1) // interval  # one high-level decision per interval env steps
    assert all(version == stamp // high_horizon for stamp, version, _ in high)
    assert all(version == stamp // low_horizon for stamp, version, _ in low)
    assert max(version for _, version, _ in high) >= 2
    assert {size for _, _, size in high + low} == {num_envs}


@pytest.mark.slow  # a 192k-step training run (about 30 s): CI's slow step
def test_solves_with_seed_1(tmp_path: Path) -> None:
    """``dnne run graphs/hierarchical_ppo.json --seed 1`` reaches run.target_return (far above a random policy's
    mean return) within the file's own 5-minute timeout."""
    target = json.loads(GRAPH.read_text())["run"]["target_return"]
    assert target > RANDOM_RETURN + 50
    code = main(["run", str(GRAPH), "--run-dir", str(tmp_path), "-q", "--seed", "1", "--threads", "1"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["error"] is None, summary["error"]
    assert code == 0
    assert summary["stop_reason"] == "target_return" and summary["solved"]
    assert summary["best_mean_return"] >= target
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines() if line.strip()]
    updates = {row["node"] for row in rows if "policy_loss" in row}
    assert updates == {"high_trainer", "low_trainer"}  # both levels learned
