"""Cost of one message hop across a process boundary (msgpack frames over a pipe) against an in-process hop.

Run: ``python benchmarks/msgpack_hop.py`` (``--messages`` to shorten it). Writes nothing; prints a Markdown table.

Both variants run a real two-node graph ``source -> sink`` (capacity 2, the default, and 64) with ``dnne.runtime.runner.run``:

* ``in-process``: both nodes in one process, one ``LocalChannel`` hop;
* ``msgpack``: the sink in a worker process (``placement``): the source's channel, ``RemoteSend`` (encode, credit),
  the pipe, the main process's routing, the worker's ``RemoteReceive`` (decode) and the sink's channel.

Payloads: a ``[64, 4]`` float32 tensor and a ``Token``. The time per message is wall time from the source's first
emit to the sink's last receipt, divided by the number of messages, measured inside the nodes (worker start-up,
setup and teardown are not counted). The cross-process variant uses two processes, so it is wall time, not CPU.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from typing import Any

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from dnne.runtime.graph import Graph  # noqa: E402
from dnne.runtime.loading import load_graph  # noqa: E402
from dnne.runtime.node import Node  # noqa: E402
from dnne.runtime.ports import Input, Output, Param  # noqa: E402
from dnne.runtime.registry import NodeRegistry  # noqa: E402
from dnne.runtime.runner import run  # noqa: E402
from dnne.runtime.types import Token  # noqa: E402


class HopSource(Node):
    """Emits ``n`` copies of a payload, recording when it started."""

    out = Output("Any", "the payload")
    n = Param(int, 1000, "messages", ge=1, le=10**8)
    payload = Param(str, "tensor", "tensor or token", choices=("tensor", "token"))

    async def run(self) -> None:
        value: Any = torch.randn(64, 4) if self.payload == "tensor" else Token("transition")
        self.ctx.counters.set("t_first", time.time())
        for i in range(self.n):
            await self.emit("out", value, stamp=i)


class HopSink(Node):
    """Counts messages; records the time of the last one."""

    x = Input("Any", "the payload")

    async def compute(self, x: Any) -> None:
        if self.firings == self.ctx.settings["hop_messages"]:
            self.ctx.counters.set("t_last", time.time())


def register(registry: NodeRegistry) -> None:
    registry.add_node(HopSource)
    registry.add_node(HopSink)


async def measure(messages: int, payload: str, placed: bool, capacity: int) -> float:
    registry = NodeRegistry()
    registry.load_plugin("msgpack_hop")
    assert not registry.plugin_errors, registry.plugin_errors
    graph = Graph().add("src", "HopSource", n=messages, payload=payload).add("dst", "HopSink")
    graph.link("src.out", "dst.x", capacity=capacity)
    if placed:
        graph.placement = {"dst": "w1"}
    graph = load_graph(graph, registry=registry)
    graph.run["hop_messages"] = messages
    result = await run(graph, registry)
    assert result.stop_reason == "completed", result.error
    return (result.counters["t_last"] - result.counters["t_first"]) / messages * 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for capacity in (2, 64):
        for payload in ("tensor", "token"):
            timings = {}
            for placed in (False, True):
                runs = sorted(asyncio.run(measure(args.messages, payload, placed, capacity))
                              for _ in range(args.repeats))
                timings[placed] = runs[len(runs) // 2]
            label = "[64, 4] float32 tensor" if payload == "tensor" else "Token"
            rows.append(f"| {label} | {capacity} | {timings[False]:,.0f} | {timings[True]:,.0f} | "
                        f"{timings[True] / timings[False]:.0f}x |")
    print(f"{args.messages:,} messages per run, median of {args.repeats} runs; {os.cpu_count()} CPUs, "
          f"Python {sys.version.split()[0]}, torch {torch.__version__}\n")
    print("| payload | capacity | in-process hop (ns/msg) | msgpack hop across processes (ns/msg) | ratio |")
    print("|---|---:|---:|---:|---:|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
