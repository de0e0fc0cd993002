"""Shared helpers of the benchmark scripts: machine description, event-loop factories, markdown tables."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# an episode's line in CleanRL's PPO scripts' stdout (Gymnasium 0.29 prints the return as a one-element array)
CLEANRL_EPISODE = re.compile(r"global_step=(\d+), episodic_return=\[?([-+0-9.eE]+)")


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (``unknown`` elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> str:
    """One line describing the machine and the software versions that matter to the timings."""
    import torch

    parts = [f"{os.cpu_count()} cores ({cpu_model()})", f"Python {platform.python_version()}",
             f"torch {torch.__version__}"]
    try:
        import uvloop

        parts.append(f"uvloop {uvloop.__version__}")
    except ImportError:
        parts.append("no uvloop")
    try:
        parts.append("load average at start " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
    except OSError:
        pass
    return ", ".join(parts)


def loop_factories() -> dict[str, Callable[[], asyncio.AbstractEventLoop] | None]:
    """The event loops to measure on: asyncio's default loop, and uvloop when installed."""
    loops: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {"asyncio": None}
    try:
        import uvloop

        loops["uvloop"] = uvloop.new_event_loop
    except ImportError:
        print("uvloop is not installed: measuring asyncio only", file=sys.stderr)
    return loops


def run_on(loop_factory: Callable[[], asyncio.AbstractEventLoop] | None, coroutine: Any) -> Any:
    """Run ``coroutine`` to completion on a fresh loop made by ``loop_factory`` (``None``: asyncio's)."""
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(coroutine)


def median(values: Sequence[float]) -> float:
    """The median of ``values``."""
    return statistics.median(values)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub markdown table; floats are printed as given (format them before)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def run_to_target(arguments: Sequence[str], seed: int, cap: str) -> dict[str, Any]:
    """One ``nice -n 5 dnne run ARGUMENTS --seed SEED`` in a fresh process (this interpreter's CLI, one torch
    thread, its own run directory in a temporary folder, ``--timeout CAP`` as a wall cap): whether it reached its
    target, the env steps, wall time and mean return where it did (its ``summary.json``'s ``solved_at``; where it
    did not, how it ended), the stop reason, the process's exit code and its spawn-to-exit seconds."""
    with tempfile.TemporaryDirectory(prefix="dnne-run-") as tmp:
        run_dir = Path(tmp) / "run"
        command = ["nice", "-n", "5", sys.executable, "-m", "dnne.runtime.cli", "run", *arguments, "--seed", str(seed),
                   "--run-dir", str(run_dir), "--timeout", cap, "-q"]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        process_s = time.perf_counter() - started
        summary_path = run_dir / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(arguments)} seed {seed} exited {done.returncode}: {done.stderr[-2000:]}\n")
    at_goal = summary.get("solved_at") or summary
    return {"seed": seed, "exit_code": done.returncode, "process_s": process_s, "solved": bool(summary.get("solved")),
            "stop_reason": summary.get("stop_reason"), "env_steps": at_goal.get("env_steps"),
            "wall_time_s": at_goal.get("wall_time_s"), "mean_return": at_goal.get("mean_return")}


def to_target_cell(results: Sequence[dict[str, Any]], key: str, unit: str) -> str:
    """One table cell of ``run_to_target`` results: each seed's ``key`` at the target, or what it reached instead."""
    parts = []
    for result in results:
        if result["solved"]:
            value = result[key]
            parts.append(f"{value:,}" if key == "env_steps" else f"{value:.1f}{unit}")
        else:
            mean = "-" if result["mean_return"] is None else f"{result['mean_return']:.1f}"
            steps = "-" if result["env_steps"] is None else f"{result['env_steps']:,}"
            parts.append(f"not reached ({result['stop_reason']} at {steps} steps, mean return {mean})")
    return " / ".join(parts)
