"""Sync against async PPO on HalfCheetah: env steps per second, returns at equal env steps, where the time goes.

Three variants of one graph, each run `dnne run` in its own process for a fixed env-step budget, the variants
interleaved per seed (torch on one thread per process, as the CLI sets):

- `sync, one process`: `graphs/halfcheetah_async.json` without its `placement` section and in sync mode: the nodes
  and settings of `graphs/halfcheetah_ppo.json` in one process, on the async graph's 128 envs x 16 steps;
- `sync, learner process`: `graphs/halfcheetah_async.json` with `--set trainer.mode=sync` (the trainer in its own
  worker process, acting waits for every update);
- `async, learner process`: `graphs/halfcheetah_async.json` (acting goes on while the learner updates).

Steps per second are env steps over the training wall time in summary.json (start-up excluded); the return is the
mean of the last 20 episodes finished by the end of the budget (the graph's 128 envs end their 1,000-step episodes
together, so at 200k steps these are 20 of the 128 that ended at 128k). Per run, from summary.json and metrics.jsonl: `updating` is
the learner's time in updates (sum of `update_time_s`) over the wall time, `collecting` the trainer node's busy time
taking transitions in (its busy time less the updates it waited for in sync mode), `acting` the busy time of the
acting nodes (env, step, agent, action, or), each over the wall time; per process, the share of the wall time it
was on a CPU (`cpu_s`, the rest idle: waiting for the other process or the GIL-free parts of the other thread);
and the lag of the transitions the updates trained on.

Usage: python benchmarks/sync_vs_async.py [--steps 200000] [--seeds 1 2 3]
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, machine

ASYNC_GRAPH = REPO / "graphs" / "halfcheetah_async.json"
VARIANTS = {
    "sync, one process": ("one process", ("--set", "trainer.mode=sync")),
    "sync, learner process": ("placed", ("--set", "trainer.mode=sync")),
    "async, learner process": ("placed", ()),
}
ACTING = ("env", "or", "agent", "action", "step")


def run(graph: Path, extra: tuple[str, ...], seed: int, steps: int) -> dict[str, float]:
    """One training run: steps per second, final mean return, time shares and lag."""
    with tempfile.TemporaryDirectory() as tmp:
        done = subprocess.run(
            [sys.executable, "-m", "dnne.runtime.cli", "run", str(graph), "--seed", str(seed), "--max-steps",
             str(steps), "--set", "run.target_return=null", *extra, "--run-dir", tmp, "-q"],
            capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        summary = json.loads((Path(tmp) / "summary.json").read_text())
        rows = [json.loads(line) for line in (Path(tmp) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    updates = [row for row in rows if "update_time_s" in row]
    wall = summary["wall_time_s"]
    acting = sum(summary["nodes"][node]["busy_s"] for node in ACTING if node in summary["nodes"])
    updating = sum(row["update_time_s"] for row in updates)
    trainer = summary["nodes"]["trainer"]["busy_s"]
    learner = (summary.get("placement") or {}).get("workers", {}).get("learner")
    return {
        "steps_per_s": summary["env_steps"] / wall,
        "mean_return": summary["mean_return"],
        "updating": updating / wall,
        "collecting": max(trainer - (updating if "trainer.mode=sync" in extra else 0.0), 0.0) / wall,
        "acting": acting / wall,
        "main_cpu": summary["cpu_s"] / wall,
        "learner_cpu": None if learner is None else learner["cpu_s"] / wall,
        "lag_mean": statistics.fmean(row["lag_mean"] for row in updates) if updates else 0.0,
        "lag_max": max((row["lag_max"] for row in updates), default=0.0),
    }


def without_placement(graph: Path, folder: Path) -> Path:
    """A copy of ``graph`` in ``folder`` without its ``placement`` and ``workers``, the trainer's ``lead`` and the
    link capacities that serve it: the same graph in one process."""
    document = json.loads(graph.read_text())
    document.pop("placement", None)
    document.pop("workers", None)
    document["nodes"]["trainer"]["params"].pop("lead", None)
    document["links"] = [[link["from"], link["to"]] if isinstance(link, dict) else link for link in document["links"]]
    path = folder / f"{graph.stem}_one_process.json"
    path.write_text(json.dumps(document))
    return path


def main() -> None:
    """Run every seed in every variant and print markdown tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    args = parser.parse_args()
    print(f"machine: {machine()}\n")
    results: dict[str, list[dict[str, float]]] = {name: [] for name in VARIANTS}
    with tempfile.TemporaryDirectory() as folder:
        graphs = {"placed": ASYNC_GRAPH, "one process": without_placement(ASYNC_GRAPH, Path(folder))}
        for seed in args.seeds:
            for name, (layout, extra) in VARIANTS.items():
                results[name].append(run(graphs[layout], extra, seed, args.steps))
    print(f"| variant | env steps/s per seed | median | final mean_return per seed ({args.steps} steps) | "
          "learner updating | trainer collecting | acting busy | main process on CPU | learner process on CPU | "
          "lag mean / max |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rows in results.items():
        rates = ", ".join(f"{r['steps_per_s']:,.0f}" for r in rows)
        returns = ", ".join("-" if r["mean_return"] is None else f"{r['mean_return']:.0f}" for r in rows)
        median = statistics.median(r["steps_per_s"] for r in rows)
        shares = [statistics.fmean(r[key] for r in rows) for key in ("updating", "collecting", "acting", "main_cpu")]
        learner = "-" if rows[0]["learner_cpu"] is None else f"{statistics.fmean(r['learner_cpu'] for r in rows):.0%}"
        lag = f"{statistics.fmean(r['lag_mean'] for r in rows):.2f} / {max(r['lag_max'] for r in rows):.0f}"
        print(f"| {name} | {rates} | {median:,.0f} | {returns} | " + " | ".join(f"{x:.0%}" for x in shares) +
              f" | {learner} | {lag} |")
    medians = {name: statistics.median(r["steps_per_s"] for r in rows) for name, rows in results.items()}
    sync = results["sync, one process"]
    sync_returns = [r["mean_return"] for r in sync if r["mean_return"] is not None]
    low, high = (min(sync_returns), max(sync_returns)) if sync_returns else (float("nan"), float("nan"))
    inside = sum(r["mean_return"] is not None and low <= r["mean_return"] <= high
                 for r in results["async, learner process"])
    asynchronous = medians["async, learner process"]
    print(f"\nasync / sync (one process): {asynchronous / medians['sync, one process']:.2f}x; async / sync (learner "
          f"process): {asynchronous / medians['sync, learner process']:.2f}x (target >= 1.4x both); async final "
          f"returns inside the one-process sync seeds' range [{low:.0f}, {high:.0f}]: {inside}/{len(args.seeds)}")


if __name__ == "__main__":
    main()
