"""A worker process: runs its part of a split graph and speaks the frame protocol (``wire``) on stdin/stdout with
the main process, and on one inherited socket with each worker it shares a crossing link with.

The main process starts it as ``python -m dnne.runtime.placement.worker --name W --heartbeat FD [--plugin
MODULE ...]`` (a Ray actor runs the same ``serve_streams`` over a socket: ``ray_parts``). It beats on the inherited
socket ``FD`` (``heartbeat``) from start to exit. Frames arrive on stdin and leave on the original stdout; fd 1 is
then pointed at stderr, so whatever a node prints goes to stderr, which the main process passes through (with the
logs). The conversation:

1. main -> worker ``X ["start", config]``: the part (native graph), its setup order, its crossing links, mode,
   settings (the full run section), counters, run directory, and the part's share of a checkpoint to resume from;
2. both ways, link frames ``M``/``E``/``C``/``R``/``D`` (see ``wire``) and ``X ["counter", op, name, value]``;
   worker -> main ``X ["stop", reason, node]``, ``["metrics", node, values]``, ``["blocked", what every node
   waits on]`` and ``["moving"]`` (for the main process's deadlock watchdog); mid-run checkpoints (``snapshots``):
   main -> worker ``["arm"]``, ``["snapshot"]``, ``["resume"]``, worker -> main ``["point", reason, keep, states]``,
   ``["snapshot", states]``;
3. main -> worker ``X ["stop", reason]``, or stdin closing (the main process is gone): the part stops and tears
   down; worker -> main ``X ["result", {...}]`` (stop reason, error, node and channel stats, the node states after
   teardown, which go into the run's final checkpoint); exit.

Python versions. This module needs Python 3.11: it runs its part with ``GraphRun`` (``asyncio.TaskGroup``) and
loads node types from the runtime package (``requires-python >= 3.11``). The protocol itself -- ``wire``,
``codec``, ``endpoint``, ``mirror`` -- is written for Python 3.8 and imports nothing from the runtime (a test parses
it with Python 3.8's grammar). A worker under Python 3.8 (Isaac Gym's last release) would need those four modules
plus something that runs its nodes: the runtime's node layer (``node``, ``ports``, ``io``, ``channel``, a runner
without ``TaskGroup``) ported to 3.8, or a small loop playing one step node's part (wait for an ``M`` on the actions
link, step the simulator, send its outputs as ``M`` frames, grant a ``C``). Neither was built or run:
every worker in the tests runs under the runtime's own interpreter.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from .. import checkpoint, heap
from ..loading import load_graph
from ..registry import default_registry
from ..runner import GraphRun
from ..threads import use_threads
from . import wire
from .codec import Codec, WireError
from .endpoint import Endpoint
from .heartbeat import Beat
from .hub import STOP_TIMEOUT_S, Stopped
from .mirror import CounterMirror
from .peers import PeerLink
from .priority import lower_priority
from .stall import StallNote
from .proxies import ENDPOINT, add_proxies


class _Worker:
    """One worker's state: its frame writer, its run and its endpoint."""

    def __init__(self, name: str, write: Any) -> None:
        self.name = name
        self._write = write
        self._held: list[bytes] | None = None
        self.armed = False
        self.codec = Codec()
        self.run: GraphRun | None = None
        self.endpoint: Endpoint | None = None
        self.mirror: CounterMirror | None = None
        self.peers: dict[str, PeerLink] = {}
        self._ends: dict[int, tuple[str, str]] = {}
        self.nice = os.getpriority(os.PRIO_PROCESS, 0)
        """The niceness this part runs at (``priority``)."""

    def blocked(self, message: str) -> None:
        """Every node here has waited for the grace period: the main process's watchdog decides (a deadlock is
        the whole graph blocked, not one part)."""
        self.control(["blocked", message])

    def moving(self) -> None:
        """A node here woke after ``blocked``."""
        self.control(["moving"])

    def write(self, data: bytes) -> None:
        """Send a frame to the main process (held during a snapshot round)."""
        if self._held is not None:
            self._held.append(data)
        else:
            self._write(data)

    def route(self, data: bytes) -> None:
        """Send a link frame to the process it is addressed to: over the socket to that worker where there is
        one, else to the main process (itself, or the router for the rest). Held during a snapshot round."""
        if self._held is not None:
            self._held.append(data)
            return
        kind, link = data[4:5], int.from_bytes(data[5:9], "big")
        src, dst = self._ends[link]
        peer = self.peers.get(dst if kind in wire.TO_CONSUMER else src)
        if peer is not None:
            peer.write(data)
        else:
            self.write(data)

    async def connect_peers(self, peers: dict[str, int]) -> None:
        """Open the socket to each worker this one shares a crossing link with (inherited from the main
        process) and read link frames from it."""
        for peer, fd in peers.items():
            link = PeerLink(peer, lambda kind, index, body, peer=peer: self._peer_frame(peer, kind, index, body),
                            self._peer_gone, lambda error, peer=peer: self.bad_frame(f"worker {peer!r}", error))
            self.peers[peer] = link
            await link.open(socket.socket(fileno=fd))

    async def finish_peers(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """This part sends nothing more: end each direct socket with the peer's agreement (``peers``), so the
        last frames on it reach the other side however late that side reads them."""
        await asyncio.gather(*(peer.finish(timeout_s) for peer in list(self.peers.values())))

    def _peer_gone(self, peer: str) -> None:
        """The peer's stream ended, after every frame it sent: its links into this process end here (the main
        process leaves them to this socket, since its own frames could overtake the peer's last messages), and
        nobody reads what this process sends it any more."""
        assert self.endpoint is not None
        self.peers.pop(peer, None)
        for link, (src, dst) in self._ends.items():
            if src == peer and dst == self.name:
                self.endpoint.cut(link)
            elif dst == peer and src == self.name:
                self.endpoint.release(link)

    def _peer_frame(self, peer: str, kind: bytes, link: int, body: memoryview) -> None:
        assert self.endpoint is not None
        if kind == wire.CONTROL or peer not in self._ends.get(link, ()):
            raise WireError(f"worker {peer!r} sent a {kind!r} frame on link {link}, which it does not share")
        self.endpoint.on_frame(kind, link, body)

    def control(self, message: list[Any]) -> None:
        self.write(wire.frame(wire.CONTROL, 0, self.codec.encode(message)))

    # ---- mid-run checkpoints (snapshots) ---------------------------------------------------------------------
    def snapshot(self, head: list[Any]) -> None:
        """Send this part's node states now (``head`` + states), then hold every frame until ``resume``: nothing
        this part does after its snapshot reaches another process before every part has taken its own."""
        assert self.run is not None
        frame = wire.frame(wire.CONTROL, 0, self.codec.encode([*head, _states(self.run)]))
        held, self._held = self._held, None
        self.write(frame)
        self._held = held if held is not None else []

    def resume(self) -> None:
        """The snapshot round is over: send what was held, in order."""
        held, self._held = self._held, None
        for data in held or []:
            if data[4:5] == wire.CONTROL:
                self.write(data)
            else:
                self.route(data)

    def _counter_moved(self, name: str, value: float) -> None:
        """An armed worker's consistent point: its own ``iterations`` counter moved (a trainer finished an
        update here)."""
        assert self.mirror is not None
        if name == "iterations" and self.armed and not self.mirror.applying:
            self.armed = False
            self.snapshot(["point", None, None])

    def prepare(self, config: dict[str, Any], plugins: list[str]) -> GraphRun:
        """Load the part, build its run and wire the run's context to the main process."""
        use_threads(int(config.get("threads") or 1))  # this process's own setting, the main one's value
        self.nice = lower_priority(int(config.get("nice") or 0))
        registry = default_registry(plugins)
        add_proxies(registry)
        self.codec = Codec(registry.wire_types)
        graph = load_graph(config["graph"], registry=registry, settings=config["settings"])
        run_dir = Path(config["run_dir"]) if config.get("run_dir") else None
        run = GraphRun(graph, registry, mode=config["mode"], run_dir=run_dir, restore=config.get("restore"),
                       deadlock_grace_s=float(config.get("deadlock_grace_s") or 2.5))
        run.hang_grace_s = float(config.get("hang_grace_s") or run.hang_grace_s)
        run.deadlock_reporter = self
        run.context.settings = dict(config["settings"])
        run.counters.values.update(config["counters"])
        run.counters.load_windows(config.get("windows") or {})
        links = config["links"]
        self._ends = {link["index"]: (link["src"], link["dst"]) for link in links}
        outbound = {}
        for link in links:
            if link["src"] == self.name:
                convert = registry.types.converter(link["out_type"], link["in_type"])
                outbound[link["index"]] = (link["capacity"], convert)
        endpoint = Endpoint(self.codec, self.route, outbound,
                            {link["index"]: link["capacity"] for link in links if link["dst"] == self.name},
                            config.get("slot_dir"))
        run.context.shared(ENDPOINT, lambda: endpoint)
        self.mirror = CounterMirror(run.counters, lambda op, name, value: self.control(["counter", op, name, value]))
        run.context.stop_handler = lambda reason, node_id: self.control(["stop", reason, node_id])
        run.context.metric_sinks.append(lambda node_id, values: self.control(["metrics", node_id, values]))
        # a consistent point; ``keep``: the name and record it is also kept under (``NodeContext.request_checkpoint``)
        run.context.checkpoint_handler = lambda reason, keep=None: self.snapshot(["point", reason, keep])
        run.counters.listen(self._counter_moved)
        run.build()
        run.order = [node_id for node_id in config["order"] if node_id in run.nodes]
        self.run, self.endpoint = run, endpoint
        return run

    async def listen(self, reader: asyncio.StreamReader) -> None:
        """Apply frames from the main process until it says stop or goes away."""
        assert self.run is not None and self.endpoint is not None and self.mirror is not None
        while True:
            try:
                data = await wire.read_frame(reader)
            except (asyncio.IncompleteReadError, ConnectionError):
                self._stop("interrupted", "the main process closed the pipe")
                return
            kind, link, body = wire.parse(data)
            try:
                if kind != wire.CONTROL:
                    self.endpoint.on_frame(kind, link, body)
                    continue
                message = self.codec.decode(body)
            except ValueError as error:  # WireError included: what comes in is not trusted
                self.bad_frame("the main process", error)
                return
            if message[0] == "counter":
                self.mirror.apply(message[1], message[2], message[3])
            elif message[0] == "arm":
                self.armed = True
            elif message[0] == "snapshot":
                self.snapshot(["snapshot"])
            elif message[0] == "resume":
                self.resume()
            elif message[0] == "stop":
                self._stop(message[1], "the run stopped")

    def bad_frame(self, sender: str, error: ValueError) -> None:
        """A frame from ``sender`` did not parse or broke the link protocol: the run fails for this worker, naming
        the sender and the error, and every link of this process ends."""
        assert self.run is not None and self.endpoint is not None
        cause = WireError(f"{sender} sent a bad frame: {error}")
        self.run.fail(self.name, "worker", "run", cause)
        self.endpoint.cut_all(cause)

    def _stop(self, reason: str, why: str) -> None:
        assert self.run is not None and self.endpoint is not None
        self.run.request_stop(reason)
        self.endpoint.cut_all(Stopped(why))


class _Running:
    """Run hook: after setup, the worker tells its heartbeat that it runs."""

    def __init__(self, beat: Beat) -> None:
        self.beat = beat

    def on_start(self, run: GraphRun) -> None:
        """Setup is done: the strict heartbeat timeout applies from here."""
        self.beat.running()


def _states(run: GraphRun) -> dict[str, Any]:
    """The part's node states after teardown (what a one-process run saves at its end), none after a failure."""
    if run.error is not None:
        return {}
    state = checkpoint.collect(run)
    return {"nodes": state["nodes"], "shared": state["shared"]}


def start_config(data: bytes) -> dict[str, Any]:
    """The config of the first frame, which must be ``X ["start", {...}]``; ``WireError`` otherwise."""
    kind, _, body = wire.parse(data)
    message = Codec().decode(body) if kind == wire.CONTROL else None
    if not (isinstance(message, list) and len(message) == 2 and message[0] == "start"
            and isinstance(message[1], dict)):
        raise WireError("the first frame from the main process must be a start frame")
    return message[1]


def _failure(name: str, error: BaseException) -> dict[str, Any]:
    return {"stop_reason": "failed", "nodes": {}, "channels": {}, "links": {}, "warnings": [],
            "error": {"node": None, "type": "worker", "phase": "setup",
                      "cause": f"{type(error).__name__}: worker {name!r} could not load its part: {error}"}}


async def serve(name: str, plugins: list[str], frames: Any, beat: Beat | None = None) -> int:
    """Run one worker process: frames on stdin and ``frames`` (the original stdout)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=2**20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    transport, _ = await loop.connect_write_pipe(asyncio.Protocol, frames)
    return await serve_streams(name, plugins, reader, transport, beat)


async def serve_streams(name: str, plugins: list[str], reader: asyncio.StreamReader,
                        transport: asyncio.WriteTransport, beat: Beat | None = None) -> int:
    """Run one worker over a frame connection: read the start frame, run the part, report the result; ``beat``
    is told when the part is loaded (``Beat.running``)."""
    worker = _Worker(name, transport.write)
    try:
        config = start_config(await wire.read_frame(reader))
        run = worker.prepare(config, plugins)
        await worker.connect_peers(config.get("peers") or {})
    except asyncio.IncompleteReadError:
        return 0  # the main process went away before starting us
    except Exception as error:
        logging.getLogger("dnne").exception("worker %s could not load its part", name)
        worker.control(["result", _failure(name, error)])
        await _flushed(transport)
        return 1
    if beat is not None:  # node setups (imports, native libraries) are behind: hold the worker to the timeout
        run.hooks.append(_Running(beat))
    listener = asyncio.ensure_future(worker.listen(reader))
    stall = StallNote(asyncio.get_running_loop(), config["stall_path"]) if config.get("stall_path") else None
    result = await run.execute()
    if stall is not None:
        stall.stop()
    listener.cancel()
    worker.resume()  # a round under way when the part stopped is dropped by the main process
    assert worker.endpoint is not None
    summary = result.summary()
    worker.control(["result", {
        "stop_reason": result.stop_reason, "error": summary["error"], "nodes": result.nodes,
        "channels": result.channels, "links": worker.endpoint.stats(), "warnings": result.warnings,
        "states": _states(run), "cpu_s": summary["cpu_s"], "nice": worker.nice,
    }])
    await _flushed(transport)
    await worker.finish_peers()
    return 0


async def _flushed(transport: asyncio.WriteTransport, timeout_s: float = 30.0) -> None:
    """Close ``transport`` once what was written has left (a busy main process reads late; exiting earlier would
    lose the result frame)."""
    deadline = time.monotonic() + timeout_s
    while transport.get_write_buffer_size() and not transport.is_closing() and time.monotonic() < deadline:
        await asyncio.sleep(0.005)
    transport.close()
    await asyncio.sleep(0)


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dnne.runtime.placement.worker``."""
    parser = argparse.ArgumentParser(prog="dnne.runtime.placement.worker")
    parser.add_argument("--name", required=True)
    parser.add_argument("--plugin", action="append", default=[])
    parser.add_argument("--heartbeat", type=int)
    args = parser.parse_args(argv)
    heap.defer()  # until its part's graph is loaded (heap.py)
    beat = None
    if args.heartbeat is not None:
        beat = Beat(socket.socket(fileno=args.heartbeat))
        beat.start()
    frames = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # a node's print() must not corrupt the frames
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides when to stop
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                        format=f"[worker {args.name}] %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(args.name, args.plugin, frames, beat))


if __name__ == "__main__":
    sys.exit(main())
