"""Failover: a lost part that the graph lets the run replace goes on from the newest consistent state.

Which parts may be replaced is data: ``"workers": {"envs": {"on_loss": "replace"}}`` (the default, ``stop``, stops
the run naming the part, with its last checkpoint and how to resume). The engine knows nothing of what a part
holds, so replacing one is a rollback of the whole graph, the recovery that is exact for any graph:

1. the heartbeat (or the end of its frame connection) finds the part lost; the placement records the event and
   fails the attempt (``Placement._loss``); the other parts stop and report as at any stop;
2. ``next_attempt`` takes the newest consistent state of the whole graph a run hook keeps (the run directory's last
   mid-run checkpoint, every process's nodes at one cut: ``snapshots``), or, before the first one, the state the
   run started from (its ``--resume`` checkpoint, or none: the start, which a fixed seed makes the same);
3. the same ``GraphRun`` runs again from that state, as ``dnne run --resume`` would, within the same call: every
   part starts afresh, the lost one in a new process or a new Ray actor (Ray places it on a node that has the
   resources, the lost node being gone); the run directory drops the metrics rows past that state, as a resume
   does, and the placement records where the replacement runs (``Placement.begun``).

A replaced part's work since that state is done again, visibly (the ``worker_replaced`` event), never behind the
run's back by Ray (actors are never restarted or retried). At most ``run.max_replacements`` parts are replaced in
one run (default ``MAX_REPLACEMENTS``); a loss past that, or of a part that is not replaceable, stops the run.
"""
from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..graph import Graph
    from ..runner import GraphRun

MAX_REPLACEMENTS = 3
"""How many lost parts one run replaces when ``run.max_replacements`` does not say."""
ON_LOSS = ("stop", "replace")
"""What ``workers.NAME.on_loss`` may say."""
REPLACEABLE_CHECKPOINT_INTERVAL_S = 60.0
"""``dnne run``'s checkpoint interval for a graph with a replaceable part, unless ``--checkpoint-interval`` says
otherwise (10 minutes otherwise): a replacement goes back at most this far, plus one update."""


def replaceable(graph: Graph) -> bool:
    """Whether ``graph`` has a part the run replaces when it is lost."""
    return any(options.get("on_loss") == "replace" for options in graph.workers.values())


def resume_point(run: GraphRun) -> tuple[dict[str, Any] | None, Path | None]:
    """The newest consistent state of ``run``'s whole graph a hook keeps, and its checkpoint file; else the
    state the run started from (``None``: the start)."""
    for hook in run.hooks:
        last = getattr(hook, "last_consistent_state", None)
        found = last() if last is not None else None
        if found is not None:
            return found
    return copy.deepcopy(run.initial_restore), None


def next_attempt(run: GraphRun) -> None:
    """After an attempt that ended for a replaceable lost part: make ``run`` ready to go on from its newest
    consistent state, the lost part to be started afresh (the events so far and a Ray it started carry over)."""
    previous = run.placement
    assert previous is not None and previous.replacement is not None
    state, path = resume_point(run)
    run.replacements += 1
    counters = {} if state is None else dict(state["counters"])
    loss = previous.replacement | {
        "replacement": run.replacements,
        "resumed_from": {"checkpoint": None if path is None else str(path), "counters": counters},
    }
    origin = f"checkpoint {path}" if path is not None else "its start" if state is None else "the state it resumed"
    run.context.warn(f"worker {loss['worker']!r} was lost ({loss['event']}); replacing it ({run.replacements} of "
                     f"run.max_replacements {previous.max_replacements}): the run goes back to {origin} and goes on")
    run.prepare_attempt(state)
    placement = run.placement
    placement.events = list(previous.events)
    placement.replaced = {loss["worker"]: loss}
    if placement.ray is not None and previous.ray is not None:
        placement.ray.take_over(previous.ray)
