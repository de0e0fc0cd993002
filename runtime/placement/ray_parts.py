"""Worker parts as Ray actors: Ray places and starts them; the frames never ride Ray calls.

A worker entry ``"workers": {"envs1": {"ray": {"num_cpus": 1, "resources": {...}, "node_label": {...}}}}`` runs
that part as a Ray actor (``RayParts.launch``). The actor runs the same worker program as a worker process
(``worker.serve_streams``), over a TCP connection to this process instead of a pipe: the main process listens on
its node's address, the actor connects back twice (frames, heartbeat), each connection opened by the actor's own
random token, so nothing else on the network can speak for it. Frames are the process path's batched frames, one
per message, never one Ray call per message; tensors travel inside them (shared-memory slots are for one machine,
and a Ray actor may be on another). Ray is told never to retry or restart the actor (``max_restarts=0``,
``max_task_retries=0``): an env step is never re-executed behind the run's back; a lost actor is the heartbeat's
(``heartbeat``) to detect.

Ray is an optional extra (``pip install "dnne-runtime[ray]"``): this module imports it when a run starts, and
``validate`` refuses a Ray entry without it.
"""
from __future__ import annotations

import asyncio
import os
import secrets
import socket
import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import Issue
from .heartbeat import Beat, Monitor

if TYPE_CHECKING:
    from .hub import Worker

CONNECT_TIMEOUT_S = 120.0
"""How long a started actor may take to connect back (Ray may first have to start a worker process)."""
RAY_OPTIONS = ("num_cpus", "num_gpus", "resources", "node_label")
"""What a ``workers.NAME.ray`` entry may set."""
_TOKEN = 32  # hex characters


def ray_installed() -> bool:
    """Whether the ``ray`` extra is installed (without importing it)."""
    from importlib.util import find_spec

    return find_spec("ray") is not None


class _Actor:
    """The Ray actor that runs one worker part (Ray turns this class into an actor class in ``_actor_class``)."""

    def where(self) -> dict[str, Any]:
        """Where this actor runs: Ray node id, node ip, host, pid."""
        import ray

        return {"kind": "ray", "node_id": ray.get_runtime_context().get_node_id(),
                "ip": ray.util.get_node_ip_address(), "host": socket.gethostname(), "pid": os.getpid()}

    def serve(self, host: str, port: int, token: str, name: str, plugins: Sequence[str],
              paths: Sequence[str]) -> int:
        """Connect back to the main process and run the worker part until it ends; its exit code."""
        for path in paths:  # the driver's module paths (plugins, test helpers) where this node has them
            if path not in sys.path and os.path.isdir(path):
                sys.path.append(path)
        beat_socket = socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S)
        beat_socket.sendall(token.encode() + b"H")
        beat = Beat(beat_socket)
        beat.start()
        try:
            return asyncio.run(_serve(host, port, token, name, list(plugins), beat))
        finally:
            beat.stop()


async def _serve(host: str, port: int, token: str, name: str, plugins: list[str], beat: Beat) -> int:
    """The actor's worker program: the frame connection back to the main process, then ``serve_streams`` (not
    a method: a coroutine method would make Ray run the actor on its own event loop)."""
    from .worker import serve_streams

    reader, writer = await asyncio.open_connection(host, port, limit=2**20)
    writer.write(token.encode() + b"F")
    return await serve_streams(name, plugins, reader, writer.transport, beat)  # type: ignore[arg-type]


_ACTOR_CLASS: Any = None


def _actor_class() -> Any:
    global _ACTOR_CLASS
    if _ACTOR_CLASS is None:
        import ray

        _ACTOR_CLASS = ray.remote(max_restarts=0, max_task_retries=0)(_Actor)
    return _ACTOR_CLASS


class ActorHandle:
    """A started part's actor, as the hub's ``Worker.actor``: ``kill`` ends it without a restart."""

    def __init__(self, handle: Any, done: Any) -> None:
        self.handle = handle
        self.done = done

    def kill(self) -> None:
        """Kill the actor (Ray does not restart it)."""
        import ray

        try:
            ray.kill(self.handle, no_restart=True)
        except Exception:  # already gone with its node: nothing left to kill
            pass


