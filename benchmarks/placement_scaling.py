"""Env steps per second of a multi-group MuJoCo PPO graph: one process against 1, 2 and 4 worker processes.

The graph has four HalfCheetah-v5 env groups (env, OR, action and step nodes each, 4 envs a group) feeding one agent
and one trainer (the pattern of graphs/multi_env_ppo.json, with graphs/halfcheetah_ppo.json's agent and trainer).
Placements: everything in the main process; all groups in 1 worker; 2 workers of 2 groups; 4 workers of 1 group.
Each is `dnne run` in its own process for the same env-step budget; steps/s are env steps over the training wall
time of summary.json (worker start-up included, interpreter start-up not).

Usage: python benchmarks/placement_scaling.py [--steps 40000]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from common import REPO, machine

GROUPS = 4


def graph(workers: int) -> dict[str, Any]:
    """The four-group HalfCheetah graph, its groups spread over ``workers`` processes (0: one process)."""
    single = json.loads((REPO / "graphs" / "halfcheetah_ppo.json").read_text())
    agent, trainer = single["nodes"]["agent"], single["nodes"]["trainer"]
    nodes: dict[str, Any] = {"agent": agent, "trainer": trainer}
    links: list[Any] = [["agent.model", "trainer.model"], ["agent.policy_output", "trainer.policy_outputs"]]
    env = dict(single["nodes"]["env"]["params"], num_envs=4)
    for i in range(1, GROUPS + 1):
        nodes.update({f"env{i}": {"type": "EnvNode", "params": env}, f"or{i}": {"type": "ORNode"},
                      f"action{i}": single["nodes"]["action"], f"step{i}": {"type": "StepNode"}})
        links += [[f"env{i}.observations", f"or{i}.input_a"], [f"step{i}.observations", f"or{i}.input_b"],
                  [f"or{i}.output", "agent.observations"],
                  {"from": "agent.policy_output", "to": f"action{i}.policy", "route": f"or{i}"},
                  [f"env{i}.env_handle", f"action{i}.env_handle"], [f"env{i}.env_handle", f"step{i}.env_handle"],
                  [f"action{i}.action", f"step{i}.actions"], [f"step{i}.observations", "trainer.states"],
                  [f"step{i}.rewards", "trainer.rewards"], [f"step{i}.dones", "trainer.dones"],
                  {"from": "trainer.training_complete", "to": f"step{i}.trigger", "route": f"or{i}"}]
    document: dict[str, Any] = {"format": "dnne-graph", "version": 1, "nodes": nodes, "links": links,
                                "run": {"seed": 1, "device": "cpu", "target_return": None}}
    if workers:
        document["placement"] = {f"{n}{i}": f"w{(i - 1) * workers // GROUPS}" for i in range(1, GROUPS + 1)
                                 for n in ("env", "or", "action", "step")}
    return document


def measure(workers: int, steps: int) -> float:
    """Env steps per second of one run."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.json"
        path.write_text(json.dumps(graph(workers)))
        done = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--max-steps", str(steps),
                               "--run-dir", str(Path(tmp) / "run"), "-q"], capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    return summary["env_steps"] / summary["wall_time_s"]


def main() -> None:
    """Measure every placement and print a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40_000)
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    rates = {workers: measure(workers, args.steps) for workers in (0, 1, 2, 4)}
    print("| placement | env steps/s | x one process |")
    print("|---|---|---|")
    for workers, rate in rates.items():
        label = "one process" if workers == 0 else f"{workers} worker process{'es' if workers > 1 else ''}"
        print(f"| {label} | {rate:,.0f} | {rate / rates[0]:.2f} |")


if __name__ == "__main__":
    main()
