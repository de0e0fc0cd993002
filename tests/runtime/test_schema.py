"""The JSON Schema of the native format: graphs/ validate against it, bad documents do not, it matches the code."""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path

import jsonschema
import pytest
from dnne.runtime.errors import GraphError
from dnne.runtime.graph import RUN_KEYS
from dnne.runtime.graph_schema import graph_schema
from dnne.runtime.loading import load_graph
from toy_nodes import toy_registry


def _nodes_installed() -> bool:
    try:
        return importlib.util.find_spec("dnne.nodes") is not None
    except ModuleNotFoundError:  # hidden (hide_nodes)
        return False


NODES_INSTALLED = _nodes_installed()
ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "runtime" / "schema" / "graph.schema.json").read_text())  # as shipped: engine keys
VALIDATOR = jsonschema.Draft202012Validator(graph_schema(toy_registry()))  # what the toy registry's loader takes
NATIVE_FILES = [p for p in sorted((ROOT / "graphs").rglob("*.json"))
                if json.loads(p.read_text()).get("format") == "dnne-graph"]


@functools.cache
def installed_validator() -> jsonschema.Draft202012Validator:
    """The validator of the installed packages' schema (built once)."""
    from dnne.runtime.registry import default_registry

    return jsonschema.Draft202012Validator(graph_schema(default_registry()))


def minimal(**changes):
    doc = {"format": "dnne-graph", "version": 1,
           "nodes": {"c": {"type": "Count", "params": {"n": 3}}, "s": {"type": "Sink"}, "t": {"type": "Sink"}},
           "links": [["c.out", "s.x"], {"from": "c.out", "to": "t.x", "capacity": 2, "policy": "latest"}],
           "run": {"seed": 1, "timeout": "1h30m"}}
    doc.update(changes)
    return doc


class TestSchema:
    def test_schema_is_valid_draft_2020_12(self):
        """The schema itself is a valid draft 2020-12 schema."""
        jsonschema.Draft202012Validator.check_schema(SCHEMA)
        assert SCHEMA["$schema"].endswith("2020-12/schema")

    def test_shipped_schema_names_the_engine_run_keys_only(self):
        """The schema as shipped names the engine's run keys (graph.RUN_KEYS) and no other: no package's key."""
        assert set(SCHEMA["properties"]["run"]["properties"]) == set(RUN_KEYS)
        assert SCHEMA["properties"]["run"]["additionalProperties"] is False

    @pytest.mark.parametrize("packages", [False, True], ids=["toy", "installed"])
    def test_run_keys_match_the_code(self, packages):
        """A registry's schema names exactly the run keys its loader accepts: the engine's and those the node
        packages register (the toy vocabulary's, or the installed packages')."""
        if packages and not NODES_INSTALLED:
            pytest.skip("needs dnne.nodes, hidden by hide_nodes")
        from dnne.runtime.registry import default_registry

        registry = default_registry() if packages else toy_registry()
        registered = set(registry.vocabulary.run_keys)
        assert set(RUN_KEYS) < registered
        assert set(graph_schema(registry)["properties"]["run"]["properties"]) == registered

    @pytest.mark.nodes
    @pytest.mark.parametrize("path", NATIVE_FILES, ids=lambda p: p.name)
    def test_native_graph_files_validate(self, path):
        """Every native graph in graphs/ validates against the schema of the installed packages, and those that
        set a package's run key do not validate against the engine's schema alone."""
        document = json.loads(path.read_text())
        installed_validator().validate(document)
        engine_only = set(RUN_KEYS) >= set(document.get("run", {}))
        assert engine_only == (not list(jsonschema.Draft202012Validator(SCHEMA).iter_errors(document)))

    @pytest.mark.nodes
    def test_there_are_native_graph_files(self):
        """graphs/ holds at least one native graph (so the check above checks something)."""
        assert NATIVE_FILES

    def test_minimal_document_validates(self):
        """A minimal document with both link forms validates."""
        VALIDATOR.validate(minimal())

    @pytest.mark.parametrize("bad", [
        minimal(version=2),
        minimal(nodes={"c": {"params": {}}}),
        minimal(links=[["c.out"]]),
        minimal(links=[["cout", "s.x"]]),
        minimal(links=[{"from": "c.out", "to": "s.x", "policy": "newest"}]),
        minimal(links=[{"from": "c.out", "to": "s.x", "capacity": 0}]),
        minimal(run={"max_step": 10}),
        minimal(run={"max_work": 0}),
        minimal(run={"max_work": 2.5}),
        minimal(run={"target_score": "high"}),
        minimal(run={"timeout": "ten minutes"}),
        minimal(run={"seed": -1}),
        minimal(placement={"c": 3}),
    ], ids=lambda d: json.dumps(d)[:60])
    def test_documents_the_loader_refuses_are_rejected(self, bad, registry):
        """Documents the native loader refuses (a GraphError) are rejected by the schema too."""
        with pytest.raises(GraphError):
            load_graph(bad, registry=registry)
        assert list(VALIDATOR.iter_errors(bad))

    @pytest.mark.parametrize("bad", [
        minimal(nodes={"c": {"type": "Count", "colour": "red"}, "s": {"type": "Sink"}, "t": {"type": "Sink"}}),
        minimal(extra=1),
    ], ids=lambda d: json.dumps(d)[:60])
    def test_fields_the_loader_ignores_with_a_warning_are_rejected(self, bad, registry):
        """The schema is stricter than the loader: a field the loader ignores with a warning is a schema error."""
        graph = load_graph(bad, registry=registry)
        assert [issue.code for issue in graph.warnings] == ["ignored_field"]
        assert list(VALIDATOR.iter_errors(bad))

    @pytest.mark.parametrize("bad", [{"format": "dnne-graph"}, minimal(format="comfy")],
                             ids=lambda d: json.dumps(d)[:60])
    def test_documents_only_the_schema_rejects(self, bad, registry):
        """Documents the loader accepts but the schema rejects: no nodes at all, and a wrong ``format`` string on a
        document that has the native shape."""
        load_graph(bad, registry=registry)
        assert list(VALIDATOR.iter_errors(bad))

    def test_schema_ships_with_the_package(self):
        """The schema is package data of dnne.runtime."""
        from importlib.resources import files

        assert json.loads(files("dnne.runtime").joinpath("schema/graph.schema.json").read_text()) == SCHEMA
