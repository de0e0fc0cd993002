"""Env steps per second with env groups as Ray actors against worker processes, and one frame hop on each path.

The graph: env groups of Ant-v5 (env, OR, action and step nodes, 64 envs a group; ``graphs/ant_ppo.json``'s env,
agent and trainer, the trainer in async mode with throughput settings: 32-step horizons, 4 epochs of 1,024-sample
minibatches) and the trainer in the main process; the agents act in the parts, one in each serving its groups
(``--acting parts``, the default: RLlib's env runners act beside their envs, so what crosses to the main process
is the transitions, and the weights once an update), or one agent in the main process serves every group
(``--acting main``: ``placement_scaling.graph``'s pattern, an observation and an action cross a step). Ant's
contact dynamics make the env step the cost (about 0.37 ms of a core an env step on the 2026-12-03 machine, against
about 65 us of acting, collecting and the learner's update), so the measurement is how stepping scales. Every part
holds two groups, so it steps one while the other waits for its actions (Sample Factory's
double-buffered workers); layouts: 1 part (2 groups) and 2 parts (4 groups, twice the envs: weak scaling, as Sample
Factory and RLlib report throughput against workers), each as Ray actors (``{"ray": {"num_cpus": 1}}``) and as
worker processes, the parts ``--nice`` levels below the main process (``workers.NAME.nice``, 10 by default, as
Sample Factory runs its rollout workers; 0 and 10 measured alike on 2 cores). Every measurement is ``dnne run`` in
its own process for ``--steps`` env steps a part, steps/s over summary.json's wall time, with the share of the wall
time each process was on a CPU; the Ray runs join one Ray started by this script (``--ray-address``), so Ray's own
start-up is not counted. The layouts (and niceness values, and where the agents act) run interleaved, ``--rounds``
times; the table gives each one's median.

The hop: 2,000 messages of a [64, 4] float32 tensor from the main process through a relay node in one worker and
back (two crossings a message), the worker a Ray actor or a process, interleaved; messages/s from the 100th
message to the last (start-up left out).

Usage: python benchmarks/ray_scaling.py [--steps 32768] [--rounds 5] [--nice 0 10] [--acting parts main]
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


GROUPS_PER_PART = 2
ENVS_PER_GROUP = 64
TRAINER = {"horizon_length": 32, "epochs": 4, "minibatch_size": 1024, "mode": "async", "lead": 3}
ACTING = ("env", "or", "action", "step")


def graph(parts: int, on_ray: bool, nice: int, acting: str = "main") -> dict[str, Any]:
    """The Ant graph with ``parts`` parts of two env groups each, Ray actors or processes, ``nice`` levels below
    the main process; one agent in the main process (``acting`` main) or one in each part, serving its groups
    (``parts``)."""
    document = four_group_graph(0)
    ant = json.loads((REPO / "graphs" / "ant_ppo.json").read_text())["nodes"]
    groups = range(1, GROUPS_PER_PART * parts + 1)
    unused = [f"{node}{i}" for i in range(len(groups) + 1, 5) for node in ACTING]
    for name in unused:
        del document["nodes"][name]
    document["links"] = [link for link in document["links"] if not any(name in json.dumps(link) for name in unused)]
    for i in groups:
        document["nodes"][f"env{i}"]["params"] = dict(ant["env"]["params"], num_envs=ENVS_PER_GROUP)
    document["nodes"]["agent"] = ant["agent"]
    document["nodes"]["trainer"] = {"type": "PPOTrainerNode", "params": dict(ant["trainer"]["params"], **TRAINER)}
    document["placement"] = {f"{node}{i}": f"w{(i - 1) // GROUPS_PER_PART}" for i in groups for node in ACTING}
    document["workers"] = {f"w{k}": ({"ray": {"num_cpus": 1}} if on_ray else {}) | {"nice": nice}
                           for k in range(parts)}
    return local_acting(document, parts) if acting == "parts" else document


def local_acting(document: dict[str, Any], parts: int) -> dict[str, Any]:
    """``document`` with its agent replaced by one agent in each part (``agent1``, ...), serving that part's
    groups, as RLlib's env runners act beside their envs: what crosses to the main process is the transitions,
    and the weights once an update. The first agent sends the trainer its model (and takes the weights on the
    reply link); the others take the trainer's weights through their own links, which keep the newest (``latest``),
    as the reply link does, so the trainer never waits on an agent."""
    agent = document["nodes"].pop("agent")
    links = []
    for link in document["links"]:
        text = json.dumps(link)
        part = next((k for k in range(parts) for i in range(k * GROUPS_PER_PART + 1, (k + 1) * GROUPS_PER_PART + 1)
                     if f'"or{i}.' in text or f'"or{i}"' in text or f'"action{i}.' in text), 0)
        links.append(json.loads(text.replace('"agent.', f'"agent{part + 1}.')))
    for k in range(parts):
        name = f"agent{k + 1}"
        document["nodes"][name] = agent
        document["placement"][name] = f"w{k}"
        if k:
            links += [[f"{name}.policy_output", "trainer.policy_outputs"],
                      {"from": "trainer.weights", "to": f"{name}.weights", "policy": "latest"}]
    document["links"] = links
    return document


def measure(parts: int, on_ray: bool, nice: int, acting: str, steps: int, address: str) -> tuple[float, list[float]]:
    """Env steps per second of one ``dnne run`` of ``steps`` env steps a part, and each process's CPU share."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "graph.json"
        path.write_text(json.dumps(graph(parts, on_ray, nice, acting)))
        command = [sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--max-steps", str(steps * parts),
                   "--run-dir", str(Path(tmp) / "run"), "-q"]
        if on_ray:
            command += ["--ray-address", address]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads((Path(tmp) / "run" / "summary.json").read_text())
    wall = summary["wall_time_s"]
    workers = (summary.get("placement") or {}).get("workers", {})
    return summary["env_steps"] / wall, [summary["cpu_s"] / wall] + [w["cpu_s"] / wall for w in workers.values()]


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
    parser.add_argument("--steps", type=int, default=32_768, help="env steps a part")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--nice", type=int, nargs="+", default=[10],
                        help="the parts' workers.NAME.nice; several values are measured interleaved")
    parser.add_argument("--acting", nargs="+", default=["parts"], choices=("parts", "main"),
                        help="where the agents act: one in each part (beside its envs) or one in the main process; "
                        "several values are measured interleaved")
    args = parser.parse_args()
    import ray

    ray.init(address="local", num_cpus=4, include_dashboard=False, configure_logging=False)
    address = ray.get_runtime_context().gcs_address
    print(f"machine: {machine()}\n")
    layouts = [(parts, on_ray, nice, acting) for acting in args.acting for nice in args.nice
               for on_ray in (True, False) for parts in (1, 2)]
    rates: dict[tuple[int, bool, int, str], list[float]] = {layout: [] for layout in layouts}
    shares: dict[tuple[int, bool, int, str], list[list[float]]] = {layout: [] for layout in layouts}
    hops: dict[bool, list[float]] = {True: [], False: []}
    for _ in range(args.rounds):
        for layout in layouts:
            rate, cpu = measure(*layout, args.steps, address)
            rates[layout].append(rate)
            shares[layout].append(cpu)
        for on_ray in (True, False):
            hops[on_ray].append(hop(on_ray))
    median = {layout: statistics.median(values) for layout, values in rates.items()}
    for nice, acting in ((nice, acting) for acting in args.acting for nice in args.nice):
        print(f"\nparts at nice {nice}, acting in {'each part' if acting == 'parts' else 'the main process'}:\n")
        print("| layout | Ray actors: env steps/s | worker processes: env steps/s | Ray / processes |")
        print("|---|---|---|---|")
        for parts in (1, 2):
            print(f"| {parts} part{'s' if parts > 1 else ''} ({GROUPS_PER_PART * parts} groups) | "
                  f"{median[(parts, True, nice, acting)]:,.0f} | {median[(parts, False, nice, acting)]:,.0f} | "
                  f"{median[(parts, True, nice, acting)] / median[(parts, False, nice, acting)]:.2f} |")
        paired = {on_ray: [two / one for one, two in zip(rates[(1, on_ray, nice, acting)],
                                                         rates[(2, on_ray, nice, acting)])]
                  for on_ray in (True, False)}
        print(f"\n2 parts / 1 part, median of the rounds' ratios (each round's two runs back to back): Ray "
              f"{statistics.median(paired[True]):.2f}x {[round(r, 2) for r in paired[True]]}, processes "
              f"{statistics.median(paired[False]):.2f}x {[round(r, 2) for r in paired[False]]}; of the medians: "
              f"Ray {median[(2, True, nice, acting)] / median[(1, True, nice, acting)]:.2f}x, "
              f"processes {median[(2, False, nice, acting)] / median[(1, False, nice, acting)]:.2f}x")
    for layout in layouts:
        parts, on_ray, nice, acting = layout
        print(f"rounds, {parts} part(s) on {'Ray' if on_ray else 'processes'} at nice {nice}, acting in {acting}: "
              f"{[round(v) for v in rates[layout]]} env steps/s; on a CPU (main, parts): "
              f"{[[round(share, 2) for share in cpu] for cpu in shares[layout]]}")
    ray_hop, process_hop = statistics.median(hops[True]), statistics.median(hops[False])
    print(f"\nhop (messages/s, main -> relay -> main): Ray actor {ray_hop:,.0f}, worker process {process_hop:,.0f} "
          f"({ray_hop / process_hop:.2f}x); rounds Ray {[round(v) for v in hops[True]]}, "
          f"process {[round(v) for v in hops[False]]}")
    print("load average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    ray.shutdown()


if __name__ == "__main__":
    main()
