"""Env steps per second with env groups as Ray actors against worker processes, and one frame hop on each path.

The graph: two HalfCheetah-v5 env groups (env, OR, action and step nodes, 4 envs a group; CPU-bound MuJoCo) feeding
one agent and one trainer in the main process (``placement_scaling.graph``'s pattern). Layouts: both groups in one
part, or one part per group; each layout as Ray actors (``{"ray": {"num_cpus": 1}}``) and as worker processes.
Every measurement is ``dnne run`` in its own process for the same env-step budget, steps/s over summary.json's wall
time; the Ray runs join one Ray started by this script (``--ray-address``), so Ray's own start-up is not counted.
The four layouts run interleaved, ``--rounds`` times; the table gives each one's median.

The hop: 2,000 messages of a [64, 4] float32 tensor from the main process through a relay node in one worker and
back (two crossings a message), the worker a Ray actor or a process, interleaved; messages/s from the 100th
message to the last (start-up left out).

Usage: python benchmarks/ray_scaling.py [--steps 20000] [--rounds 2]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import REPO, machine
from placement_scaling import graph as four_group_graph

TESTS = REPO / "tests" / "runtime"
WARM = 100
"""Hop messages left out of the timing (worker start-up, first frames)."""


def graph(parts: int, on_ray: bool) -> dict[str, Any]:
    """The two-group HalfCheetah graph with its groups in ``parts`` parts (1 or 2), Ray actors or processes."""
    document = four_group_graph(0)
    for i in (3, 4):  # two groups: one per core, the learner shares them
        for node in ("env", "or", "action", "step"):
            del document["nodes"][f"{node}{i}"]
    document["links"] = [link for link in document["links"]
                         if not any(f"{node}{i}" in json.dumps(link) for node in ("env", "or", "action", "step")
                                    for i in (3, 4))]
    document["placement"] = {f"{node}{i}": f"w{(i - 1) * parts // 2}" for i in (1, 2)
                             for node in ("env", "or", "action", "step")}
    document["workers"] = {f"w{k}": ({"ray": {"num_cpus": 1}} if on_ray else {}) for k in range(parts)}
    return document


def measure(parts: int, on_ray: bool, steps: int, address: str) -> float:
    """Env steps per second of one ``dnne run``."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.json"
        path.write_text(json.dumps(graph(parts, on_ray)))
        command = [sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--max-steps", str(steps),
                   "--run-dir", str(Path(tmp) / "run"), "-q"]
        if on_ray:
            command += ["--ray-address", address]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    return summary["env_steps"] / summary["wall_time_s"]


def hop(on_ray: bool, messages: int = 2000) -> float:
    """Messages per second through a relay in one worker (main -> worker -> main)."""
    sys.path[:0] = [str(TESTS / "placement"), str(TESTS)]
    from placement_nodes import placement_registry

    from dnne.runtime.graph import Graph
    from dnne.runtime.loading import load_graph
    from dnne.runtime.runner import GraphRun

    registry = placement_registry()
    g = (Graph().add("t", "Tensors", n=messages, rows=64).add("r", "Relay").add("s", "Sink")
         .link("t.out", "r.x").link("r.y", "s.x"))
    g.placement = {"r": "w"}
    g.workers = {"w": {"ray": {"num_cpus": 1}} if on_ray else {}}
    run = GraphRun(load_graph(g, registry=registry), registry)

    async def timed() -> float:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < WARM:
            await asyncio.sleep(0.001)
        start = time.perf_counter()
        while len(run.nodes["s"].received) < messages and not task.done():
            await asyncio.sleep(0.001)
        elapsed = time.perf_counter() - start
        result = await task
        assert result.stop_reason == "completed", result.error
        return (messages - WARM) / elapsed

    return asyncio.run(timed())


def main() -> None:
    """Measure interleaved and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
    address = ray.get_runtime_context().gcs_address
    print(f"machine: {machine()}\n")
    layouts = [(1, True), (2, True), (1, False), (2, False)]
    rates: dict[tuple[int, bool], list[float]] = {layout: [] for layout in layouts}
    hops: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for layout in layouts:
            rates[layout].append(measure(*layout, args.steps, address))
        for on_ray in (True, False):
            hops[on_ray].append(hop(on_ray))
    median = {layout: statistics.median(values) for layout, values in rates.items()}
    print("| layout | Ray actors: env steps/s | worker processes: env steps/s | Ray / processes |")
    print("|---|---|---|---|")
    for parts in (1, 2):
        print(f"| {parts} part{'s' if parts > 1 else ''} | {median[(parts, True)]:,.0f} | "
              f"{median[(parts, False)]:,.0f} | {median[(parts, True)] / median[(parts, False)]:.2f} |")
    print(f"\n2 parts / 1 part: Ray {median[(2, True)] / median[(1, True)]:.2f}x, "
          f"processes {median[(2, False)] / median[(1, False)]:.2f}x")
    for parts, on_ray in layouts:
        print(f"rounds, {parts} part(s) on {'Ray' if on_ray else 'processes'}: "
              f"{[round(v) for v in rates[(parts, on_ray)]]} env steps/s")
    ray_hop, process_hop = statistics.median(hops[True]), statistics.median(hops[False])
    print(f"\nhop (messages/s, main -> relay -> main): Ray actor {ray_hop:,.0f}, worker process {process_hop:,.0f} "
          f"({ray_hop / process_hop:.2f}x); rounds Ray {[round(v) for v in hops[True]]}, "
          f"process {[round(v) for v in hops[False]]}")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    ray.shutdown()


if __name__ == "__main__":
    main()
