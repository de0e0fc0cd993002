"""Shared helpers of the benchmark scripts: machine description, event-loop factories, markdown tables."""
from __future__ import annotations

import asyncio
import os
import platform
import re
import statistics
import sys
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
