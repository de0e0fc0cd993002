"""Checkpoints of a whole graph: every stateful node's state plus the counters, saved atomically.

Checkpointing sees a run only through ``Checkpointable``: its stateful nodes, its counters, its shared objects,
the graph's signature (node id -> type) and, for a run split over processes, the other parts' states.
"""
from __future__ import annotations

import copy
import errno
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .counters import Counters

CHECKPOINT_FORMAT = 1
_NAME = re.compile(r"^ckpt-(\d+)\.pt$")
KEPT_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
log = logging.getLogger("dnne")


class CheckpointError(Exception):
    """A checkpoint that cannot be used: unreadable, truncated, or from another graph."""


class Stateful(Protocol):
    """A node (or shared object) whose state a checkpoint holds; ``state_dict() is None``: nothing to save."""

    def state_dict(self) -> Any:
        """The state, or ``None`` for a stateless node."""

    def load_state_dict(self, state: Any) -> None:
        """Load a state ``state_dict`` returned."""


class Checkpointable(Protocol):
    """What checkpointing reads from and writes into a run (``GraphRun`` is one)."""

    counters: Counters

    def graph_signature(self) -> dict[str, str]:
        """Node id -> node type of the whole graph: a checkpoint fits only the graph of the same signature."""

    def stateful_nodes(self) -> Mapping[str, Stateful]:
        """The nodes of this process by id."""

    def shared_objects(self) -> Mapping[str, Any]:
        """Objects shared under a name (those with ``state_dict`` are saved)."""

    def remote_states(self) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
        """A split run's other parts: node states, per-part records, parts that gave none; ``None`` unsplit."""


def collect(run: Checkpointable) -> dict[str, Any]:
    """The state of every stateful node of ``run``, with the counters and the graph's signature."""
    nodes = {}
    for node_id, node in run.stateful_nodes().items():
        state = node.state_dict()
        if state is not None:
            nodes[node_id] = state
    state = {
        "format": CHECKPOINT_FORMAT,
        "graph": run.graph_signature(),
        "counters": dict(run.counters.values),
        "windows": run.counters.windows_state(),
        "shared": {name: obj.state_dict() for name, obj in run.shared_objects().items()
                   if hasattr(obj, "state_dict")},
        "nodes": nodes,
    }
    remote = run.remote_states()
    if remote is not None:  # a split run: the workers' parts (runtime/placement/hub.py)
        remote_nodes, state["parts"], missing = remote
        nodes.update(remote_nodes)
        if missing:
            state["missing"] = missing
    return state


def copy_state(value: Any) -> Any:
    """A deep copy of a checkpoint state, what ``copy.deepcopy`` gives at a fraction of its cost (a run keeps one
    at every update): tensors are cloned directly, dicts, lists and tuples rebuilt, plain values kept, anything
    else deep-copied. Tensors that shared storage no longer share it, which a state that is only ever loaded or
    saved does not notice."""
    import torch

    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if type(value) is dict:
        return {key: copy_state(item) for key, item in value.items()}
    if type(value) in (list, tuple):
        return type(value)(copy_state(item) for item in value)
    if value is None or type(value) in (str, int, float, bool, bytes):
        return value
    return copy.deepcopy(value)


def save(state: dict[str, Any], directory: Path, index: int, keep: int) -> Path:
    """Write ``state`` as ``ckpt-INDEX.pt`` and keep the newest ``keep`` checkpoints; the newest name is the latest.

    The file is written beside its final name, flushed to disk (``fsync``) and renamed, and the rename is made
    durable too, so a crash or a power cut never leaves a broken latest file; a failed write removes its partial
    file.

    Raises:
        CheckpointError: the checkpoint could not be written (disk full, read-only, ...); nothing is left behind.
    """
    path = directory / f"ckpt-{index:08d}.pt"
    _write_durably(state, path)
    for old in sorted(p for p in directory.iterdir() if _NAME.match(p.name))[:-keep]:
        old.unlink()
    return path


def save_named(state: dict[str, Any], directory: Path, name: str) -> Path:
    """Write ``state`` as ``NAME.pt`` (``best.pt``), replacing the previous one of that name, as durably as ``save``
    writes; named checkpoints are never pruned and never taken as the latest.

    Raises:
        CheckpointError: ``name`` is not a lowercase word, or the file could not be written.
    """
    if not KEPT_NAME.fullmatch(name):
        raise CheckpointError(f"a kept checkpoint's name must be a lowercase word, not {name[:60]!r}")
    path = directory / f"{name}.pt"
    _write_durably(state, path)
    return path


