"""A host's 50 ms ticker while a Cartpole graph is set up and trained in the same event loop.

Each sample is a fresh Python process (``python benchmarks/host_lag.py --child MODE``) that imports only
``dnne.runtime`` (torch, the node packages and the env are first imported by the run), starts a 50 ms ticker, then
runs ``graphs/cartpole_ppo.json`` for 5 iterations: ``run`` is ``dnne.runtime.run(path)`` (the whole run, setup and training, on its own loop in its own
thread); ``on-loop`` is ``GraphRun(load_graph(path)).execute()``, everything on the host's loop. The modes alternate.
Printed: the ticker's largest lag during the whole call (setup and training) and its 99th percentile. Wall-clock
numbers: the load average is printed, and a busy machine inflates them.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GRAPH = ROOT / "graphs" / "cartpole_ppo.json"
TICK_S = 0.05


async def child(mode: str) -> dict[str, float]:
    """Time one run in this process."""
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        due = time.perf_counter() + TICK_S
        while not done:
            await asyncio.sleep(max(due - time.perf_counter(), 0.0))
            now = time.perf_counter()
            lags.append(now - due)
            due = max(due + TICK_S, now)

    from dnne.runtime import GraphRun, load_graph, run

    document = json.loads(GRAPH.read_text())
    document["run"].update(target_return=None, max_iterations=5)
    task = asyncio.create_task(ticker())
    await asyncio.sleep(0.2)
    start = time.perf_counter()
    if mode == "run":
        await run(document)
    else:
        await GraphRun(load_graph(document)).execute()
    elapsed = time.perf_counter() - start
    done = True
    await task
    return {"max_lag_s": max(lags), "p99_lag_s": sorted(lags)[int(0.99 * (len(lags) - 1))], "wall_s": elapsed}


def main() -> None:
    """Alternate the two modes in fresh processes; print a markdown table of medians."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child", choices=("run", "on-loop"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.child))))
        return
    sys.path.insert(0, str(Path(__file__).parent))
    from common import machine

    print(machine())
    results: dict[str, list[dict[str, float]]] = {"run": [], "on-loop": []}
    for _ in range(args.repeats):
        for mode in results:
            out = subprocess.run([sys.executable, __file__, "--child", mode], capture_output=True, text=True,
                                 check=True).stdout
            results[mode].append(json.loads(out.strip().splitlines()[-1]))
    print("| mode | max ticker lag (median of runs) | each run's max lag | p99 lag | wall |")
    print("|---|---|---|---|---|")
    for mode, rows in results.items():
        lags = [r["max_lag_s"] for r in rows]
        print(f"| {mode} | {statistics.median(lags) * 1000:.0f} ms | "
              f"{', '.join(f'{lag * 1000:.0f}' for lag in lags)} ms | "
              f"{statistics.median(r['p99_lag_s'] for r in rows) * 1000:.0f} ms | "
              f"{statistics.median(r['wall_s'] for r in rows):.1f} s |")


if __name__ == "__main__":
    main()
