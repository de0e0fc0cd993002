"""Mid-run checkpoints of a split graph: every process's node states at one consistent cut.

A one-process run saves its checkpoint synchronously where the ``iterations`` counter moves (a trainer has just
finished an update, nothing else runs meanwhile). Split over processes, the states live in several processes that
run on; a cut is consistent when no process has received a message sent after another's snapshot. A round:

1. the *initiator* -- the process at the consistent point -- takes its snapshot and from then on holds every link
   frame it would send (and, for a worker, every control frame too, so the counters stay in step with the states).
   The main process initiates when the point is its own (the trainer runs there, or one of its nodes asked); a
   worker's point is only known once its counter change has arrived, so the main process *arms* that worker
   (``["arm"]``) and the worker initiates at its next point (``["point", reason, keep, states]``), or at once when
   one of its nodes asks for a checkpoint;
2. the main process holds its own link frames and asks every other worker for its snapshot (``["snapshot"]``); a
   worker takes it, answers (``["snapshot", states]``) and holds as the initiator does;
3. with every answer in, the main process adds its own part (taken at the point when it initiated, else now),
   hands the whole state to the run's checkpoint writer and lets everyone go (``["resume"]``; held frames leave in
   order).

Messages sent before the cut and received after it are in flight, as messages in a channel are in a one-process
checkpoint; none is both unsent and received. A round that does not complete within ``ROUND_TIMEOUT_S`` (a worker
whose event loop is blocked), or loses a worker, is dropped with a warning and everyone is let go.
"""
from __future__ import annotations

import asyncio
import copy
from collections.abc import Callable
from typing import Any

ROUND_TIMEOUT_S = 30.0
Collect = Callable[[], dict[str, Any]]
Save = Callable[[dict[str, Any]], None]


class _Round:
    """One checkpoint being gathered."""

    def __init__(self, reason: str, collect: Collect, save: Save) -> None:
        self.reason = reason
        self.collect = collect
        self.save = save
        self.main_state: dict[str, Any] | None = None
        self.states: dict[str, dict[str, Any]] = {}
        self.waiting: set[str] = set()
        self.timer: asyncio.TimerHandle | None = None


class Snapshots:
    """The main process's side of mid-run checkpoints of a split graph.

    Args:
        send: sends a control message to one worker (by name).
        workers: the names of the workers still running.
        hold: holds (``True``) or releases (``False``, in order) the link frames the main process sends.
        warn: reports a dropped round.
    """

    def __init__(self, send: Callable[[str, list[Any]], None], workers: Callable[[], list[str]],
                 hold: Callable[[bool], None], warn: Callable[[str], None]) -> None:
        self.send = send
        self.workers = workers
        self.hold = hold
        self.warn = warn
        self.origin: str | None = None
        """The worker whose counter change is being applied here (``None``: a change made here)."""
        self.stopped = False
        self._round: _Round | None = None
        self._armed: tuple[str, _Round] | None = None
        self._point: tuple[str, str, dict[str, Any]] | None = None

    def gather(self, reason: str, collect: Collect, save: Save) -> bool:
        """Checkpoint the whole graph at a consistent cut; ``save`` gets the state (``collect``: this process's
        state as ``checkpoint.collect`` makes it). False once the run is stopping: the workers' final states are
        in their results then, and ``collect`` alone is the whole state."""
        if self.stopped:
            return False
        if self._round is not None or self._armed is not None:
            return True  # one at a time: the one under way is at most moments older
        request = _Round(reason, collect, save)
        if self._point is not None:  # a worker's node asked, at its consistent point
            name, _, states = self._point
            self._point = None
            self._begin(request, name, states)
        elif self.origin is not None:  # the point was in a worker and has passed: its next one
            self._armed = (self.origin, request)
            self.send(self.origin, ["arm"])
        else:
            request.main_state = copy.deepcopy(collect())  # this process's nodes run on during the round
            self._begin(request, None, None)
        return True

    def on_point(self, name: str, reason: str | None, states: dict[str, Any],
                 handler: Callable[[str, dict[str, Any] | None], None] | None,
                 keep: dict[str, Any] | None = None) -> None:
        """Worker ``name`` reached a consistent point, took its snapshot and holds: armed by ``gather``
        (``reason`` None), or one of its nodes asked for a checkpoint (``handler``: the run's checkpoint writer;
        ``keep``: the name and record the node asked it be kept under)."""
        if self._armed is not None and self._armed[0] == name and reason is None:
            _, request = self._armed
            self._armed = None
            self._begin(request, name, states)
            return
        if reason is not None and handler is not None and not self.stopped:
            self._point = (name, reason, states)
            handler(reason, keep)
        self._point = None
        current = self._round
        if current is None or (name not in current.states and name not in current.waiting):
            self.send(name, ["resume"])  # no round took this point

    def on_snapshot(self, name: str, states: dict[str, Any]) -> None:
        """Worker ``name`` answered a snapshot request (and holds)."""
        current = self._round
        if current is None or name not in current.waiting:
            self.send(name, ["resume"])
            return
        current.waiting.discard(name)
        current.states[name] = states
        if not current.waiting:
            self._complete(current)

    def worker_gone(self, name: str) -> None:
        """A worker ended: a round that waits for it cannot complete."""
        if self._armed is not None and self._armed[0] == name:
            self._armed = None
        if self._round is not None and name in self._round.waiting:
            self._drop(f"worker {name!r} ended before it answered")

    def stop(self) -> None:
        """The run stops: no more rounds; one under way is dropped (the final checkpoint follows)."""
        self.stopped = True
        self._armed = None
        if self._round is not None:
            self._drop("the run stopped")

    def _begin(self, request: _Round, initiator: str | None, states: dict[str, Any] | None) -> None:
        self._round = request
        self.hold(True)
        if initiator is not None and states is not None:
            request.states[initiator] = states
        request.waiting = {name for name in self.workers() if name != initiator}
        for name in sorted(request.waiting):
            self.send(name, ["snapshot"])
        request.timer = asyncio.get_running_loop().call_later(
            ROUND_TIMEOUT_S, self._drop, f"not every worker answered within {ROUND_TIMEOUT_S:g}s")
        if not request.waiting:
            self._complete(request)

    def _complete(self, request: _Round) -> None:
        state = request.main_state if request.main_state is not None else request.collect()
        missing = [name for name, states in request.states.items() if not states]
        if missing:
            self._drop(f"worker(s) {', '.join(missing)} failed")
            return
        for name, states in request.states.items():
            state["nodes"].update(states["nodes"])
            if states["shared"]:
                state.setdefault("parts", {})[name] = states["shared"]
        state.pop("missing", None)
        self._finish()
        request.save(state)

    def _drop(self, why: str) -> None:
        request = self._round
        if request is None:
            return
        self.warn(f"checkpoint ({request.reason}) not taken: {why}")
        self._finish()

    def _finish(self) -> None:
        request, self._round = self._round, None
        if request is not None and request.timer is not None:
            request.timer.cancel()
        for name in self.workers():
            self.send(name, ["resume"])
        self.hold(False)