def _write_durably(state: dict[str, Any], path: Path) -> None:
    """Write ``state`` beside ``path``, flush it to disk (``fsync``), rename it over ``path`` and make the rename
    durable; a failed write removes its partial file and raises ``CheckpointError``."""
    import torch

    directory = path.parent
    partial = path.with_suffix(".pt.partial")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as file:
            torch.save(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, path)
        _fsync_directory(directory)
    except Exception as error:
        try:
            partial.unlink(missing_ok=True)
        except OSError:  # the folder itself is unusable (a file in its place): there is no partial file
            pass
        raise CheckpointError(f"cannot write checkpoint {path}: {_why(error, directory)}") from None


def remove_partials(directory: Path) -> list[Path]:
    """Delete partial files a killed run left in ``directory``; returns them."""
    if not directory.is_dir():
        return []
    found = [p for p in directory.iterdir() if p.name.endswith(".partial")]
    for path in found:
        path.unlink(missing_ok=True)
    return found


def _fsync_directory(directory: Path) -> None:
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # platforms without directory handles
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def _why(error: BaseException, directory: Path) -> str:
    """A write error in words; torch reports a full disk as an opaque ``inline_container.cc`` failure."""
    import shutil

    if isinstance(error, OSError) and error.errno == errno.ENOSPC:
        return "no space left on the device"
    try:
        free = shutil.disk_usage(directory).free
    except OSError:
        free = None
    if free is not None and free < 64 * 1024 * 1024:
        return f"the disk is full ({free} bytes free): {type(error).__name__}: {str(error).splitlines()[0]}"
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


def latest(directory: Path) -> Path | None:
    """The newest complete checkpoint in ``directory`` (by name; see ``load`` for one that is also readable)."""
    found = candidates(directory)
    return found[0] if found else None


def candidates(directory: Path) -> list[Path]:
    """The complete checkpoints in ``directory``, newest first."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _NAME.match(p.name)), reverse=True)


def load(path: Path) -> dict[str, Any]:
    """Read a checkpoint safely (``weights_only``: no code runs); ``CheckpointError`` says what is wrong.

    For a run directory, the newest readable checkpoint: a truncated or corrupt newer one is skipped with a
    warning, so one bad file never blocks a resume while older good ones exist.
    """
    if not path.is_dir():
        return _read(path)
    found = candidates(path / "checkpoints") or candidates(path)
    if not found:
        raise CheckpointError(f"no checkpoint in {path}")
    problems = []
    for candidate in found:
        try:
            state = _read(candidate)
        except CheckpointError as error:
            problems.append(str(error))
            continue
        for problem in problems:
            log.warning("skipped an unreadable checkpoint: %s", problem)
        return state
    raise CheckpointError("no readable checkpoint: " + "; ".join(problems))


def _read(path: Path) -> dict[str, Any]:
    import torch

    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such checkpoint") from None
    except Exception as error:
        first = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(f"{path} is not a readable checkpoint (truncated or corrupt?): {first}") from None
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT or "nodes" not in state:
        raise CheckpointError(f"{path} is not a dnne checkpoint of format {CHECKPOINT_FORMAT}")
    return state


def check_compatible(state: dict[str, Any], run: Checkpointable) -> None:
    """Refuse a checkpoint of another graph, naming the nodes that do not match."""
    if state.get("missing"):
        raise CheckpointError(f"the checkpoint holds no state of worker(s) {', '.join(state['missing'])}: a split "
                              "run's complete checkpoint is the one saved when it stops")
    saved: dict[str, str] = state.get("graph", {})
    current = run.graph_signature()
    local = run.stateful_nodes()
    problems = []
    for node_id in sorted(set(saved) | set(current)):
        if saved.get(node_id) != current.get(node_id):
            problems.append(f"{node_id}: checkpoint has {saved.get(node_id) or 'nothing'}, graph has "
                            f"{current.get(node_id) or 'nothing'}")
    for node_id in state["nodes"]:
        if node_id in local and local[node_id].state_dict() is None:
            problems.append(f"{node_id}: the checkpoint holds state for a stateless node")
    if problems:
        raise CheckpointError("the checkpoint is from a different graph: " + "; ".join(problems))


def restore(state: dict[str, Any], run: Checkpointable) -> None:
    """Load every node's saved state into ``run`` (after setup, before anything runs)."""
    check_compatible(state, run)
    local = run.stateful_nodes()
    for node_id, node_state in state["nodes"].items():
        if node_id in local:
            try:
                local[node_id].load_state_dict(node_state)
            except (RuntimeError, KeyError, ValueError, TypeError, IndexError) as error:
                # A state of another shape (a changed hidden size, num_envs, ...) is a checkpoint that does not
                # fit this graph: bad input, not a crash.
                text = " ".join(str(error).split())[:400] or type(error).__name__
                raise CheckpointError(f"node {node_id!r}: the checkpoint does not fit this graph "
                                      f"({type(error).__name__}: {text})") from None
    for name, obj in run.shared_objects().items():
        if name in state.get("shared", {}) and hasattr(obj, "load_state_dict"):
            obj.load_state_dict(state["shared"][name])
