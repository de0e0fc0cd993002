"""Running a validated graph: build channels, set up in dependency order, run every node, stop, tear down."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from . import checkpoint
from .channel import Activity, LocalChannel, Message
from .context import RunContext
from .counters import Counters
from .durations import parse_duration
from .errors import NodeFailure
from .firing import FusedFailure
from .graph import Graph
from .hang_watch import HangWatch
from .io import InputSlot, Link, NodeIO
from .node import Node
from .plan import setup_order
from .registry import NodeRegistry, default_registry
from .stopping import StopRule, stop_rules
from .types import Token
from .watchdog import Watchdog

DEFAULT_CAPACITY = 2
STOP_REASONS = ("stop", "timeout", "node_stop", "completed", "interrupted", "failed")  # plus predicates' reasons


@dataclass
class RunResult:
    """What a finished run reports.

    Args:
        stop_reason: one of ``STOP_REASONS`` or the reason of the stop predicate that held (``stopping``).
        solved: the run stopped on a predicate marked ``solved`` (its goal).
        counters: the final counters, by name.
        wall_time_s: seconds from start barrier to the end of teardown.
        cpu_s: this process's CPU seconds over the same span (with ``wall_time_s``, how busy the process was).
        nodes: per node: firings, busy and blocked seconds.
        channels: per channel: messages, max depth, drops, producer and consumer wait seconds.
        error: the failure that stopped the run, if any.
        warnings: warnings raised while it ran.
        summary_fields: the node packages' top-level summary fields (``vocabulary``) of these counters.
        placement: a split run's workers (where each ran) and their events (``runtime/placement``); empty otherwise.
        solved_at: when a ``solved`` predicate first held: the summary fields of the counters then and the seconds
            since the start barrier (``None`` unsolved). The run goes on to its next consistent point after that, so
            the final counters can be past it (more env steps, a mean return that moved on).
    """

    stop_reason: str
    solved: bool
    counters: dict[str, float]
    wall_time_s: float
    nodes: dict[str, dict[str, float]] = field(default_factory=dict)
    channels: dict[str, dict[str, float]] = field(default_factory=dict)
    error: NodeFailure | None = None
    warnings: list[str] = field(default_factory=list)
    summary_fields: dict[str, Any] = field(default_factory=dict)
    placement: dict[str, Any] = field(default_factory=dict)
    solved_at: dict[str, Any] | None = None
    cpu_s: float = 0.0

    @property
    def failed(self) -> bool:
        """Whether a node failed."""
        return self.stop_reason == "failed"

    def summary(self) -> dict[str, Any]:
        """The result as JSON-ready data (the body of ``summary.json``)."""
        counters = self.counters
        return {
            "stop_reason": self.stop_reason,
            "solved": self.solved,
            "solved_at": self.solved_at,
            **self.summary_fields,
            "wall_time_s": round(self.wall_time_s, 3),
            "cpu_s": round(self.cpu_s, 3),
            "counters": counters,
            "error": None if self.error is None else {
                "node": self.error.node_id, "type": self.error.node_type, "phase": self.error.phase,
                "cause": f"{type(self.error.cause).__name__}: {self.error.cause}",
            },
            "nodes": self.nodes,
            "channels": self.channels,
            "warnings": self.warnings,
        } | ({"placement": self.placement} if self.placement else {})


class RunHooks(Protocol):
    """Observers of a run (run directory, progress display, checkpoints); every method is optional."""

    def on_start(self, run: GraphRun) -> None:
        """Called after setup (and restore), before any node runs."""

    def on_stop(self, run: GraphRun) -> None:
        """Called after every node has stopped and been torn down."""

    def last_consistent_state(self) -> tuple[dict[str, Any], Path | None] | None:
        """The newest consistent state of the whole graph this hook keeps (``checkpoint.collect``'s form) and the
        checkpoint file that holds it: a split run that replaces a lost part goes back to it."""


class DeadlockError(RuntimeError):
    """Every node waits on a channel and nothing moves."""


class DeadlockReporter(Protocol):
    """Where a part of a split graph reports instead of failing: all its nodes blocked, or moving again."""

    def blocked(self, message: str) -> None:
        """Every node of this part has been blocked for the grace period."""

    def moving(self) -> None:
        """A node of this part woke after ``blocked``."""


@dataclass(frozen=True)
class _Waits:
    """What a blocked participant waits on, as the watchdog names it."""

    name: str


class GraphRun:
    """One run of one graph. Create it, then ``await execute()``; ``request_stop`` ends it gracefully.

    Args:
        graph: a validated graph (``load_graph``), kept as ``graph``: what checkpoints and the run directory name.
            With a ``placement`` section this process builds only its ``part`` (the main part, proxies included).
        registry: the node types (default: every installed node package).
        mode: ``train`` or ``play`` (play leaves training-only nodes out).
        run_dir: where nodes and hooks may write.
        hooks: run observers (``on_start``/``on_stop``).
        deadlock_grace_s: how long every node must stay blocked before the watchdog reports a deadlock.
        restore: a checkpoint (``checkpoint.load``) to continue from: node states and counters, loaded after setup.
        worker_python: for a split graph, the interpreter aliases the user allowed (alias -> path); a graph file
            names only aliases (``placement.interpreters``).
    """

    def __init__(
        self,
        graph: Graph,
        registry: NodeRegistry | None = None,
        mode: str | None = None,
        run_dir: Path | None = None,
        hooks: Sequence[RunHooks] = (),
        deadlock_grace_s: float = 5.0,
        restore: dict[str, Any] | None = None,
        worker_python: dict[str, str] | None = None,
    ) -> None:
        self.graph = graph
        self.registry = registry or default_registry()
        self.mode = mode or graph.run.get("mode") or "train"
        self.worker_python = worker_python or {}
        self.hooks = list(hooks)
        self.deadlock_grace_s = deadlock_grace_s
        self._rules: dict[str, list[StopRule]] = {}
        for rule in stop_rules(graph.run, self.registry.vocabulary.shorthands):
            self._rules.setdefault(rule.counter, []).append(rule)
        self._timeout = parse_duration(graph.run["timeout"]) if graph.run.get("timeout") is not None else None
        self.stop_point_grace_s = 60.0
        self.hang_grace_s = 60.0  # nothing moving this long while a node awaits outside a channel: a hang
        self.deadlock_reporter: DeadlockReporter | None = None
        self.started_at = 0.0
        self.cpu_started_at = 0.0
        self.initial_restore = restore
        self.replacements = 0
        """How many lost parts this run replaced (``runtime/placement/failover.py``)."""
        self.interrupted = False
        """The user stopped the run (``interrupted``): a part lost then is not replaced."""
        self.context = RunContext(int(graph.run.get("seed") or 0), graph.run.get("device") or "cpu", self.mode,
                                  Counters(), run_dir)
        self.context.settings = dict(graph.run, allowed_modules=sorted(graph.allowed_modules))
        self.context.stop_handler = self._node_stop
        self.context.stop_point_handler = self._stop_now
        self._prepare(restore)

    def _prepare(self, restore: dict[str, Any] | None) -> None:
        """The state of one attempt at the run (a split run whose lost part is replaced makes another, from
        ``restore``): the placement, counters, nodes and channels (built by ``build``), outcome."""
        self.part = self.graph
        self.placement: Any = None
        if self.graph.placement:  # split over processes (runtime/placement): this process runs the main part
            from .placement import Placement

            self.placement = Placement(self.graph, self.registry, self.mode, self.worker_python)
            self.part = self.placement.main_graph
        self.restore = restore
        self.counters = Counters(restore["counters"], restore.get("windows")) if restore else Counters()
        self.context.restart(self.counters)
        self.nodes: dict[str, Node] = {}
        self.order: list[str] = []
        self.channels: dict[str, LocalChannel] = {}
        self.activities: dict[str, Activity] = {}
        self.stop_reason: str | None = None
        self.solved = False
        self._solved_at: dict[str, Any] | None = None
        self.error: NodeFailure | None = None
        self._stop_event: asyncio.Event | None = None
        self._watchdog: Watchdog | None = None
        self._started: dict[str, float] = {}
        self._alive: dict[str, float] = {}
        self._grace_timer: asyncio.TimerHandle | None = None
        self._participants: dict[str, Activity] = {}
        self.counters.listen(self._counter_changed)

    # ---- stopping -------------------------------------------------------------------------------------------
    def request_stop(self, reason: str) -> None:
        """Stop the graph gracefully for ``reason`` (the first reason wins).

        When nodes declared stop points (``ctx.use_stop_points()``), the graph runs on until one of them reaches
        its next consistent point (a trainer: right after an update), so the final checkpoint is a consistent
        cut that resumes exactly; after ``stop_point_grace_s`` it stops regardless. Failures stop at once.
        """
        if self.stop_reason is None:
            self.stop_reason = reason
        if reason == "interrupted":  # also after a lost part: the run does not go on with a replacement
            self.interrupted = True
        if self._stop_event is None:
            return
        live_points = self.context.stop_points & (self._watchdog.live if self._watchdog else set())
        if reason != "failed" and live_points and not self.context.stopping:
            self.context.stopping = True
            self._grace_timer = asyncio.get_running_loop().call_later(self.stop_point_grace_s, self._stop_now)
            return
        if reason == "failed" or not live_points:
            self._stop_now()

    def _stop_now(self) -> None:
        if self._stop_event is not None:
            self.context.halting = True
            self._stop_event.set()

    def _node_stop(self, reason: str, node_id: str) -> None:
        allowed = {"stop", "timeout", "node_stop"} | {rule.reason for rules in self._rules.values() for rule in rules}
        self.request_stop(reason if reason in allowed else "node_stop")

    def _fail(self, node_id: str, phase: str, cause: BaseException) -> None:
        node = self.nodes.get(node_id)
        self.fail(node_id, type(node).type_name() if node else self.part.nodes[node_id].type, phase, cause)

    # ---- what a placement (runtime/placement) tells its run -------------------------------------------------
    def fail(self, node_id: str, node_type: str, phase: str, cause: BaseException) -> None:
        """Fail the run for ``node_id`` (a node here or in another process, or a worker); the first failure wins."""
        if self.error is None:
            self.error = NodeFailure(node_id, node_type, phase, cause)
            self.stop_reason = "failed"
        self.request_stop("failed")

    def participant_started(self, key: str) -> None:
        """Something outside this process's nodes (a worker) takes part: the run completes only once it has
        finished, and the deadlock watchdog counts it as live (blocked only while it says so)."""
        assert self._watchdog is not None
        self._watchdog.add(key)

    def participant_blocked(self, key: str, waits: str) -> None:
        """Every node of participant ``key`` waits (``waits`` says on what): to the watchdog, a blocked node."""
        activity = self._participants.setdefault(key, Activity(key, self._watchdog))
        activity.block((_Waits(waits),))

    def participant_moving(self, key: str) -> None:
        """Participant ``key`` moves again."""
        if key in self._participants:
            self._participants[key].wake()

    def participant_finished(self, key: str) -> None:
        """A participant ended; the run completes when it was the last one."""
        if self._watchdog is not None:
            self._watchdog.finished(key)
            if not self._watchdog.live:
                self.request_stop("completed")

    def _counter_changed(self, name: str, value: float) -> None:
        for rule in self._rules.get(name, ()):
            if rule.holds(value):
                if rule.solved and self.stop_reason is None:
                    self.solved = True
                    elapsed = time.perf_counter() - self.started_at if self.started_at else 0.0
                    self._solved_at = self.registry.vocabulary.summary(self.counters.values) | {
                        "wall_time_s": round(elapsed, 3)}
                self.request_stop(rule.reason)
                return

    # ---- what checkpointing sees (checkpoint.Checkpointable) ----------------------------------------------
    def graph_signature(self) -> dict[str, str]:
        """Node id -> node type of the whole graph (every process's part)."""
        return {node_id: spec.type for node_id, spec in self.graph.nodes.items()}

    def stateful_nodes(self) -> dict[str, Node]:
        """The nodes built in this process."""
        return self.nodes

    def shared_objects(self) -> dict[str, Any]:
        """The objects nodes share under a name."""
        return self.context.shared_objects()

    def remote_states(self) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
        """A split run's workers' node states, per-part records and missing parts; ``None`` unsplit."""
        return None if self.placement is None else self.placement.node_states()

    # ---- building -------------------------------------------------------------------------------------------
    def build(self) -> None:
        """Instantiate nodes and channels (no node code beyond ``__init__`` runs)."""
        graph = self.part
        skipped = self._skipped_nodes()
        for node_id, spec in graph.nodes.items():
            if node_id in skipped:
                continue
            cls = self.registry.get(spec.type)
            assert cls is not None, f"graph not validated: unknown node type {spec.type}"
            self.nodes[node_id] = cls(node_id, spec.params, self.context.context(node_id, spec.type))
        links = [link for link in graph.links if link.src in self.nodes and link.dst in self.nodes]
        fuse = graph.run.get("fuse_chains") is not False
        slots: dict[str, dict[str, InputSlot]] = {}
        subscribers: dict[str, dict[str, list[tuple[LocalChannel, str | None]]]] = {}
        for node_id, node in self.nodes.items():
            slots[node_id] = {
                name: InputSlot(port, port.config if port.config is not None else self.registry.types.get(port.type).config)
                for name, port in node.input_ports.items()
            }
            subscribers[node_id] = {name: [] for name in node.output_ports}
            self.activities[node_id] = Activity(node_id)
        for link in links:
            port = self.nodes[link.dst].input_ports[link.dst_port]
            capacity = max(link.capacity or DEFAULT_CAPACITY, port.primed)
            channel = LocalChannel(str(link), capacity, link.policy or "block")  # type: ignore[arg-type]
            for _ in range(port.primed):
                channel.prime(Message(Token("start"), 0, None))
            self.channels[channel.name] = channel
            out_type = self.nodes[link.src].output_ports[link.src_port].type
            convert = self.registry.types.converter(out_type, port.type)
            assert convert is not None
            slots[link.dst][link.dst_port].links.append(Link(channel, convert, link.stream or link.src))
            subscribers[link.src][link.src_port].append((channel, link.route))
            self.context.linked_ports.setdefault(link.src, set()).add(link.src_port)
            self.context.linked_ports.setdefault(link.dst, set()).add(link.dst_port)
            self.context.upstream_links.setdefault((link.dst, link.dst_port), []).append(link.src)
        for node_id, node in self.nodes.items():
            node.io = NodeIO(node_id, self.activities[node_id], slots[node_id], node.output_ports,
                             subscribers[node_id], node.merge, node.rule_sizes, node.fires_when_ready())
            if fuse and (node.fires_in_loop() or node.io.fires_ready):
                for slot in node.io.streaming:
                    for link in slot.links:
                        if link.channel.policy == "block":
                            link.channel.fused = node
        self.order = setup_order({node_id: type(node) for node_id, node in self.nodes.items()}, links)

    def _skipped_nodes(self) -> set[str]:
        if self.mode != "play":
            return set()
        return {node_id for node_id, spec in self.part.nodes.items()
                if (cls := self.registry.get(spec.type)) is not None and cls.training_only}

    # ---- running --------------------------------------------------------------------------------------------
    async def execute(self) -> RunResult:
        """Set up, run until a stop condition, a failure or the end of every stream, tear down; never raises
        for node failures (they are in the result). Cancelling the awaiting task cancels the run.

        A split run whose lost part may be replaced (``on_loss: replace``) goes back to its newest consistent
        state and runs again, within the same call (``runtime/placement/failover.py``)."""
        self.started_at = time.perf_counter()
        self.cpu_started_at = time.process_time()
        while True:
            await self._attempt()
            if not self.replacing:
                return self.result()
            from .placement.failover import next_attempt

            next_attempt(self)

    async def _attempt(self) -> None:
        """One attempt: set up, run, stop, tear down (every hook's ``on_start`` and ``on_stop`` included)."""
        if not self.nodes:
            self.build()
        self._stop_event = asyncio.Event()
        if self.stop_reason is not None:
            self._stop_event.set()
        self._watchdog = Watchdog(self.deadlock_grace_s, self._deadlock,
                                  self.deadlock_reporter.moving if self.deadlock_reporter else None)
        for activity in self.activities.values():
            activity._watch = self._watchdog
        loop = asyncio.get_running_loop()
        set_up: list[str] = []
        timer = None
        try:
            if self.placement is not None:  # workers start before any setup (setups wait across processes)
                await self.placement.start(self)
            for node_id in self.order:
                try:
                    await self.nodes[node_id].setup()
                except Exception as error:
                    self._fail(node_id, "setup", error)
                    break
                set_up.append(node_id)
            for node_id in self.context.stop_points & set(self.nodes):
                # waiting at a stop point inside a producer's task would hold that producer too: it fires in its own
                self.nodes[node_id].io.fusable = False
            if self.restore is not None and self.error is None:
                checkpoint.restore(self.restore, self)
            for hook in self.hooks:
                if hasattr(hook, "on_start"):
                    hook.on_start(self)
            if self.placement is not None:  # a replaced part's event, now that the metrics go somewhere
                self.placement.begun(self)
            if self.error is None and self.stop_reason is None:
                if self._timeout is not None:  # the run's wall time: attempts before a replacement count
                    timer = loop.call_later(max(self._timeout - (time.perf_counter() - self.started_at), 0.0),
                                            self.request_stop, "timeout")
                await self._run_nodes()
        finally:
            if self.placement is not None:  # the workers stop and report before this process tears down
                await self.placement.stop(self)
            if timer is not None:
                timer.cancel()
            self._watchdog.stop()
            if self._grace_timer is not None:
                self._grace_timer.cancel()
            # Teardown first (a trainer waits for its update threads there), so the hooks' final checkpoint and
            # summary see settled state and a teardown failure.
            for node_id in reversed(set_up):
                try:
                    await self.nodes[node_id].teardown()
                except Exception as error:
                    self._fail(node_id, "teardown", error)
            for hook in self.hooks:
                if hasattr(hook, "on_stop"):
                    try:
                        hook.on_stop(self)
                    except Exception as error:  # a failing save is reported; the other hooks still run
                        self.context.warn(f"run hook {type(hook).__name__} failed: {error}")
        return self.result()

    async def _run_nodes(self) -> None:
        assert self._stop_event is not None and self._watchdog is not None
        barrier = asyncio.Event()
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(self._run_node(node_id, barrier), name=node_id) for node_id in self.nodes]
            for node_id in self.nodes:
                self._watchdog.add(node_id)
                self._started[node_id] = time.perf_counter()
            barrier.set()
            # a split graph moves in its workers too, where these channels and counters do not see it
            hang = None if self.placement is not None else HangWatch(
                dict(zip(self.nodes, tasks)), self._progress, lambda: set(self._watchdog.blocked_nodes)
                if self._watchdog else set(), self.hang_grace_s,
                lambda node_id, message: self._fail(node_id, "run", DeadlockError(message)))
            await self._stop_event.wait()
            if hang is not None:
                hang.stop()
            for task in tasks:
                task.cancel()
        if self.stop_reason is None:
            self.stop_reason = "completed"

    @property
    def replacing(self) -> bool:
        """Whether this attempt ended for a lost part the run replaces, going on from its newest consistent state
        (``runtime/placement/failover.py``); never after an interruption."""
        return self.placement is not None and not self.interrupted and self.placement.replacing(self)

    def prepare_attempt(self, restore: dict[str, Any] | None) -> None:
        """Make the run ready for another attempt from the checkpoint ``restore`` (``None``: from the start)."""
        self._prepare(restore)
        self.build()

    async def _run_node(self, node_id: str, barrier: asyncio.Event) -> None:
        node = self.nodes[node_id]
        assert self._watchdog is not None and node.io is not None
        try:
            await barrier.wait()
            await node.run()
            node.io.close_outputs()
        except asyncio.CancelledError:
            raise
        except FusedFailure as failure:
            self._fail(failure.node_id, "run", failure.cause)
        except Exception as error:
            self._fail(node_id, "run", error)
        finally:
            node.io.release_inputs()
            self._alive[node_id] = time.perf_counter() - self._started[node_id]
            self._watchdog.finished(node_id)
            self.context.left_between_points(node_id)  # a stop may have waited for it
            if not self._watchdog.live or (self.context.stopping and not self.context.stop_points & self._watchdog.live):
                self._stop_now()

    def _progress(self) -> tuple[int, tuple[float, ...]]:
        """A value that changes whenever the graph moves: messages through channels, counters."""
        return sum(ch.stats.messages for ch in self.channels.values()), tuple(self.counters.values.values())

    def _deadlock(self, message: str) -> None:
        if self.deadlock_reporter is not None:
            self.deadlock_reporter.blocked(message)
            return
        blocked = sorted(self._watchdog.blocked_nodes) if self._watchdog else []
        node_id = blocked[0] if blocked else next(iter(self.nodes))
        self._fail(node_id, "run", DeadlockError(message))

    def result(self) -> RunResult:
        """The run's result so far."""
        nodes = {}
        for node_id, activity in self.activities.items():
            if node_id in self._alive:
                alive = self._alive[node_id]
            else:
                alive = time.perf_counter() - self._started[node_id] if node_id in self._started else 0.0
            nodes[node_id] = {
                "firings": self.nodes[node_id].firings if node_id in self.nodes else 0,
                "blocked_s": round(activity.blocked_s, 6),
                "busy_s": round(max(alive - activity.blocked_s - activity.lent_s, 0.0), 6),
            }
        channels = {name: ch.stats.as_dict() | {"depth": len(ch)} for name, ch in self.channels.items()}
        result = RunResult(
            self.stop_reason or "completed", self.solved, dict(self.counters.values),
            time.perf_counter() - self.started_at if self.started_at else 0.0,
            nodes, channels, self.error, list(self.context.warnings),
            self.registry.vocabulary.summary(self.counters.values), solved_at=self._solved_at,
            cpu_s=time.process_time() - self.cpu_started_at if self.started_at else 0.0,
        )
        if self.placement is not None:  # the workers' nodes and channels, crossing links under their own names
            self.placement.merge_result(result)
        return result


async def run(graph: Graph, registry: NodeRegistry | None = None, **options: Any) -> RunResult:
    """Run ``graph`` on the current event loop and return its result (see ``GraphRun`` for ``options``); setup and
    the nodes' work share that loop. ``dnne.runtime.run`` (``embedding.run``) keeps the caller's loop free instead."""
    return await GraphRun(graph, registry, **options).execute()
