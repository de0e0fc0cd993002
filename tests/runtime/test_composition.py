"""Composition: named streams (a route names a declared stream) and groups (subgraphs instantiated with
parameters, in the file or in a file beside it), on the toy nodes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph


def codes(error: GraphError) -> list[str]:
    return [issue.code for issue in error.errors]


class TestStreams:
    def test_route_naming_a_missing_stream_is_an_error_with_a_code(self, registry):
        """A route naming a stream no link or node declares is refused with unknown_stream, at the link."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3).add("m", "Sink").add("s", "Sink")
             .link("a.out", "m.x").link("b.out", "m.x").link("a.out", "s.x", route="c"))
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        assert codes(info.value) == ["unknown_stream"]
        (issue,) = info.value.errors
        assert issue.node == "s" and "'c'" in issue.message and "streams: a, b" in issue.message

    def test_the_same_link_twice_is_refused(self, registry):
        """Found by the build fuzz rule: a fan-in input linked twice from one output passed validation and built
        two channels of one name. It is a duplicate_link error now."""
        g = Graph().add("a", "Count").add("s", "Sink").link("a.out", "s.x").link("a.out", "s.x")
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        assert codes(info.value) == ["duplicate_link"] and info.value.errors[0].node == "s"

    def test_route_naming_a_fan_in_source_is_accepted(self, registry):
        """Today's files route by the id of a node feeding a fan-in input: still a declared stream."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3).add("m", "Sink").add("s", "Sink")
             .link("a.out", "m.x").link("b.out", "m.x").link("a.out", "s.x", route="b"))
        assert load_graph(g, registry=registry).links[-1].route == "b"

    def test_named_stream_tags_messages_and_routes_them(self, registry, run_graph):
        """A link's stream names its messages at a fan-in input; a route downstream delivers only that stream."""
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3, first=10).add("m", "Merge").add("r", "Relay")
             .add("s", "Sink")
             .link("a.out", "m.a").link("b.out", "m.b")
             .link("m.out", "r.x")
             .link("r.y", "s.x", route="second"))
        g.links[1].stream = "second"
        with pytest.raises(GraphError) as info:  # m.b takes one link: no stream there
            load_graph(g, registry=registry)
        assert "bad_stream" in codes(info.value)
        g = (Graph().add("a", "Count", n=3).add("b", "Count", n=3, first=10).add("s", "Sink").add("t", "Sink")
             .add("r", "Relay")
             .link("a.out", "s.x", stream="first").link("b.out", "s.x", stream="second")
             .link("b.out", "r.x").link("r.y", "t.x"))
        run, result = run_graph(g, registry)
        assert result.error is None
        assert sorted((v, src) for v, _, src in run.nodes["s"].received) == \
            [(0, "first"), (1, "first"), (2, "first"), (10, "second"), (11, "second"), (12, "second")]


TEMPLATE = {
    "params": {"n": 3, "sink": None},
    "nodes": {"c": {"type": "Count", "params": {"n": "$n"}}, "d": {"type": "Double"}},
    "links": [["c.out", "d.x"], ["d.y", "$sink.x"]],
}


def document(groups, nodes, links=()):
    return {"format": "dnne-graph", "version": 1, "groups": groups, "nodes": nodes, "links": list(links)}


