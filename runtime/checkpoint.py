"""Checkpoints of a whole graph: every stateful node's state plus the counters, saved atomically."""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .runner import GraphRun

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, truncated, or from another graph."""


def collect(run: GraphRun) -> dict[str, Any]:
    """The state of every stateful node of ``run``, with the counters and the graph's node types."""
    nodes = {}
    for node_id, node in run.nodes.items():
        state = node.state_dict()
        if state is not None:
            nodes[node_id] = state
    state = {
        "format": CHECKPOINT_FORMAT,
        "graph": {node_id: spec.type for node_id, spec in run.graph.nodes.items()},
        "counters": dict(run.counters.values),
        "windows": run.counters.windows_state(),
        "shared": {name: obj.state_dict() for name, obj in run.context.shared_objects().items()
                   if hasattr(obj, "state_dict")},
        "nodes": nodes,
    }
    if run.placement is not None:  # a split run: the workers' parts (runtime/placement/hub.py)
        remote, state["parts"], missing = run.placement.node_states()
        nodes.update(remote)
        if missing:
            state["missing"] = missing
    return state


def save(state: dict[str, Any], directory: Path, index: int, keep: int) -> Path:
    """Write ``state`` as ``ckpt-INDEX.pt`` (write then rename, so a crash never leaves a broken latest file) and
    keep the newest ``keep`` checkpoints; the newest name is the latest."""
    import torch

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"ckpt-{index:08d}.pt"
    partial = path.with_suffix(".pt.partial")
    torch.save(state, partial)
    os.replace(partial, path)
    for old in sorted(p for p in directory.iterdir() if _NAME.match(p.name))[:-keep]:
        old.unlink()
    return path


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory``."""
    if not directory.is_dir():
        return None
    found = sorted(p for p in directory.iterdir() if _NAME.match(p.name))
    return found[-1] if found else None


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only``: no code runs); ``CheckpointError`` says what is wrong."""
    import torch

    if path.is_dir():
        found = latest(path / "checkpoints") or latest(path)
        if found is None:
            raise CheckpointError(f"no checkpoint in {path}")
        path = found
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {error}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "nodes" not in state:
        raise CheckpointError(f"{path} is not a dnne checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def check_compatible(state: dict[str, Any], run: GraphRun) -> None:
    """Refuse a checkpoint of another graph, naming the nodes that do not match."""
    if state.get("missing"):
        raise CheckpointError(f"the checkpoint holds no state of worker(s) {', '.join(state['missing'])}: a split "
                              "run's complete checkpoint is the one saved when it stops")
    saved: dict[str, str] = state.get("graph", {})
    current = {node_id: spec.type for node_id, spec in run.graph.nodes.items()}
    problems = []
    for node_id in sorted(set(saved) | set(current)):
        if saved.get(node_id) != current.get(node_id):
            problems.append(f"{node_id}: checkpoint has {saved.get(node_id) or 'nothing'}, graph has "
                            f"{current.get(node_id) or 'nothing'}")
    for node_id in state["nodes"]:
        if node_id in run.nodes and run.nodes[node_id].state_dict() is None:
            problems.append(f"{node_id}: the checkpoint holds state for a stateless node")
    if problems:
        raise CheckpointError("the checkpoint is from a different graph: " + "; ".join(problems))


def restore(state: dict[str, Any], run: GraphRun) -> None:
    """Load every node's saved state into ``run`` (after setup, before anything runs)."""
    check_compatible(state, run)
    for node_id, node_state in state["nodes"].items():
        if node_id in run.nodes:
            run.nodes[node_id].load_state_dict(node_state)
    for name, obj in run.context.shared_objects().items():
        if name in state.get("shared", {}) and hasattr(obj, "load_state_dict"):
            obj.load_state_dict(state["shared"][name])
