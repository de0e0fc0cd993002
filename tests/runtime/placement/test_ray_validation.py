"""Ray entries under ``workers`` are checked at validation, with or without Ray installed: without the ``ray``
extra a Ray placement is refused (exit code 2, a message naming the extra); malformed entries are refused too."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.cli import main
from dnne.runtime.errors import GraphError
from dnne.runtime.loading import load_graph
from dnne.runtime.placement import ray_parts
from dnne.runtime.registry import default_registry

RAY_GRAPH = Path(__file__).parents[3] / "graphs" / "multi_env_ppo_ray.json"


def codes(document: dict) -> list[tuple[str, str]]:
    with pytest.raises(GraphError) as raised:
        load_graph(document, registry=default_registry())
    return [(issue.code, issue.where) for issue in raised.value.issues if issue.severity == "error"]


def test_without_ray_a_ray_placement_is_refused_naming_the_extra(monkeypatch, capsys):
    monkeypatch.setattr(ray_parts, "ray_installed", lambda: False)
    assert main(["validate", str(RAY_GRAPH)]) == 2
    err = capsys.readouterr().err
    assert "worker 'group1' is placed on Ray, which is not installed" in err
    assert 'pip install "dnne-runtime[ray]"' in err
    assert "Traceback" not in err


def test_malformed_ray_entries_are_refused_where_they_are(monkeypatch):
    monkeypatch.setattr(ray_parts, "ray_installed", lambda: True)
    document = json.loads(RAY_GRAPH.read_text())
    document["workers"] = {
        "group1": {"ray": {"num_cpus": -1, "colour": "red"}},
        "group2": {"ray": {"resources": {"group2": "one"}, "node_label": {"zone": 3}}},
        "group3": {"ray": 4, "python": "isaac"},
    }
    found = codes(document)
    assert ("bad_placement", "/workers/group1/ray/num_cpus") in found
    assert ("bad_placement", "/workers/group1/ray/colour") in found
    assert ("bad_placement", "/workers/group2/ray/resources") in found
    assert ("bad_placement", "/workers/group2/ray/node_label") in found
    assert ("bad_placement", "/workers/group3/ray") in found


def test_python_and_ray_exclude_each_other(monkeypatch):
    monkeypatch.setattr(ray_parts, "ray_installed", lambda: True)
    document = json.loads(RAY_GRAPH.read_text())
    document["workers"]["group1"]["python"] = "isaac"
    assert ("bad_placement", "/workers/group1/python") in codes(document)


def test_actor_options_never_let_ray_retry():
    options = ray_parts.actor_options({"num_cpus": 2, "resources": {"group1": 1}, "node_label": {"zone": "a"}})
    assert options == {"num_cpus": 2, "max_restarts": 0, "max_task_retries": 0, "resources": {"group1": 1},
                       "label_selector": {"zone": "a"}}
