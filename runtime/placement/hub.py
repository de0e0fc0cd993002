"""``Placement``: the main process's side of a graph split over processes.

``GraphRun`` creates one when its graph has a ``placement`` section and runs the main process's part itself. The
placement starts one worker process per worker name under the interpreter the user allowed (``interpreters``),
gives every two workers that share a crossing link a socket pair of their own (their frames never pass through
here), makes the run's shared-memory slot directory (``slots``), keeps the counters in step, forwards the workers'
stop requests, metrics and blocked/moving reports, gathers every process's node states for mid-run checkpoints at a
consistent cut (``snapshots``), turns a worker that fails or dies into a failed run naming it, stops the workers
when the run stops, folds their node and channel stats into the result and their node states into the final
checkpoint. It reports to its run only through ``GraphRun``'s narrow interface:
``fail``, ``request_stop``, ``participant_started`` / ``_blocked`` / ``_moving`` / ``_finished``, and the counters.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import checkpoint
from ..graph import Graph
from ..registry import NodeRegistry
from . import wire
from .codec import Codec
from .endpoint import Endpoint
from .failover import MAX_REPLACEMENTS
from .heartbeat import Monitor
from .interpreters import worker_interpreters
from .mirror import CounterMirror
from .proxies import ENDPOINT, add_proxies
from .snapshots import Collect, Save, Snapshots
from .stall import read_stall, stall_path
from .split import MAIN, CrossingLink, Split, split_graph

if TYPE_CHECKING:
    from ..runner import GraphRun, RunResult

_SHM = "/dev/shm"
STOP_TIMEOUT_S = 30.0
"""How long a stopping worker may take to tear down and report before it is killed."""


class WorkerDied(RuntimeError):
    """A worker process ended without reporting a result (killed, crashed, or its interpreter failed)."""


class RemoteFailure(RuntimeError):
    """A node in a worker process failed; the message is the worker's ``Type: message``."""


class WorkerLost(RuntimeError):
    """A worker stopped answering its heartbeat (a stopped process, a frozen or lost machine)."""


class Stopped(RuntimeError):
    """The run stopped while a setup waited for the other side of a crossing link."""


def _how_to_resume(run_dir: Path | None) -> str:
    if run_dir is None:
        return " -- the run stops"
    return f" -- the run stops; resume it with: dnne run --resume {run_dir}"


def _last_checkpoint(run_dir: Path | None) -> str:
    """``; last checkpoint: PATH`` and how to resume, for a message that stops the run."""
    if run_dir is None:
        return _how_to_resume(run_dir)
    last = checkpoint.latest(run_dir / "checkpoints")
    return f"; last checkpoint: {last if last is not None else 'none'}" + _how_to_resume(run_dir)


def _live_key(worker: Worker) -> str:
    return f"worker {worker.name!r}"