def check_ray_options(name: str, options: dict[str, Any]) -> list[Issue]:
    """Why worker ``name``'s ``ray`` entry cannot run: not a mapping, an unknown or ill-typed key, combined with
    ``python`` (an actor runs the cluster's Python), or the ``ray`` extra not installed."""
    where = f"/workers/{name}/ray"
    entry = options["ray"]
    if not isinstance(entry, dict):
        return [Issue("bad_placement", f"worker {name!r}: 'ray' must be an object such as {{\"num_cpus\": 1}}",
                      where=where)]
    issues = [Issue("bad_placement", f"worker {name!r}: unknown Ray option {key!r} (known: {', '.join(RAY_OPTIONS)})",
                    where=f"{where}/{key}") for key in entry if key not in RAY_OPTIONS]
    for key in ("num_cpus", "num_gpus"):
        value = entry.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e6:
            issues.append(Issue("bad_placement", f"worker {name!r}: ray.{key} must be a number >= 0",
                                where=f"{where}/{key}"))
    for key in ("resources", "node_label"):
        value = entry.get(key, {})
        numbers = key == "resources"
        if not isinstance(value, dict) or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0 if numbers else isinstance(v, str)
                for v in value.values()):
            kind = "resource names to amounts >= 0" if numbers else "label names to values (strings)"
            issues.append(Issue("bad_placement", f"worker {name!r}: ray.{key} must map {kind}",
                                where=f"{where}/{key}"))
    if "python" in options:
        issues.append(Issue("bad_placement", f"worker {name!r}: 'python' and 'ray' exclude each other (a Ray actor "
                            "runs under the cluster's Python)", where=f"/workers/{name}/python"))
    if not ray_installed():
        issues.append(Issue("ray_not_installed", f"worker {name!r} is placed on Ray, which is not installed: "
                            'install the ray extra (pip install "dnne-runtime[ray]")', where=where))
    return issues


def actor_options(options: dict[str, Any]) -> dict[str, Any]:
    """Ray's ``.options()`` for a ``workers.NAME.ray`` entry (resources, and a node label as a label selector)."""
    chosen: dict[str, Any] = {"num_cpus": options.get("num_cpus", 1), "max_restarts": 0, "max_task_retries": 0}
    if "num_gpus" in options:
        chosen["num_gpus"] = options["num_gpus"]
    if options.get("resources"):
        chosen["resources"] = dict(options["resources"])
    if options.get("node_label"):
        chosen["label_selector"] = {str(k): str(v) for k, v in options["node_label"].items()}
    return chosen


