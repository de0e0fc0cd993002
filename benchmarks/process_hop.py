"""Cost of one message hop across a process boundary: shared-memory slots and direct worker links against the
msgpack path (tensors inside frames, every worker frame routed through the main process), in the same run.

Run: ``python benchmarks/process_hop.py`` (``--messages`` to shorten it). Writes nothing; prints a Markdown table.

Each cell runs a real two-node graph ``source -> sink`` (``dnne.runtime.runner.run``, a private registry):

* ``in-process``: both nodes in the main process, one ``LocalChannel`` hop;
* ``main -> worker``: the sink in a worker process;
* ``worker -> worker``: the source in worker ``w1``, the sink in worker ``w2``.

The two cross-process paths are the same graph with ``Placement.shared_memory`` and ``Placement.direct_links`` on
(tensors in shared-memory slots, workers on their own socket pair) or off (tensors inside msgpack frames; a
worker's frames to another worker go through the main process, as before this path existed). Payloads: a
``[64, 17]`` float32 tensor (a HalfCheetah observation batch of 64 envs) and a 1 MiB rollout fragment (a dict of
three float32 tensors: ``[2048, 96]``, ``[2048, 24]``, ``[2048, 8]``). Time per message is the sink's clock from its
first receipt to its last divided by the messages in between (the steady stream: worker start-up, setup and
teardown not counted; both clock reads happen in the sink's process). The variants of one cell are interleaved run by run; the median of the repeats is shown.
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

from common import machine  # noqa: E402

from dnne.runtime.graph import Graph  # noqa: E402
from dnne.runtime.loading import load_graph  # noqa: E402
from dnne.runtime.node import Node  # noqa: E402
from dnne.runtime.placement.hub import Placement  # noqa: E402
from dnne.runtime.ports import Input, Output, Param  # noqa: E402
from dnne.runtime.registry import NodeRegistry  # noqa: E402
from dnne.runtime.runner import run  # noqa: E402


def payload(kind: str) -> Any:
    """The value sent: a [64, 17] observation batch or a 1 MiB rollout fragment."""
    if kind == "obs":
        return torch.randn(64, 17)
    return {"observations": torch.randn(2048, 96), "actions": torch.randn(2048, 24), "rewards": torch.randn(2048, 8)}


class HopSource(Node):
    """Emits ``n`` copies of a payload."""

    out = Output("Any", "the payload")
    n = Param(int, 1000, "messages", ge=1, le=10**8)
    payload = Param(str, "obs", "obs or rollout", choices=("obs", "rollout"))

    async def run(self) -> None:
        value = payload(self.payload)
        for i in range(self.n):
            await self.emit("out", value, stamp=i)


class HopSink(Node):
    """Counts messages; records when the first and the last one arrived."""

    x = Input("Any", "the payload")

    async def compute(self, x: Any) -> None:
        if self.firings == 1:
            self.ctx.counters.set("t_first", time.perf_counter())
        if self.firings == self.ctx.settings["hop_messages"]:
            self.ctx.counters.set("t_last", time.perf_counter())


def register(registry: NodeRegistry) -> None:
    """The plugin entry: both nodes (workers load this module by name)."""
    registry.add_node(HopSource)
    registry.add_node(HopSink)


async def measure(messages: int, kind: str, where: str, fast: bool, capacity: int) -> float:
    """Microseconds per message of one run."""
    registry = NodeRegistry()
    registry.load_plugin("process_hop")
    assert not registry.plugin_errors, registry.plugin_errors
    graph = Graph().add("src", "HopSource", n=messages, payload=kind).add("dst", "HopSink")
    graph.link("src.out", "dst.x", capacity=capacity)
    if where == "main -> worker":
        graph.placement = {"dst": "w1"}
    elif where == "worker -> worker":
        graph.placement = {"src": "w1", "dst": "w2"}
    graph = load_graph(graph, registry=registry)
    graph.run["hop_messages"] = messages
    Placement.shared_memory = Placement.direct_links = fast
    result = await run(graph, registry)
    assert result.stop_reason == "completed", result.error
    return (result.counters["t_last"] - result.counters["t_first"]) / (messages - 1) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {machine()}; {args.messages:,} messages per run ({args.messages // 10:,} for the 1 MiB "
          f"fragment), median of {args.repeats} interleaved runs\n")
    print("| payload | capacity | in-process (us/msg) | path | msgpack path (us/msg) | shared memory + direct "
          "(us/msg) | msgpack / new |")
    print("|---|---:|---:|---|---:|---:|---:|")
    for kind, label in (("obs", "[64, 17] float32"), ("rollout", "1 MiB rollout fragment")):
        messages = args.messages if kind == "obs" else max(args.messages // 10, 10)
        for capacity in (2, 64):
            local = sorted(asyncio.run(measure(messages, kind, "in-process", True, capacity))
                           for _ in range(args.repeats))[args.repeats // 2]
            for where in ("main -> worker", "worker -> worker"):
                timings: dict[bool, list[float]] = {False: [], True: []}
                for _ in range(args.repeats):
                    for fast in (False, True):
                        timings[fast].append(asyncio.run(measure(messages, kind, where, fast, capacity)))
                old, new = (sorted(timings[f])[args.repeats // 2] for f in (False, True))
                print(f"| {label} | {capacity} | {local:,.1f} | {where} | {old:,.1f} | {new:,.1f} | "
                      f"{old / new:.1f}x |", flush=True)
    print(f"\nload average at the end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