@dataclass
class Worker:
    """One worker (a process, or a Ray actor: ``actor``) and what the main process knows of it.

    ``stream`` and ``writer`` carry its frames (the process's stdout and stdin, or the actor's socket); ``where``
    says where it runs (kind, host, pid; node id and ip on Ray); ``lost`` is set when its heartbeat stopped;
    ``on_loss`` is what the run does when it is lost (``stop``, or ``replace``: ``failover``).
    """

    name: str
    python: str
    nodes: list[str]
    on_loss: str = "stop"
    process: asyncio.subprocess.Process | None = None
    actor: Any = None
    stream: asyncio.StreamReader | None = None
    writer: Any = None
    reader: asyncio.Task[None] | None = None
    result: dict[str, Any] | None = None
    done: bool = False
    killed: bool = False
    returncode: int | None = None
    stall_file: str | None = None
    where: dict[str, Any] = field(default_factory=dict)
    lost: WorkerLost | None = None
    ended: bool = False

    def send(self, data: bytes) -> None:
        """Write a frame to the worker (dropped once it is gone, or once ``close`` ended what it is sent)."""
        if self.done or self.ended or self.writer is None or self.writer.is_closing():
            return
        self.writer.write(data)

    def close(self) -> None:
        """End what this process sends the worker (it stops when it sees the end); its result can still come
        back (a socket is only shut for writing)."""
        self.ended = True
        if self.writer is not None and not self.writer.is_closing():
            if self.writer.can_write_eof():
                self.writer.write_eof()
            else:
                self.writer.close()

    def kill(self) -> None:
        """End the worker now: SIGKILL its process, or kill its Ray actor."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
        if self.actor is not None:
            self.actor.kill()


class Placement:
    """The workers of one run and the routing between them.

    Tensors ride shared-memory slots and workers talk to each other over their own socket pairs (``peers``). The
    class attributes ``shared_memory`` and ``direct_links`` turn either off (tensors inside msgpack frames, every
    frame routed through the main process), which the benchmarks use to compare the paths in one run.

    Args:
        graph: the validated graph with its ``placement`` and ``workers`` sections.
        registry: the node types (the proxy nodes are added to it).
        mode: ``train`` or ``play`` (play leaves training-only nodes out, as in one process).
        allowed: the interpreter aliases the user allowed (``interpreters.allowed_interpreters``); ``GraphError``
            for a worker whose alias is not among them.
    """

    shared_memory = True
    direct_links = True

    def __init__(self, graph: Graph, registry: NodeRegistry, mode: str, allowed: Mapping[str, str]) -> None:
        add_proxies(registry)
        skipped = set()
        if mode == "play":
            skipped = {node_id for node_id, spec in graph.nodes.items()
                       if (cls := registry.get(spec.type)) is not None and cls.training_only}
        self.graph = graph
        self.registry = registry
        self.split: Split = split_graph(graph, registry, skipped)
        self.codec = Codec(registry.wire_types)
        interpreters = worker_interpreters(graph, allowed)
        self.workers = {
            name: Worker(name, interpreters.get(name, sys.executable), sorted(part.nodes),
                         graph.workers.get(name, {}).get("on_loss", "stop"))
            for name, part in self.split.workers.items()
        }
        limit = graph.run.get("max_replacements")
        self.max_replacements = MAX_REPLACEMENTS if limit is None else int(limit)
        """How many lost parts one run may replace (``failover``)."""
        self.replacement: dict[str, Any] | None = None
        """The loss of a replaceable part that ends this attempt at the run (``failover``)."""
        self.replaced: dict[str, dict[str, Any]] = {}
        """The parts this attempt starts as replacements, with their loss (recorded once they run: ``begun``)."""
        self._losses: list[str] = []
        self.endpoint: Endpoint | None = None
        self.mirror: CounterMirror | None = None
        self.slot_dir: str | None = None
        self.routed_frames = 0
        self._direct: list[set[str]] = []
        self._links = {c.index: c for c in self.split.links}
        self._run: GraphRun | None = None
        self._held: list[bytes] | None = None
        self.snapshots = Snapshots(self._send_control, self._running_workers, self._hold, lambda text: None)
        self.heartbeats: Monitor | None = None
        self.events: list[dict[str, Any]] = []
        self.ray: Any = None
        if any("ray" in self.graph.workers.get(name, {}) for name in self.workers):
            from .ray_parts import RayParts

            entries = [graph.workers[name]["ray"] for name in self.workers if "ray" in graph.workers.get(name, {})]
            self.ray = RayParts(graph.run.get("ray_address"), registry.plugin_modules, entries)

    @property
    def main_graph(self) -> Graph:
        """The main process's part (proxies included): what ``GraphRun`` builds."""
        return self.split.main

    # ---- starting -------------------------------------------------------------------------------------------
    async def start(self, run: GraphRun) -> None:
        """After ``build``, before any setup: set the setup order, install the endpoint, start every worker."""
        self._run = run
        self.snapshots.warn = run.context.warn
        run.order = [node_id for node_id in self.split.orders[MAIN] if node_id in run.nodes]
        mine = [c for c in self.split.links if MAIN in (c.src_process, c.dst_process)]
        if self.shared_memory and self.ray is None:  # a Ray actor may be on another machine: frames carry tensors
            self.slot_dir = tempfile.mkdtemp(prefix=f"dnne-{os.getpid()}-", dir=_SHM if os.path.isdir(_SHM) else None)
        self.endpoint = Endpoint(
            self.codec, self._write_from_main,
            {c.index: (c.capacity, self._converter(c)) for c in mine if c.src_process == MAIN},
            {c.index: c.capacity for c in mine if c.dst_process == MAIN}, self.slot_dir,
        )
        endpoint = self.endpoint
        run.context.shared(ENDPOINT, lambda: endpoint)
        self.mirror = CounterMirror(run.counters, lambda op, name, value: self._counter(None, op, name, value))
        self.heartbeats = Monitor(lambda name, silent: self._lost(run, name, silent), pid_of=self._local_pid)
        if self.ray is not None:
            try:
                await self.ray.start()
            except Exception as error:  # no cluster at that address, or Ray could not start here
                for worker in self.workers.values():  # as for a worker that cannot start: its links end here
                    run.participant_started(_live_key(worker))
                    worker.done = True
                    self._worker_gone(run, worker, WorkerDied(
                        f"worker {worker.name!r} could not start: could not join Ray at "
                        f"{self.ray.address or 'a local Ray'}: {type(error).__name__}: {error}"))
                return
        # Socket pairs are inherited by child processes; a Ray actor (perhaps on another machine) cannot inherit one.
        peers = self._peer_sockets() if self.direct_links and self.ray is None else {}
        try:
            for worker in self.workers.values():
                # a running worker keeps the run alive (it completes when every node here and every worker has
                # ended) and, never blocked on a channel here, keeps this process's deadlock watchdog quiet
                run.participant_started(_live_key(worker))
                await self._start_worker(run, worker, peers.get(worker.name, {}))
        finally:
            for ends in peers.values():
                for end in ends.values():
                    end.close()

    def _peer_sockets(self) -> dict[str, dict[str, socket.socket]]:
        """One connected socket pair per two workers that share a crossing link: worker -> peer -> its end."""
        pairs = {tuple(sorted((c.src_process, c.dst_process))) for c in self.split.links
                 if MAIN not in (c.src_process, c.dst_process)}
        ends: dict[str, dict[str, socket.socket]] = {name: {} for name in self.workers}
        for first, second in sorted(pairs):
            ends[first][second], ends[second][first] = socket.socketpair()
            self._direct.append({first, second})
        return ends

    def _converter(self, crossing: CrossingLink) -> Any:
        convert = self.registry.types.converter(crossing.out_type, crossing.in_type)
        assert convert is not None, f"graph not validated: {crossing.name}"
        return convert

    async def _start_process(self, worker: Worker, peers: dict[str, socket.socket]) -> None:
        """Start ``worker`` as a process of this machine, its heartbeat on a socket pair it inherits."""
        beat, their_beat = socket.socketpair()
        args = [worker.python, "-m", "dnne.runtime.placement.worker", "--name", worker.name,
                "--heartbeat", str(their_beat.fileno())]
        for module in self.registry.plugin_modules:
            args += ["--plugin", module]
        env = dict(os.environ)
        if os.path.realpath(worker.python) == os.path.realpath(sys.executable):
            # the same interpreter sees the same modules (plugins, test helpers) as this process
            env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        try:
            worker.process = await asyncio.create_subprocess_exec(
                *args, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, env=env,
                start_new_session=True,  # Ctrl-C reaches the main process only; it stops the workers
                pass_fds=[end.fileno() for end in peers.values()] + [their_beat.fileno()],
            )
        except OSError:
            beat.close()
            raise
        finally:
            their_beat.close()
        worker.stream, worker.writer = worker.process.stdout, worker.process.stdin
        worker.where = {"kind": "process", "host": socket.gethostname(), "pid": worker.process.pid}
        assert self.heartbeats is not None
        self.heartbeats.watch(worker.name, beat)

    async def _start_worker(self, run: GraphRun, worker: Worker, peers: dict[str, socket.socket]) -> None:
        ray_options = self.graph.workers.get(worker.name, {}).get("ray")
        try:
            if ray_options is None:
                await self._start_process(worker, peers)
            else:
                assert self.heartbeats is not None
                await self.ray.launch(worker, ray_options, self.heartbeats)
        except OSError as error:
            worker.done = True
            text = (f"worker {worker.name!r} could not start {'on Ray' if ray_options is not None else worker.python}"
                    f": {error}")
            if worker.name in self.replaced:
                text += " (no replacement for the lost part)" + _last_checkpoint(run.context.run_dir)
            self._worker_gone(run, worker, WorkerDied(text))
            return
        if self.slot_dir is not None:
            worker.stall_file = stall_path(self.slot_dir, list(self.workers).index(worker.name))
        config = {
            "stall_path": worker.stall_file,
            "graph": self.split.graphs[worker.name].to_native(),
            "order": self.split.orders[worker.name],
            "links": [{"index": c.index, "src": c.src_process, "dst": c.dst_process, "capacity": c.capacity,
                       "out_type": c.out_type, "in_type": c.in_type}
                      for c in self.split.links if worker.name in (c.src_process, c.dst_process)],
            "mode": run.mode,
            "settings": run.context.settings,
            "counters": dict(run.counters.values),
            "windows": run.counters.windows_state(),
            "run_dir": None if run.context.run_dir is None else str(run.context.run_dir),
            "restore": self._restore_part(run.restore, worker.name),
            "slot_dir": self.slot_dir,
            "threads": torch.get_num_threads(),
            "nice": int(self.graph.workers.get(worker.name, {}).get("nice", 0)),
            "deadlock_grace_s": run.deadlock_grace_s / 2,
            "hang_grace_s": run.hang_grace_s,
            "peers": {name: end.fileno() for name, end in peers.items()},
        }
        worker.send(self._control(["start", config]))
        worker.reader = asyncio.ensure_future(self._read(run, worker))

    def _restore_part(self, state: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
        """A worker's share of the checkpoint ``state`` (its nodes, checked against its part's node types)."""
        if state is None:
            return None
        part = self.split.graphs[name]
        shared = state.get("parts", {}).get(name, {})
        return {"format": state["format"], "graph": {node_id: spec.type for node_id, spec in part.nodes.items()},
                "counters": state["counters"], "shared": shared,
                "nodes": {k: v for k, v in state["nodes"].items() if k in part.nodes}}

    def node_states(self) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
        """What the workers reported at their end for a checkpoint: node states, each part's shared objects'
        states, and the workers that reported none (still running, failed or gone)."""
        nodes: dict[str, Any] = {}
        parts: dict[str, Any] = {}
        missing = []
        for worker in self.workers.values():
            states = (worker.result or {}).get("states")
            if not states:
                missing.append(worker.name)
                continue
            nodes.update(states["nodes"])
            if states["shared"]:
                parts[worker.name] = states["shared"]
        return nodes, parts, missing

    def _control(self, message: list[Any]) -> bytes:
        return wire.frame(wire.CONTROL, 0, self.codec.encode(message))

    def _send_control(self, name: str, message: list[Any]) -> None:
        self.workers[name].send(self._control(message))

    def _running_workers(self) -> list[str]:
        return [w.name for w in self.workers.values() if w.process is not None and not w.done]

    # ---- mid-run checkpoints (snapshots) ---------------------------------------------------------------------
    def gather(self, reason: str, collect: Collect, save: Save) -> bool:
        """Save a mid-run checkpoint of every process's nodes at a consistent cut (``snapshots``): ``save`` gets
        the whole state, later; False once the run stops (the workers' final states are then in ``collect``)."""
        return self.snapshots.gather(reason, collect, save)

    def _hold(self, on: bool) -> None:
        """Hold the link frames this process sends during a snapshot round; release them in order."""
        if on:
            self._held = self._held if self._held is not None else []
            return
        held, self._held = self._held or [], None
        for data in held:
            self._write_from_main(data)

    # ---- routing --------------------------------------------------------------------------------------------
    def _write_from_main(self, data: bytes) -> None:
        if self._held is not None:
            self._held.append(data)
            return
        kind, link, _ = wire.parse(data[4:])
        self._deliver(kind, link, data)

    def _routed(self, kind: bytes, link: int) -> int:
        """1 when a message from a worker was addressed to another worker (routed here, not sent directly); a credit
        or release a worker sends while its direct socket is closing may still come this way and is not counted."""
        crossing = self._links[link]
        return int(kind == wire.MESSAGE and MAIN not in (crossing.src_process, crossing.dst_process))

    def _deliver(self, kind: bytes, link: int, data: bytes) -> None:
        """Send a link frame (length prefix included) to the process it is addressed to."""
        crossing = self._links[link]
        target = crossing.dst_process if kind in wire.TO_CONSUMER else crossing.src_process
        if target == MAIN:
            assert self.endpoint is not None
            self.endpoint.on_frame(*wire.parse(data[4:]))
            return
        worker = self.workers[target]
        if worker.done:
            if kind == wire.MESSAGE:  # nobody reads it any more: let the producer stop waiting for credit
                self._deliver(wire.RELEASE, link, wire.frame(wire.RELEASE, link))
            return
        worker.send(data)

    async def _read(self, run: GraphRun, worker: Worker) -> None:
        assert worker.stream is not None
        error: BaseException | None = None
        try:
            while True:
                data = await wire.read_frame(worker.stream)
                kind, link, body = wire.parse(data)
                if kind == wire.CONTROL:
                    self._on_control(run, worker, self.codec.decode(body))
                else:
                    self._deliver(kind, link, wire.prefixed(data))
                    self.routed_frames += self._routed(kind, link)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except Exception as bad:  # a frame that does not parse: the worker cannot be trusted to continue
            error = bad
            worker.kill()
        if worker.process is not None:
            worker.returncode = await worker.process.wait()
        elif worker.writer is not None:
            worker.writer.close()
        worker.done = True
        silent = None
        if self.heartbeats is not None:
            silent = self.heartbeats.silence(worker.name)
            self.heartbeats.forget(worker.name)
        cause: BaseException | None = worker.lost
        if cause is None and worker.result is None and not worker.killed:
            values = {} if silent is None else {"silent_s": round(silent, 3)}
            self._event(run, "worker_died", worker, values)
            note = self._loss(run, worker, "worker_died", silent)
            cause = WorkerDied(self._death(worker, error, run.context.run_dir, note))
        self._worker_gone(run, worker, cause)

    def _local_pid(self, name: str) -> int | None:
        """The pid of worker ``name``'s process where it runs on this machine (a process, or a Ray actor here)."""
        where = self.workers[name].where
        return where.get("pid") if where.get("host") == socket.gethostname() else None

    def _lost(self, run: GraphRun, name: str, silent_s: float) -> None:
        """``name``'s heartbeat stopped: record the event (metrics row, summary), fail the run naming the worker,
        and kill it (a stopped process would never answer the stop)."""
        worker = self.workers[name]
        if worker.done or run.stop_reason is not None:  # tearing down: a slow teardown is STOP_TIMEOUT_S's to end
            return
        self._event(run, "worker_lost", worker, {"silent_s": round(silent_s, 3)})
        note = self._loss(run, worker, "worker_lost", silent_s)
        text = (f"worker {name!r} (nodes {', '.join(n for n in worker.nodes if not n.startswith('~'))}) stopped "
                f"answering: no heartbeat for {silent_s:.2f}s (a stopped process, a frozen or lost machine); killed"
                f"{note}")
        worker.lost = WorkerLost(text + _last_checkpoint(run.context.run_dir))
        run.fail(name, "worker", "run", worker.lost)
        worker.kill()
        pid = self._local_pid(name)
        if worker.actor is not None and pid is not None:  # a stopped actor here would not act on Ray's kill
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass

    def _loss(self, run: GraphRun, worker: Worker, kind: str, silent_s: float | None) -> str:
        """Note the loss of ``worker``: a replaceable part (``on_loss: replace``) lost while the run goes on, with
        a replacement left, ends this attempt to be replaced (``replacing``). Returns what the message adds."""
        self._losses.append(worker.name)
        if worker.on_loss != "replace" or run.stop_reason is not None:
            return ""
        if run.replacements >= self.max_replacements:
            return (f" (a replaceable part, but the run has replaced {run.replacements} lost part(s), "
                    "run.max_replacements)")
        if self.replacement is None:
            self.replacement = {"worker": worker.name, "event": kind, "detected": time.time(),
                                "silent_s": None if silent_s is None else round(silent_s, 3),
                                "where": dict(worker.where)}
        return ""

    def replacing(self, run: GraphRun) -> bool:
        """Whether this attempt ended for a lost part the run replaces (every part lost in it is replaceable)."""
        return self.replacement is not None and all(self.workers[name].on_loss == "replace"
                                                    for name in self._losses)

    def begun(self, run: GraphRun) -> None:
        """The nodes are set up and restored: record each part this attempt replaced and where its replacement
        runs (an entry under ``placement.events``, a metrics row named after it)."""
        for name, loss in self.replaced.items():
            worker = self.workers[name]
            if worker.done or not worker.where:
                continue  # it did not start: the run fails naming it
            self.events.append({"event": "worker_replaced", "worker": name, "time": time.time(),
                                "where": dict(worker.where), "lost": loss})
            row = {"worker_replaced": 1.0, "replacements": float(run.replacements)}
            if loss.get("silent_s") is not None:
                row["silent_s"] = loss["silent_s"]
            run.context.log_metrics(name, row)

    def _death(self, worker: Worker, error: BaseException | None, run_dir: Path | None, note: str = "") -> str:
        code = worker.returncode
        how = f"exit code {code}" if worker.process is not None else "its Ray actor ended (actor or node lost)"
        if code is not None and code < 0:
            try:
                how += f" ({signal.Signals(-code).name})"
            except ValueError:
                pass
        text = f"worker {worker.name!r} (nodes {', '.join(n for n in worker.nodes if not n.startswith('~'))}) died: "
        text += how if error is None else f"bad frame ({type(error).__name__}: {error}); killed, {how}"
        return text + note + _last_checkpoint(run_dir)

    def _event(self, run: GraphRun, kind: str, worker: Worker, values: dict[str, float]) -> None:
        """Record a worker event: in the summary (with where the worker ran) and as a metrics row named after it."""
        self.events.append({"event": kind, "worker": worker.name, "time": time.time(), "where": dict(worker.where)}
                           | values)
        run.context.log_metrics(worker.name, {kind: 1.0} | values)

    def _worker_gone(self, run: GraphRun, worker: Worker, cause: BaseException | None) -> None:
        """The worker reports nothing more: fail the run if it died, end its links on the other sides."""
        if cause is not None:
            run.fail(worker.name, "worker", "run", cause)
        self.snapshots.worker_gone(worker.name)
        run.participant_finished(_live_key(worker))  # the last one: the run completes as it would in one process
        for crossing in self.split.links:
            if {crossing.src_process, crossing.dst_process} in self._direct:
                continue  # the other worker sees the socket end after the last frame and ends the link itself
            if crossing.dst_process == worker.name:
                self._deliver(wire.RELEASE, crossing.index, wire.frame(wire.RELEASE, crossing.index))
            elif crossing.src_process == worker.name:
                if crossing.dst_process == MAIN and self.endpoint is not None:
                    self.endpoint.cut(crossing.index, cause or Stopped(f"worker {worker.name!r} ended"))
                else:
                    self._deliver(wire.END, crossing.index, wire.frame(wire.END, crossing.index))

    def _on_control(self, run: GraphRun, worker: Worker, message: list[Any]) -> None:
        op = message[0]
        if op == "counter":
            _, counter_op, name, value = message
            assert self.mirror is not None
            self.snapshots.origin = worker.name  # a checkpoint due at this change is the worker's point
            try:
                self.mirror.apply(counter_op, name, value)
            finally:
                self.snapshots.origin = None
            self._counter(worker.name, counter_op, name, value)
        elif op == "stop":
            run.context.request_stop(message[1], message[2])
        elif op == "metrics":
            run.context.log_metrics(message[1], message[2])
        elif op == "blocked":  # every node of the worker waits: the watchdog here sees the whole graph
            run.participant_blocked(_live_key(worker), f"[{message[1]}]")
        elif op == "moving":
            run.participant_moving(_live_key(worker))
        elif op == "point":
            self.snapshots.on_point(worker.name, message[1], message[3], run.context.checkpoint_handler, message[2])
        elif op == "snapshot":
            self.snapshots.on_snapshot(worker.name, message[1])
        elif op == "result":
            worker.result = result = message[1]
            error = result.get("error")
            if result.get("stop_reason") == "failed" and error is not None:
                run.fail(error["node"] or worker.name, error["type"] or "worker", error["phase"],
                           RemoteFailure(f"in worker {worker.name!r}: {error['cause']}"))

    def _counter(self, origin: str | None, op: str, name: str, value: float) -> None:
        """Pass a counter change made in ``origin`` (``None``: here) to every other worker."""
        frame = self._control(["counter", op, name, value])
        for worker in self.workers.values():
            if worker.name != origin:
                worker.send(frame)

    # ---- stopping -------------------------------------------------------------------------------------------
    async def stop(self, run: GraphRun) -> None:
        """Tell every worker to stop, wait for their results (killing a worker that takes longer than
        ``STOP_TIMEOUT_S``), and end every crossing link here. Never leaves a worker process behind."""
        self.snapshots.stop()
        try:
            frame = self._control(["stop", run.stop_reason or "completed"])
            for worker in self.workers.values():
                worker.send(frame)
                worker.close()
            if self.endpoint is not None:
                self.endpoint.cut_all(Stopped("the run stopped"))
            readers = [w.reader for w in self.workers.values() if w.reader is not None]
            if readers:
                _, late = await asyncio.wait(readers, timeout=STOP_TIMEOUT_S)
                for worker in self.workers.values():
                    if worker.reader in late and not worker.killed:
                        worker.killed = True
                        worker.kill()
                        self._late(run, worker)
                if late:
                    await asyncio.wait(late, timeout=5.0)
        finally:
            for worker in self.workers.values():
                if worker.process is not None and worker.process.returncode is None:
                    worker.killed = True
                    worker.kill()
            if self.heartbeats is not None:
                self.heartbeats.close()
            if self.ray is not None:  # a Ray this run started stays up for the attempt that replaces a part
                await self.ray.stop(self.workers.values(), shutdown=not run.replacing)
            if self.slot_dir is not None:
                shutil.rmtree(self.slot_dir, ignore_errors=True)

    def _late(self, run: GraphRun, worker: Worker) -> None:
        """A worker that did not stop in time was killed: a failure naming the node that blocked its event loop,
        when the worker noted one (``stall``), else a warning."""
        stall = read_stall(worker.stall_file)
        text = f"worker {worker.name!r} did not stop within {STOP_TIMEOUT_S:g}s: killed"
        if stall is None:
            run.context.warn(text)
            return
        node_id, where = stall
        run.fail(node_id or worker.name, "worker", "run", WorkerDied(f"{text}; {where}"))

    # ---- result ---------------------------------------------------------------------------------------------
    def merge_result(self, result: RunResult) -> None:
        """Fold the workers' nodes, channels and warnings into ``result``; each crossing link is reported under
        its own name (``src.port -> dst.port``), its two halves and the wire between them counted together."""
        proxies = {c.send_id for c in self.split.links} | {c.receive_id for c in self.split.links}
        channels = {MAIN: dict(result.channels)}
        sends = {MAIN: self.endpoint.stats() if self.endpoint is not None else {}}
        for worker in self.workers.values():
            reported = worker.result or {}
            result.nodes.update(reported.get("nodes", {}))
            result.warnings.extend(reported.get("warnings", []))
            channels[worker.name] = dict(reported.get("channels", {}))
            sends[worker.name] = {int(k): v for k, v in reported.get("links", {}).items()}
        for node_id in proxies:
            result.nodes.pop(node_id, None)
        merged: dict[str, dict[str, float]] = {}
        for crossing in self.split.links:
            link = crossing.link
            near = channels[crossing.src_process].pop(f"{link.src}.{link.src_port} -> {crossing.send_id}.x", {})
            far = channels[crossing.dst_process].pop(f"{crossing.receive_id}.out -> {link.dst}.{link.dst_port}", {})
            sent = sends[crossing.src_process].get(crossing.index, {})
            merged[crossing.name] = {
                "messages": far.get("messages", sent.get("messages", 0)),
                "max_depth": far.get("max_depth", 0),
                "drops": near.get("drops", 0) + far.get("drops", 0) + sent.get("drops", 0),
                "producer_wait_s": round(near.get("producer_wait_s", 0.0) + sent.get("credit_wait_s", 0.0), 6),
                "consumer_wait_s": far.get("consumer_wait_s", 0.0),
                "depth": far.get("depth", 0),
            }
        result.channels = {name: stats for part in channels.values() for name, stats in part.items()} | merged
        gaps = self.heartbeats.longest_gap if self.heartbeats is not None else {}
        late = self.heartbeats.late if self.heartbeats is not None else {}
        workers = {w.name: dict(w.where) | {"longest_heartbeat_gap_s": round(gaps.get(w.name, 0.0), 3),
                                            "late_heartbeats": late.get(w.name, 0),
                                            "cpu_s": (w.result or {}).get("cpu_s"),
                                            "nice": (w.result or {}).get("nice")} for w in self.workers.values()}
        result.placement = {"workers": workers, "events": list(self.events)}
