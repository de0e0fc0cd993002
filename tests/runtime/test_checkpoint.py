"""checkpoint: what it takes from a run is the narrow ``Checkpointable`` protocol (no GraphRun here), the atomic
file format, and every way a checkpoint can be refused (another graph, a stateless node, a state that does not
fit, a truncated file)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dnne.runtime import checkpoint
from dnne.runtime.checkpoint import CheckpointError
from dnne.runtime.counters import Counters


class Part:
    """A node-like object with a state (``None``: stateless); ``fail`` makes loading raise like a wrong shape."""

    def __init__(self, state: Any, fail: bool = False) -> None:
        self.state, self.fail, self.loaded = state, fail, None

    def state_dict(self) -> Any:
        return self.state

    def load_state_dict(self, state: Any) -> None:
        if self.fail:
            raise RuntimeError("size mismatch for weight: [4] vs [8]")
        self.loaded = state


class Subject:
    """The smallest ``Checkpointable``: stateful parts, counters, shared objects, a signature, no workers."""

    def __init__(self, parts: dict[str, Part], signature: dict[str, str] | None = None,
                 remote: tuple[dict[str, Any], dict[str, Any], list[str]] | None = None) -> None:
        self.parts = parts
        self.signature = signature or {name: "Part" for name in parts}
        self.counters = Counters()
        self.shared = {"table": Part({"rows": 2})}
        self.remote = remote

    def graph_signature(self) -> dict[str, str]:
        return dict(self.signature)

    def stateful_nodes(self) -> dict[str, Part]:
        return self.parts

    def shared_objects(self) -> dict[str, Any]:
        return self.shared

    def remote_states(self) -> tuple[dict[str, Any], dict[str, Any], list[str]] | None:
        return self.remote


def test_collect_takes_states_counters_shared_and_signature() -> None:
    """Stateless parts are left out; counters, windows, shared objects and the signature are in."""
    subject = Subject({"a": Part({"w": 1}), "b": Part(None)})
    subject.counters.add("work", 5)
    subject.counters.observe("score", [1.0, 3.0], 10)
    state = checkpoint.collect(subject)
    assert state["nodes"] == {"a": {"w": 1}}
    assert state["graph"] == {"a": "Part", "b": "Part"}
    assert state["counters"] == {"work": 5, "score": 2.0, "best_score": 2.0}
    assert state["windows"] == {"score": {"window": 10, "samples": [1.0, 3.0]}}
    assert state["shared"] == {"table": {"rows": 2}}
    assert "missing" not in state


def test_collect_adds_remote_parts_and_what_is_missing() -> None:
    """A split run's other parts add their node states; parts that gave none are listed."""
    subject = Subject({"a": Part({"w": 1})}, remote=({"r": {"w": 2}}, {"worker": {"ok": True}}, ["w2"]))
    state = checkpoint.collect(subject)
    assert state["nodes"] == {"a": {"w": 1}, "r": {"w": 2}}
    assert state["parts"] == {"worker": {"ok": True}} and state["missing"] == ["w2"]
    with pytest.raises(CheckpointError, match="w2"):
        checkpoint.restore(state, Subject({"a": Part({})}))


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    """save then load gives the state back; restore loads every part and the shared objects."""
    source = Subject({"a": Part({"w": [1, 2]}), "b": Part(None)})
    path = checkpoint.save(checkpoint.collect(source), tmp_path, 7, keep=3)
    assert path.name == "ckpt-00000007.pt" and not list(tmp_path.glob("*.partial"))
    target = Subject({"a": Part({"w": [0, 0]}), "b": Part(None)})
    target.shared["table"] = Part({"rows": 0})
    checkpoint.restore(checkpoint.load(path), target)
    assert target.parts["a"].loaded == {"w": [1, 2]} and target.shared["table"].loaded == {"rows": 2}


def test_keep_only_the_newest(tmp_path: Path) -> None:
    """Saving with keep=2 leaves the two newest checkpoints; latest names the newest."""
    state = checkpoint.collect(Subject({"a": Part({"w": 1})}))
    for index in (1, 2, 3):
        checkpoint.save(state, tmp_path, index, keep=2)
    assert [p.name for p in checkpoint.candidates(tmp_path)] == ["ckpt-00000003.pt", "ckpt-00000002.pt"]
    assert checkpoint.latest(tmp_path).name == "ckpt-00000003.pt"


def test_a_named_checkpoint_is_kept_apart(tmp_path: Path) -> None:
    """save_named writes NAME.pt as durably as save (no partial left), replaces the previous one of the name, is
    never pruned and never the latest; a name that is not a lowercase word is refused."""
    first, second = (checkpoint.collect(Subject({"a": Part({"w": value})})) for value in (1, 2))
    checkpoint.save_named(first, tmp_path, "best")
    for index in (1, 2, 3):
        checkpoint.save(first, tmp_path, index, keep=1)
    path = checkpoint.save_named(second, tmp_path, "best")
    assert path == tmp_path / "best.pt" and not list(tmp_path.glob("*.partial"))
    assert checkpoint.load(path)["nodes"]["a"] == {"w": 2}
    assert [p.name for p in checkpoint.candidates(tmp_path)] == ["ckpt-00000003.pt"]
    assert checkpoint.load(tmp_path)["nodes"]["a"] == {"w": 1}
    for name in ("../best", "Best", "", "ckpt-00000009", "a" * 40):
        with pytest.raises(CheckpointError):
            checkpoint.save_named(first, tmp_path, name)