class RayParts:
    """The main process's side of the Ray parts of one run: Ray, the listening socket, the actors.

    Args:
        address: the Ray cluster to join (``run.ray_address`` or ``--ray-address``); ``None``: the one this
            process already joined, else a local Ray started for the run.
        plugins: the plugin modules the actors load (as worker processes do).
        entries: the run's ``ray`` entries: a local Ray started for the run offers the CPUs and custom resources
            they ask for (on one machine), so a graph written for a cluster runs as shipped.
    """

    def __init__(self, address: str | None, plugins: Sequence[str], entries: Iterable[dict[str, Any]]) -> None:
        self.address = address
        self.entries = list(entries)
        self.plugins = list(plugins)
        self.started_ray = False
        self._listener: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._waiting: dict[bytes, asyncio.Future[socket.socket]] = {}
        self.host = "127.0.0.1"
        self.port = 0

    async def start(self) -> None:
        """Join (or start) Ray and listen for the actors' connections on this node's address."""
        import ray

        if not ray.is_initialized():
            local: dict[str, Any] = {}
            if self.address is None:
                resources: dict[str, float] = {}
                for entry in self.entries:
                    for key, amount in (entry.get("resources") or {}).items():
                        resources[key] = resources.get(key, 0) + amount
                cpus = sum(entry.get("num_cpus", 1) for entry in self.entries)
                local = {"num_cpus": max(int(cpus + 0.999), os.cpu_count() or 1), "resources": resources}
            # "local": a new Ray of its own, even where another one runs on this machine
            await asyncio.to_thread(ray.init, address=self.address or "local", include_dashboard=False,
                                    log_to_driver=True, configure_logging=False, **local)
            self.started_ray = True
        self.host = ray.util.get_node_ip_address()
        listener = socket.create_server((self.host, 0), backlog=64)
        listener.setblocking(False)
        self.port = listener.getsockname()[1]
        self._listener = listener
        self._accepting = asyncio.ensure_future(self._accept(listener))

    async def _accept(self, listener: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            connection, _ = await loop.sock_accept(listener)
            asyncio.ensure_future(self._hello(connection))

    async def _hello(self, connection: socket.socket) -> None:
        """Read the connection's token and kind; hand it to the part that waits for it, or close it."""
        loop = asyncio.get_running_loop()
        connection.setblocking(False)
        hello = b""
        try:
            while len(hello) < _TOKEN + 1:
                chunk = await asyncio.wait_for(loop.sock_recv(connection, _TOKEN + 1 - len(hello)), 10.0)
                if not chunk:
                    break
                hello += chunk
        except (OSError, asyncio.TimeoutError):
            pass
        waiter = self._waiting.pop(hello, None)
        if waiter is None or waiter.done():
            connection.close()
            return
        waiter.set_result(connection)

    def _expect(self, token: str, kind: bytes) -> asyncio.Future[socket.socket]:
        future: asyncio.Future[socket.socket] = asyncio.get_running_loop().create_future()
        self._waiting[token.encode() + kind] = future
        return future

    async def launch(self, worker: Worker, options: dict[str, Any], heartbeats: Monitor) -> None:
        """Start ``worker``'s actor, wait for its two connections, and fill in the worker's frame connection,
        actor handle and place; ``OSError`` when it cannot be placed or does not connect in time."""
        import ray

        token = secrets.token_hex(_TOKEN // 2)
        frames, beat = self._expect(token, b"F"), self._expect(token, b"H")
        handle = _actor_class().options(name=None, **actor_options(options)).remote()
        placed = handle.where.remote()  # before serve: an actor runs its calls one at a time, in order
        done = handle.serve.remote(self.host, self.port, token, worker.name, self.plugins,
                                   [p for p in sys.path if p])
        actor = ActorHandle(handle, done)
        worker.actor = actor
        try:
            where = await asyncio.wait_for(asyncio.wrap_future(placed.future()), CONNECT_TIMEOUT_S)
            beat_socket = await asyncio.wait_for(beat, CONNECT_TIMEOUT_S)
            frame_socket = await asyncio.wait_for(frames, CONNECT_TIMEOUT_S)
        except (asyncio.TimeoutError, ray.exceptions.RayError) as error:
            actor.kill()
            raise OSError(f"Ray actor not placed or not connected within {CONNECT_TIMEOUT_S:g}s: {error}") from None
        heartbeats.watch(worker.name, beat_socket)
        worker.stream, worker.writer = await asyncio.open_connection(sock=frame_socket, limit=2**20)
        worker.where = where

    async def stop(self, workers: Iterable[Worker], shutdown: bool = True) -> None:
        """Wait briefly for each actor's serve call, kill what is left, stop listening (and stop the Ray this
        run started, unless ``shutdown`` is false: the run goes on with a replaced part, ``take_over``)."""
        import ray

        for worker in workers:
            actor = worker.actor
            if actor is None:
                continue
            try:
                await asyncio.wait_for(asyncio.wrap_future(actor.done.future()), 5.0)
            except Exception:  # a lost or killed actor: its error is the heartbeat's or the frame reader's to report
                pass
            actor.kill()
        if self._accepting is not None:
            self._accepting.cancel()
        if self._listener is not None:
            self._listener.close()
        if self.started_ray and shutdown:
            await asyncio.to_thread(ray.shutdown)

    def take_over(self, previous: RayParts) -> None:
        """Become the owner of the Ray ``previous`` (an attempt that ended for a replaced part) started: this
        one stops it."""
        self.started_ray = self.started_ray or previous.started_ray
