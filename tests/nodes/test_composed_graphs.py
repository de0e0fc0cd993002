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
COMPOSED = ["multi_env_ppo.json"]


def link_count(document: dict) -> int:
    """Links written in a file: its own and its templates'."""
    return len(document.get("links", [])) + sum(len(group.get("links", []))
                                                 for group in document.get("groups", {}).values())


@pytest.mark.parametrize("name", COMPOSED)
def test_groups_expand_to_the_flat_graph(name):
    """Node ids, types, params, node order, links (with routes), link order and run section: all equal."""
    registry = default_registry()
    composed = load_graph(ROOT / "graphs" / name, registry=registry)
    flat = load_graph(FLAT / name, registry=registry)
    assert composed.to_native() == flat.to_native()


@pytest.mark.parametrize("name", COMPOSED)
def test_at_most_half_the_links(name):
    """The composed file writes at most half the links of the flat one."""
    composed = json.loads((ROOT / "graphs" / name).read_text())
    flat = json.loads((FLAT / name).read_text())
    assert link_count(composed) * 2 <= link_count(flat), (link_count(composed), link_count(flat))


def _train(path: Path) -> dict[str, float]:
    registry = default_registry()
    graph = load_graph(path, ["run.max_steps=2048", "run.target_return=null", "run.timeout=null",
                              "trainer.epochs=2"], registry=registry)
    result = asyncio.run(GraphRun(graph, registry).execute())
    assert result.error is None, result.error
    return result.counters


@pytest.mark.parametrize("name", COMPOSED)
def test_same_seed_same_counters(name):
    """Trained for a few updates with the same seed, the composed and the flat graph end with equal counters
    (env steps, iterations, returns, losses: the runs are the same)."""
    composed, flat = _train(ROOT / "graphs" / name), _train(FLAT / name)
    assert composed["iterations"] >= 2
    assert composed == flat