def test_kept_records_of_a_run_directory(tmp_path: Path) -> None:
    """A resumed run records the kept checkpoints its summary names again, at their place in its own checkpoints
    folder, and only those whose file is there; a summary of another shape or too large gives none."""
    import json

    from dnne.runtime.rundir import MAX_SUMMARY_BYTES, kept_records

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "best.pt").write_bytes(b"x")
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"best_checkpoint": {"path": "/elsewhere/best.pt", "eval_return_mean": 3.5},
                                   "worst_checkpoint": {"path": "x", "eval_return_mean": 0.0},
                                   "last_checkpoint": "ckpt-00000001.pt", "Bad_checkpoint": {}}))
    assert kept_records(tmp_path) == {"best": {"path": str(tmp_path / "checkpoints" / "best.pt"),
                                               "eval_return_mean": 3.5}}
    summary.write_text("[1, 2]")
    assert kept_records(tmp_path) == {}
    summary.write_text(" " * (MAX_SUMMARY_BYTES + 1))
    assert kept_records(tmp_path) == {}


def test_another_graph_is_refused_naming_the_nodes() -> None:
    """A checkpoint of a graph with other node types is refused, naming each node that differs."""
    state = checkpoint.collect(Subject({"a": Part({"w": 1})}))
    other = Subject({"a": Part({"w": 1})}, signature={"a": "Other", "c": "Part"})
    with pytest.raises(CheckpointError) as info:
        checkpoint.restore(state, other)
    assert "a: checkpoint has Part, graph has Other" in str(info.value)
    assert "c: checkpoint has nothing, graph has Part" in str(info.value)


def test_state_for_a_stateless_node_is_refused() -> None:
    """A saved state for a node that is stateless in this graph is refused."""
    state = checkpoint.collect(Subject({"a": Part({"w": 1})}))
    with pytest.raises(CheckpointError, match="stateless"):
        checkpoint.restore(state, Subject({"a": Part(None)}))


def test_a_state_that_does_not_fit_is_bad_input() -> None:
    """A part whose load raises (a changed size) is a CheckpointError naming the node, not a crash."""
    state = checkpoint.collect(Subject({"a": Part({"w": 1})}))
    with pytest.raises(CheckpointError, match="node 'a': the checkpoint does not fit"):
        checkpoint.restore(state, Subject({"a": Part({"w": 1}, fail=True)}))


def test_a_truncated_newest_checkpoint_is_skipped(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Loading a run directory skips a truncated newest checkpoint (with a warning) for the older good one."""
    checkpoints = tmp_path / "checkpoints"
    good = checkpoint.collect(Subject({"a": Part({"w": 1})}))
    checkpoint.save(good, checkpoints, 1, keep=5)
    newest = checkpoint.save(good, checkpoints, 2, keep=5)
    newest.write_bytes(newest.read_bytes()[:40])
    assert checkpoint.load(tmp_path)["nodes"] == {"a": {"w": 1}}
    assert "skipped an unreadable checkpoint" in caplog.text and "ckpt-00000002.pt" in caplog.text
    (checkpoints / "ckpt-00000001.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="no readable checkpoint"):
        checkpoint.load(tmp_path)


def test_a_failed_write_leaves_nothing(tmp_path: Path) -> None:
    """A write that fails (the target folder is a file) raises CheckpointError and leaves no partial file."""
    blocker = tmp_path / "checkpoints"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(CheckpointError, match="cannot write checkpoint"):
        checkpoint.save(checkpoint.collect(Subject({"a": Part({"w": 1})})), blocker, 1, keep=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoints"]


def test_partials_of_a_killed_run_are_removed(tmp_path: Path) -> None:
    """remove_partials deletes what a run killed while saving left, and nothing else."""
    (tmp_path / "ckpt-00000001.pt.partial").write_bytes(b"half")
    (tmp_path / "ckpt-00000000.pt").write_bytes(b"whole")
    assert [p.name for p in checkpoint.remove_partials(tmp_path)] == ["ckpt-00000001.pt.partial"]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt-00000000.pt"]


def test_copy_state_equals_deepcopy_and_shares_nothing() -> None:
    """``copy_state`` gives what ``copy.deepcopy`` gives (same structure, types and values), and nothing in the copy
    is the original's: writing into the original's tensors, lists or objects leaves the copy as it was."""
    import copy

    import torch

    class Box:
        def __init__(self, items: list[int]) -> None:
            self.items = items

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Box) and other.items == self.items

    weight = torch.arange(6.0, requires_grad=True)
    state = {"nodes": {"a": {"w": weight, "view": weight.detach()[2:], "step": torch.tensor(3),
                             "rng": torch.ByteTensor([1, 2, 3])}},
             "counters": {"iterations": 4, "wall_time_s": 1.5}, "pair": (torch.ones(2), [1, "x", None, b"z"]),
             "box": Box([1, 2]), "flag": True}
    expected, copied = copy.deepcopy(state), checkpoint.copy_state(state)

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor):
            return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a.detach(), b.detach())
        if isinstance(a, dict):
            return type(b) is dict and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)):
            return type(a) is type(b) and len(a) == len(b) and all(map(same, a, b))
        return a == b

    assert same(expected, copied)
    with torch.no_grad():
        weight.add_(100.0)
    state["pair"][1].append(9)
    state["box"].items.append(3)
    assert same(expected, copied)
    assert not copied["nodes"]["a"]["w"].requires_grad
