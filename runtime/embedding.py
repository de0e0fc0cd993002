"""``run(graph, on_metrics=...)``: a graph run embedded in a host's asyncio application, on a loop of its own."""
from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

from . import heap
from .graph import Graph
from .loading import load_graph
from .native_preload import preload_extensions
from .registry import NodeRegistry, default_registry
from .runner import GraphRun, RunResult
from .sinks import MetricsCallback
from .sinks.callback import MetricsHook


async def run(graph: Graph | str | Path | dict[str, Any], registry: NodeRegistry | None = None, *,
              on_metrics: MetricsCallback | None = None, **options: Any) -> RunResult:
    """Run ``graph`` and return its result, leaving the caller's event loop free (see ``GraphRun`` for ``options``).

    Made for embedding: everything the run does (finding node packages, which imports torch; loading a graph given
    as a path or a dict; building; env construction in node setups; the nodes' own work, a training update
    included) happens on an event loop of its own in a thread of its own, so a host's timers keep firing while it
    runs. ``on_metrics(row)`` receives each metrics row as ``metrics.jsonl`` would record it, called on the
    caller's loop (in the order the rows were logged, all of them before ``run`` returns). Cancelling the awaiting
    task stops the run at its next consistent point (as a SIGINT does), waits for it to end, then re-raises.

    A first ``import torch`` would hold the interpreter lock for 0.35-0.55 s while libtorch loads; the run's thread
    loads torch's native library first with the lock released (``native_preload``), so the import stalls the
    caller's loop no longer than ordinary Python code does; and the collector's full collections, which would walk
    the objects those imports create holding the lock, wait until the graph is loaded, when the objects
    alive are frozen (``heap``: once per process, the caller's objects included; the run's own are not).
    """
    host = asyncio.get_running_loop()
    hooks = list(options.pop("hooks", ()))
    if on_metrics is not None:
        callback = on_metrics
        hooks.append(MetricsHook(lambda row: host.call_soon_threadsafe(callback, row)))
    embedded = EmbeddedRun(host, graph, registry, hooks, options)
    embedded.start()
    try:
        return await asyncio.shield(embedded.result)
    except asyncio.CancelledError:
        embedded.stop("interrupted")
        await asyncio.wait([embedded.result])
        raise


class EmbeddedRun:
    """One graph run on its own event loop in a daemon thread; its outcome lands in ``result``, a future of the
    host's loop.

    Args:
        host: the caller's event loop.
        graph: a ``Graph``, a graph file's path or its parsed document.
        registry: the node types (``default_registry()``, in the run's thread, when ``None``).
        hooks: run hooks (they run in the run's thread).
        options: further ``GraphRun`` options.
    """

    def __init__(self, host: asyncio.AbstractEventLoop, graph: Graph | str | Path | dict[str, Any],
                 registry: NodeRegistry | None, hooks: list[Any], options: dict[str, Any]) -> None:
        self.host = host
        self.graph = graph
        self.registry = registry
        self.hooks = hooks
        self.options = options
        self.result: asyncio.Future[RunResult] = host.create_future()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._graph_run: GraphRun | None = None
        self._stop_reason: str | None = None
        self._thread = threading.Thread(target=self._main, name="dnne-embedded-run", daemon=True)

    def start(self) -> None:
        """Start the run's thread."""
        self._thread.start()

    def stop(self, reason: str) -> None:
        """Ask the run to stop with ``reason`` (before it is built: as soon as it is)."""
        with self._lock:
            self._stop_reason = reason
            if self._loop is not None and self._graph_run is not None:
                self._loop.call_soon_threadsafe(self._graph_run.request_stop, reason)

    def _main(self) -> None:
        try:
            outcome = asyncio.run(self._execute())
        except BaseException as error:  # every failure, a GraphError from loading included, reaches the caller
            self._deliver(self._fail, error)
        else:
            self._deliver(self._succeed, outcome)

    async def _execute(self) -> RunResult:
        heap.defer()  # no full collection over the imports' objects while they appear (heap.py)
        try:
            preload_extensions("torch", "_C*.so")  # libtorch's loading, off the interpreter lock (native_preload.py)
            registry = self.registry if self.registry is not None else default_registry()
            graph = self.graph if isinstance(self.graph, Graph) else load_graph(self.graph, registry=registry)
            heap.settle()  # done by load_graph, but not for a Graph object given as it is (heap.py)
            graph_run = GraphRun(graph, registry, hooks=self.hooks, **self.options)
            graph_run.build()
            with self._lock:
                self._loop, self._graph_run = asyncio.get_running_loop(), graph_run
                if self._stop_reason is not None:
                    graph_run.request_stop(self._stop_reason)
            return await graph_run.execute()
        finally:
            heap.settle()  # a run that failed before it was built
            with self._lock:  # this object may be frozen (heap.py): it must not keep the run alive
                self._loop = self._graph_run = None

    def _deliver(self, setter: Any, value: Any) -> None:
        try:
            self.host.call_soon_threadsafe(setter, value)
        except RuntimeError:  # the host's loop closed without waiting for the run
            pass

    def _succeed(self, outcome: RunResult) -> None:
        if not self.result.done():
            self.result.set_result(outcome)

    def _fail(self, error: BaseException) -> None:
        if not self.result.done():
            self.result.set_exception(error)
