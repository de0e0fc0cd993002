"""The shipped graphs written with groups: they expand to exactly the flat graphs they replace, and train the same
(same seed, same counters)."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from dnne.runtime import default_registry, load_graph
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[2]
FLAT = Path(__file__).resolve().parent / "flat_graphs"  # the graphs as shipped before groups, link for link
COMPOSED = ["multi_env_ppo.json", "hierarchical_ppo.json", "hierarchical_maze_ppo.json"]
SHORT_RUN = {  # a few updates of each trainer
    "multi_env_ppo.json": ["run.max_steps=2048", "trainer.epochs=2"],
    "hierarchical_ppo.json": ["run.max_steps=6400", "high_trainer.epochs=2", "low_trainer.epochs=2"],
    "hierarchical_maze_ppo.json": ["run.max_steps=6400", "high_trainer.epochs=2", "low_trainer.epochs=2"],
}


def link_count(document: dict) -> int:
    """Links written in a file: its own and those of the templates it holds (templates in group files are
    shared by several graphs and counted apart, see test_shared_group_files)."""
    return len(document.get("links", [])) + sum(len(group.get("links", []))
                                                 for group in document.get("groups", {}).values())


@pytest.mark.parametrize("name", ["hierarchical_ppo.json", "hierarchical_maze_ppo.json"])
def test_shared_group_files(name):
    """The group files a hierarchical graph names are templates shared by the hierarchical graphs: together
    with the graph's own links they write fewer links than the flat graph."""
    composed = json.loads((ROOT / "graphs" / name).read_text())
    shared = [json.loads((ROOT / "graphs" / group["file"]).read_text())
              for group in composed["groups"].values() if "file" in group]
    flat = json.loads((FLAT / name).read_text())
    assert len(composed["links"]) + sum(len(template["links"]) for template in shared) < link_count(flat)


@pytest.mark.parametrize("name", COMPOSED)
def test_groups_expand_to_the_flat_graph(name):
    """Node ids, types, params, links (with routes) and run section: all equal; the multi-env graph keeps the
    order of nodes and links too (the hierarchical one lists its groups' nodes together)."""
    registry = default_registry()
    composed = load_graph(ROOT / "graphs" / name, registry=registry).to_native()
    flat = load_graph(FLAT / name, registry=registry).to_native()
    if name == "multi_env_ppo.json":
        assert composed == flat
    assert composed["nodes"] == flat["nodes"] and composed["run"] == flat["run"]
    assert sorted(map(json.dumps, composed["links"])) == sorted(map(json.dumps, flat["links"]))


@pytest.mark.parametrize("name", COMPOSED)
def test_at_most_half_the_links(name):
    """The composed file writes at most half the links of the flat one."""
    composed = json.loads((ROOT / "graphs" / name).read_text())
    flat = json.loads((FLAT / name).read_text())
    assert link_count(composed) * 2 <= link_count(flat), (link_count(composed), link_count(flat))


def _train(path: Path, name: str) -> dict[str, float]:
    registry = default_registry()
    graph = load_graph(path, [*SHORT_RUN[name], "run.target_return=null", "run.timeout=null"], registry=registry)
    result = asyncio.run(GraphRun(graph, registry).execute())
    assert result.error is None, result.error
    return result.counters


@pytest.mark.parametrize("name", COMPOSED)
def test_same_seed_same_counters(name):
    """Trained for a few updates with the same seed, the composed and the flat graph end with equal counters
    (env steps, iterations, returns, losses: the runs are the same)."""
    composed, flat = _train(ROOT / "graphs" / name, name), _train(FLAT / name, name)
    assert composed["iterations"] >= 2
    assert composed == flat