class TestGroups:
    def test_instances_expand_with_their_params(self, registry, run_graph):
        """Two instances of one group: their nodes get the instance's ids and params, their links the outside
        node the parameter names, and the run is the one of the graph written out by hand."""
        doc = document({"counting": TEMPLATE}, {
            "out": {"type": "Sink"},
            "g1": {"group": "counting", "params": {"sink": "out"}},
            "g2": {"group": "counting", "params": {"n": 2, "sink": "out"}},
        })
        graph = load_graph(doc, registry=registry)
        assert list(graph.nodes) == ["out", "g1.c", "g1.d", "g2.c", "g2.d"]
        assert graph.nodes["g1.c"].params["n"] == 3 and graph.nodes["g2.c"].params["n"] == 2
        flat = (Graph().add("out", "Sink").add("g1.c", "Count", n=3).add("g1.d", "Double")
                .add("g2.c", "Count", n=2).add("g2.d", "Double")
                .link("g1.c.out", "g1.d.x").link("g1.d.y", "out.x").link("g2.c.out", "g2.d.x").link("g2.d.y", "out.x"))
        assert graph.to_native() == load_graph(flat, registry=registry).to_native()
        run, _ = run_graph(graph, registry)
        assert sorted(v for v, _, _ in run.nodes["out"].received) == [0, 0, 2, 2, 4]

    def test_id_pattern(self, registry):
        """'ids' sets how node ids expand ({node}{instance}: c1, d1)."""
        doc = document({"counting": dict(TEMPLATE, ids="{node}{instance}")},
                       {"out": {"type": "Sink"}, "1": {"group": "counting", "params": {"sink": "out"}}})
        assert set(load_graph(doc, registry=registry).nodes) == {"out", "c1", "d1"}

    def test_a_group_used_once_keeps_its_node_names(self, registry):
        """'ids': '{node}' keeps the template's node names; a second instance collides (duplicate_node_id)."""
        template = dict(TEMPLATE, ids="{node}")
        doc = document({"counting": template}, {"out": {"type": "Sink"},
                                                "1": {"group": "counting", "params": {"sink": "out"}}})
        assert list(load_graph(doc, registry=registry).nodes) == ["out", "c", "d"]
        doc["nodes"]["2"] = {"group": "counting", "params": {"sink": "out"}}
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert "duplicate_node_id" in codes(info.value)
        doc = document({"counting": dict(TEMPLATE, ids="{instance}")}, {"out": {"type": "Sink"}})
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        (issue,) = [issue for issue in info.value.errors if issue.code == "bad_group"]
        assert "{node}" in issue.message and issue.where == "/groups/counting"

    def test_a_whole_link_end_from_a_parameter(self, registry, run_graph):
        """A link end "$p" is the outside port (node.port) that parameter p holds: one template fed from
        differently named outputs; a value that is not node.port is a bad_group error naming the instance."""
        template = {"params": {"source": None, "sink": None}, "nodes": {"d": {"type": "Double"}},
                    "links": [["$source", "d.x"], ["d.y", "$sink"]]}
        doc = document({"doubling": template}, {
            "a": {"type": "Count", "params": {"n": 2}}, "r": {"type": "Relay"}, "out": {"type": "Sink"},
            "g1": {"group": "doubling", "params": {"source": "a.out", "sink": "out.x"}},
            "g2": {"group": "doubling", "params": {"source": "r.y", "sink": "out.x"}},
        }, [["a.out", "r.x"]])
        graph = load_graph(doc, registry=registry)
        assert [(link.src, link.src_port, link.dst, link.dst_port) for link in graph.links] == [
            ("a", "out", "r", "x"), ("a", "out", "g1.d", "x"), ("g1.d", "y", "out", "x"),
            ("r", "y", "g2.d", "x"), ("g2.d", "y", "out", "x")]
        run, _ = run_graph(graph, registry)
        assert sorted(v for v, _, _ in run.nodes["out"].received) == [0, 0, 2, 2]
        doc["nodes"]["g2"]["params"]["source"] = "r"
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert codes(info.value) == ["bad_group"] and "'g2'" in info.value.errors[0].message

    def test_errors_name_the_instance_and_the_template(self, registry):
        """A bad param inside an instance is reported at the template's node, naming the instance."""
        doc = document({"counting": TEMPLATE}, {
            "out": {"type": "Sink"},
            "g1": {"group": "counting", "params": {"n": -5, "sink": "out"}},
        })
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        (issue,) = info.value.errors
        assert issue.node == "g1.c"
        assert issue.where.startswith("/groups/counting/nodes/c/params/n") and "instance 'g1'" in issue.where

    @pytest.mark.parametrize("instance, code, words", [
        ({"group": "nope", "params": {}}, "unknown_group", "names group 'nope'"),
        ({"group": "counting", "params": {"sink": "out", "m": 1}}, "bad_group", "unknown parameter(s) m"),
        ({"group": "counting", "params": {}}, "bad_group", "sink must be given"),
        ({"group": "counting", "params": {"sink": 3}}, "bad_group", "must hold a node id"),
    ])
    def test_bad_instances(self, registry, instance, code, words):
        """An unknown group, an unknown or missing parameter, a node parameter that is not an id: named errors."""
        doc = document({"counting": TEMPLATE}, {"out": {"type": "Sink"}, "g": instance})
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert code in codes(info.value)
        message = next(i.message for i in info.value.errors if i.code == code)
        assert words in message and "'g'" in message

    def test_expanded_id_colliding_with_a_node_is_refused(self, registry):
        """An instance whose nodes would take an existing id is a duplicate_node_id error."""
        doc = document({"counting": dict(TEMPLATE, ids="{node}{instance}")},
                       {"c1": {"type": "Sink"}, "1": {"group": "counting", "params": {"sink": "c1"}}})
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert "duplicate_node_id" in codes(info.value)

    def test_group_file_beside_the_graph(self, registry, tmp_path):
        """A group may live in a file named relative to the graph file."""
        (tmp_path / "parts").mkdir()
        (tmp_path / "parts" / "counting.json").write_text(json.dumps(TEMPLATE))
        path = tmp_path / "graph.json"
        path.write_text(json.dumps(document({"counting": {"file": "parts/counting.json"}},
                                            {"out": {"type": "Sink"}, "g": {"group": "counting",
                                                                            "params": {"sink": "out"}}})))
        assert set(load_graph(path, registry=registry).nodes) == {"out", "g.c", "g.d"}

    @pytest.mark.parametrize("name", ["../outside.json", "/etc/passwd", "link/outside.json", "parts/../../x.json"])
    def test_group_files_stay_inside_the_graph_folder(self, registry, tmp_path, name):
        """Absolute paths, '..' and symbolic links leading out of the graph's folder are refused, with a code."""
        inner = tmp_path / "inner"
        inner.mkdir()
        (tmp_path / "outside.json").write_text(json.dumps(TEMPLATE))
        (inner / "link").symlink_to(tmp_path)
        path = inner / "graph.json"
        path.write_text(json.dumps(document({"counting": {"file": name}},
                                            {"out": {"type": "Sink"}, "g": {"group": "counting",
                                                                            "params": {"sink": "out"}}})))
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        assert "bad_group" in codes(info.value)

    def test_group_file_needs_a_graph_file(self, registry):
        """A document given as data (no file) cannot name group files: nothing is read relative to the cwd."""
        doc = document({"counting": {"file": "counting.json"}}, {"out": {"type": "Count"}})
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert codes(info.value) == ["bad_group"]

    def test_group_file_is_json_only(self, registry, tmp_path):
        """A group file that is not JSON is a malformed file error; nothing in it runs."""
        (tmp_path / "counting.py").write_text("import os\nos.system('touch pwned')\n")
        path = tmp_path / "graph.json"
        path.write_text(json.dumps(document({"counting": {"file": "counting.py"}}, {"out": {"type": "Count"}})))
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        assert codes(info.value) == ["malformed_file"]
        assert not (tmp_path / "pwned").exists() and not Path("pwned").exists()

    def test_routes_and_streams_expand_per_instance(self, registry):
        """A route or stream in a template names the instance's own stream (expanded like node ids)."""
        template = {"params": {"sink": None},
                    "nodes": {"c": {"type": "Count"}, "r": {"type": "Relay"}, "t": {"type": "Sink"}},
                    "links": [{"from": "c.out", "to": "$sink.x", "stream": "mine"}, ["c.out", "r.x"],
                              {"from": "r.y", "to": "t.x", "route": "mine"}]}
        doc = document({"g": template}, {"out": {"type": "Sink"}, "a": {"group": "g", "params": {"sink": "out"}},
                                         "b": {"group": "g", "params": {"sink": "out"}}})
        graph = load_graph(doc, registry=registry)
        assert sorted(link.stream for link in graph.links if link.stream) == ["a.mine", "b.mine"]
        assert sorted(link.route for link in graph.links if link.route) == ["a.mine", "b.mine"]

    def test_convert_writes_the_expanded_graph(self, registry):
        """The native form of a graph with groups is the expanded graph (what ``dnne convert`` writes)."""
        doc = document({"counting": TEMPLATE}, {"out": {"type": "Sink"},
                                                 "g": {"group": "counting", "params": {"sink": "out"}}})
        native = load_graph(doc, registry=registry).to_native()
        assert "groups" not in native and set(native["nodes"]) == {"out", "g.c", "g.d"}
        assert load_graph(native, registry=registry).to_native() == native
