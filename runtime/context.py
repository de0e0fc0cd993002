"""What a node sees of its run: seed, device, counters, metrics, declarations, warnings and stop requests."""
from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .counters import Counters

log = logging.getLogger("dnne")


def derive_seed(run_seed: int, node_id: str) -> int:
    """A node's own seed, derived from the run seed and its id (stable across Python processes)."""
    digest = hashlib.sha256(f"{run_seed}:{node_id}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & 0x7FFF_FFFF_FFFF_FFFF


class NodeContext:
    """The handle a node gets on its run; one per node, no globals.

    Args:
        node_id: the node's id.
        node_type: the node's type name.
        run: the run-wide state shared by every node context of one run.
    """

    def __init__(self, node_id: str, node_type: str, run: RunContext) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.run = run
        self.declarations: dict[str, Any] = {}
        self.seed = derive_seed(run.seed, node_id)

    @property
    def device(self) -> str:
        """The run's default device (``cpu`` or ``cuda``)."""
        return self.run.device

    @property
    def settings(self) -> dict[str, Any]:
        """The graph's run section (seed, stop conditions, ...), read-only by convention."""
        return self.run.settings

    @property
    def mode(self) -> str:
        """``train`` or ``play``."""
        return self.run.mode

    @property
    def counters(self) -> Counters:
        """The run's counters."""
        return self.run.counters

    @property
    def run_dir(self) -> Path | None:
        """The run directory, when the run has one."""
        return self.run.run_dir

    def log_metrics(self, values: dict[str, float]) -> None:
        """Record a row of metrics (TensorBoard, ``metrics.jsonl``) stamped with the run's counters."""
        self.run.log_metrics(self.node_id, values)

    def warn(self, message: str) -> None:
        """Report a warning that names this node."""
        self.run.warn(f"{self.node_id} ({self.node_type}): {message}")

    def request_stop(self, reason: str = "node_stop") -> None:
        """Ask the runner to stop the graph gracefully."""
        self.run.request_stop(reason, self.node_id)

    def use_stop_points(self) -> None:
        """Declare that this node calls ``stop_point()`` at its consistent points; a graceful stop then waits for
        the next one, so the final checkpoint resumes exactly."""
        self.run.stop_points.add(self.node_id)

    def leave_stop_point(self) -> None:
        """This node leaves its consistent point for work that must not be cut (a trainer starting an update in
        a thread): a graceful stop reached at another node's stop point meanwhile waits until this node is at
        its next ``stop_point()``, so every node with stop points ends at one, whatever the threads' timing."""
        self.run.underway.add(self.node_id)

    async def stop_point(self) -> None:
        """A consistent point of this node. For a node that declared stop points (``use_stop_points``): if a
        graceful stop is pending, the run stops here, once no other node is between its stop points (this never
        returns then; the node is cancelled with the rest). A node that only held a stop for a piece of work
        (``leave_stop_point`` without declaring) releases it here and goes on: the stop still ends at a declared
        node's stop point, so such work never cuts short the work a stop waits for."""
        if self.node_id in self.run.stop_points and self.run.stopping and self.run.stop_point_handler is not None:
            self.run.resting.add(self.node_id)
            self.run.left_between_points(self.node_id)
            await asyncio.get_running_loop().create_future()
        self.run.left_between_points(self.node_id)

    def request_checkpoint(self, reason: str, keep_as: str | None = None,
                           record: dict[str, Any] | None = None) -> None:
        """Ask the run to save a checkpoint of every stateful node now (ignored when the run keeps none).

        With ``keep_as`` (a lowercase word, such as ``best``) the checkpoint is also kept under that name
        (``checkpoints/NAME.pt``, replaced by the next one of the name and never pruned), and ``record`` (plain
        values: what makes it that one) is written with its path to ``summary.json`` as ``NAME_checkpoint``.
        """
        if self.run.checkpoint_handler is not None:
            keep = None if keep_as is None else {"name": keep_as, "record": dict(record or {})}
            self.run.checkpoint_handler(f"{self.node_id}: {reason}", keep)

    def shared(self, name: str, factory: Callable[[], Any]) -> Any:
        """A run-wide object shared by the nodes of this run (see ``RunContext.shared``)."""
        return self.run.shared(name, factory)

    def producer(self, port: str) -> str | None:
        """The id of the node that feeds input ``port`` (the first, with several links), as in the whole graph:
        where the link crosses a process boundary, the producer on the other side, not the proxy that relays it."""
        sources = self.run.upstream_links.get((self.node_id, port), [])
        return self.run.relays.get(sources[0], sources[0]) if sources else None

    def relay_for(self, producer: str) -> None:
        """Declare that this node relays the messages of node ``producer`` (a crossing link's receiving end), so
        ``producer`` of a node it feeds names ``producer``."""
        self.run.relays[self.node_id] = producer

    def is_linked(self, port: str) -> bool:
        """Whether this node's port has a link."""
        return port in self.run.linked_ports.get(self.node_id, ())

    def find_upstream(self, key: str, port: str) -> Any:
        """Breadth-first search upstream from input ``port`` for a node that declared ``key``."""
        return self.run.find_upstream(self.node_id, port, key)


class RunContext:
    """Run-wide state behind every ``NodeContext`` of one run.

    Args:
        seed: the run seed.
        device: default device.
        mode: ``train`` or ``play``.
        counters: the run's counters.
        run_dir: where the run writes, if anywhere.
    """

    def __init__(
        self, seed: int, device: str, mode: str, counters: Counters, run_dir: Path | None = None
    ) -> None:
        self.seed = seed
        self.device = device
        self.mode = mode
        self.counters = counters
        self.run_dir = run_dir
        self.settings: dict[str, Any] = {}
        self.warnings: list[str] = []
        self.contexts: dict[str, NodeContext] = {}
        self.linked_ports: dict[str, set[str]] = {}
        self.upstream_links: dict[tuple[str, str], list[str]] = {}
        self.relays: dict[str, str] = {}
        """A relaying node's id -> the id of the node whose messages it relays (``NodeContext.relay_for``)."""
        self.metric_sinks: list[Callable[[str, dict[str, float]], None]] = []
        self.stop_handler: Callable[[str, str], None] | None = None
        self.checkpoint_handler: Callable[[str, dict[str, Any] | None], None] | None = None
        self.stop_points: set[str] = set()
        self.underway: set[str] = set()
        """Nodes between two stop points (``NodeContext.leave_stop_point``)."""
        self.resting: set[str] = set()
        """Nodes waiting at a stop point for a graceful stop to complete."""
        self.stopping = False
        self.halting = False
        """The run stops now: its node tasks are about to be cancelled (no node fires in another's task any more)."""
        self.stop_point_handler: Callable[[], None] | None = None
        self._shared: dict[str, Any] = {}

    def restart(self, counters: Counters) -> None:
        """Begin another attempt at the run (a replaced part): new counters, no node contexts, links, relays, shared
        objects or stop points yet; settings, handlers, metric sinks and warnings stay."""
        self.counters = counters
        self.contexts = {}
        self.linked_ports = {}
        self.upstream_links = {}
        self.relays = {}
        self.stop_points = set()
        self.underway = set()
        self.resting = set()
        self.stopping = False
        self.halting = False
        self._shared = {}

    def left_between_points(self, node_id: str) -> None:
        """``node_id`` is no longer between two stop points (it reached one, or ended): a graceful stop that nodes
        wait for at their stop points completes once no other node is."""
        self.underway.discard(node_id)
        if self.stopping and self.resting and not self.underway and self.stop_point_handler is not None:
            self.stop_point_handler()

    def shared_objects(self) -> dict[str, Any]:
        """Every run-wide shared object, by name."""
        return dict(self._shared)

    def shared(self, name: str, factory: Callable[[], Any]) -> Any:
        """A run-wide object that several nodes of one run share (created by ``factory`` on first use)."""
        if name not in self._shared:
            self._shared[name] = factory()
        return self._shared[name]

    def context(self, node_id: str, node_type: str) -> NodeContext:
        """Create the context of one node."""
        ctx = NodeContext(node_id, node_type, self)
        self.contexts[node_id] = ctx
        return ctx

    def warn(self, message: str) -> None:
        """Record and log a warning."""
        self.warnings.append(message)
        log.warning(message)

    def log_metrics(self, node_id: str, values: dict[str, float]) -> None:
        """Pass a metrics row to every sink."""
        for sink in self.metric_sinks:
            sink(node_id, values)

    def request_stop(self, reason: str, node_id: str) -> None:
        """Forward a node's stop request to the runner."""
        if self.stop_handler is not None:
            self.stop_handler(reason, node_id)

    def upstream_nodes(self, node_id: str, port: str | None = None) -> Iterator[str]:
        """Node ids upstream of ``node_id`` (of its input ``port`` only, when given), nearest first."""
        frontier = [src for (dst, dst_port), sources in self.upstream_links.items()
                    if dst == node_id and port in (None, dst_port) for src in sources]
        seen: set[str] = set()
        while frontier:
            upstream = frontier.pop(0)
            if upstream in seen:
                continue
            seen.add(upstream)
            yield upstream
            frontier.extend(src for (dst, _), sources in self.upstream_links.items() if dst == upstream
                            for src in sources)

    def find_upstream(self, node_id: str, port: str, key: str) -> Any:
        """The nearest upstream declaration of ``key`` reachable from ``node_id.port``."""
        for upstream in self.upstream_nodes(node_id, port):
            declared = self.contexts[upstream].declarations
            if key in declared:
                return declared[key]
        return None
