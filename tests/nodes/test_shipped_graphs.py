"""The graph files shipped in graphs/: every one validates, and native ones declare what solving means."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.cli import main

GRAPHS = Path(__file__).resolve().parents[2] / "graphs"
GROUPS = GRAPHS / "groups"  # group templates the graphs name (``{"file": ...}``), not graphs themselves
FILES = sorted(path for path in GRAPHS.rglob("*.json") if GROUPS not in path.parents)


def test_graphs_are_shipped() -> None:
    """graphs/ holds the native graphs and the DNNE-format Cartpole file."""
    names = {str(path.relative_to(GRAPHS)) for path in FILES}
    assert {"cartpole_ppo.json", "pendulum_ppo.json", "gym_cartpole_ppo.json", "halfcheetah_ppo.json",
            "dnne/cartpole_ppo.json"} <= names


def test_every_group_file_is_used() -> None:
    """Each template in graphs/groups/ is named by a shipped graph (so test_validates expands it)."""
    documents = {path: json.loads(path.read_text()) for path in FILES}
    named = {(path.parent / group["file"]).resolve() for path, document in documents.items()
             if document.get("format") == "dnne-graph"
             for group in document.get("groups", {}).values() if "file" in group}
    assert sorted(GROUPS.glob("*.json")) and set(GROUPS.glob("*.json")) <= named


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(GRAPHS)) for p in FILES])
def test_validates(path: Path) -> None:
    """``dnne validate`` accepts the file (a graph placed on Ray needs the ``ray`` extra: validation refuses it
    without Ray, which ``tests/runtime/placement/test_ray_validation.py`` tests; a MinAtar graph needs the
    ``minatar`` extra, and ``tests/nodes/envs/test_minatar.py`` tests the refusal without it)."""
    if "_ray" in path.stem:
        pytest.importorskip("ray")
    if path.stem.startswith("minatar_"):
        pytest.importorskip("minatar")
    assert main(["validate", str(path)]) == 0


@pytest.mark.parametrize("path", FILES, ids=[str(p.relative_to(GRAPHS)) for p in FILES])
def test_native_graphs_declare_target_return(path: Path) -> None:
    """A native graph has a description and a numeric run.target_return; DNNE files have no run section."""
    document = json.loads(path.read_text())
    if document.get("format") != "dnne-graph":
        assert "run" not in document
        return
    assert document.get("description")
    target = document.get("run", {}).get("target_return")
    assert isinstance(target, (int, float)) and not isinstance(target, bool)
