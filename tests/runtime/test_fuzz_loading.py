"""Property: any JSON-like document, or a mutation of a valid graph, loads as a Graph or raises GraphError."""
from __future__ import annotations

import copy
import json
import math
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
NATIVE = json.loads((ROOT / "graphs" / "cartpole_ppo.json").read_text())
DNNE = json.loads((ROOT / "tests" / "data" / "dnne" / "Cartpole_PPO.json").read_text())
REGISTRY = default_registry()
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

keys = st.sampled_from(["format", "version", "nodes", "links", "run", "type", "params", "id", "inputs", "outputs",
                        "class_type", "widgets_values", "mode", "name", "link", "from", "to", "capacity",
                        "placement", "workers", "origin_id", "target_slot", "dnne-graph", "timeout", "seed"]) \
    | st.text(max_size=8)
scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats(allow_nan=True)
           | st.sampled_from(["dnne-graph", "EnvNode", "ORNode", "PPOAgentNode", "env.observations", "or.input_a",
                              "Reroute", "PrimitiveNode", "Note", "30s", "latest", "context"])
           | st.text(max_size=12))
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=6) | st.dictionaries(keys, inner, max_size=6),
                         max_leaves=40)


def paths(document, prefix=()):
    """Every path into the document (dict keys and list indices)."""
    yield prefix
    if isinstance(document, dict):
        for key, value in document.items():
            yield from paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            yield from paths(value, (*prefix, index))


@st.composite
def mutated(draw, base):
    """``base`` with a few values replaced, deleted or wrapped."""
    document = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        candidates = list(paths(document))
        path = draw(st.sampled_from(candidates))
        if not path:
            continue
        parent = document
        for step in path[:-1]:
            parent = parent[step]
        action = draw(st.sampled_from(["replace", "delete", "wrap"]))
        if action == "delete":
            del parent[path[-1]]
        elif action == "wrap":
            parent[path[-1]] = [parent[path[-1]]]
        else:
            parent[path[-1]] = draw(json_like)
    return document


def loads_or_graph_error(document) -> None:
    try:
        result = load_graph(document, registry=REGISTRY)
    except GraphError as error:
        assert error.errors, "a GraphError carries at least one error"
        assert str(error)
    else:
        assert isinstance(result, Graph)


def has_non_finite(value) -> bool:
    """Whether a float NaN or infinity is anywhere in ``value`` (json.dumps writes those as bare tokens)."""
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, dict):
        return any(has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(has_non_finite(v) for v in value)
    return False


def through_file(document) -> None:
    text = json.dumps(document, allow_nan=True)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        f.write(text)
    try:
        try:
            result = load_graph(f.name, registry=REGISTRY)
        except GraphError as error:
            assert error.errors
            if has_non_finite(document):
                assert any(i.code == "non_finite_value" for i in error.errors)
        else:
            assert isinstance(result, Graph)
            assert not any(isinstance(v, float) and not math.isfinite(v) for v in _leaves(result.run))
    finally:
        Path(f.name).unlink()


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


class TestLoadNeverCrashes:
    @FUZZ
    @given(json_like)
    def test_random_documents(self, document):
        """A random JSON-like document gives a Graph or a GraphError."""
        loads_or_graph_error(document)

    @FUZZ
    @given(mutated(NATIVE))
    def test_mutated_native_graph(self, document):
        """A mutated native graph gives a Graph or a GraphError."""
        loads_or_graph_error(document)

    @FUZZ
    @given(mutated(DNNE))
    def test_mutated_dnne_workflow(self, document):
        """A mutated DNNE workflow file gives a Graph or a GraphError."""
        loads_or_graph_error(document)

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(mutated(NATIVE) | mutated(DNNE) | json_like)
    def test_through_a_file(self, document):
        """The same holds for a document read from a file; a loaded file has no non-finite number."""
        through_file(document)

    @settings(max_examples=100, deadline=None)
    @given(st.binary(max_size=200) | st.text(max_size=200).map(str.encode))
    def test_arbitrary_bytes(self, data):
        """Arbitrary bytes in a file give a GraphError (or, rarely, a graph), never another exception."""
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
            f.write(data)
        try:
            try:
                load_graph(f.name, registry=REGISTRY)
            except GraphError as error:
                assert error.errors
        finally:
            Path(f.name).unlink()
