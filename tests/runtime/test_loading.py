"""Graph files: native, DNNE/ComfyUI workflow (v0.4 and v1.0 links), API prompt, frontend-only nodes, overrides."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import apply_overrides, load_graph, parse_override

ROOT = Path(__file__).resolve().parents[2]
DNNE_FILE = ROOT / "tests" / "data" / "dnne" / "Cartpole_PPO.json"  # DNNE's own file, byte for byte


def codes(error: GraphError) -> list[str]:
    return [issue.code for issue in error.errors]


def link_set(graph: Graph) -> set[str]:
    return {str(link) for link in graph.links}


def node(node_id, node_type, inputs=(), outputs=(), widgets=None, mode=0, **extra):
    """A workflow node; ``inputs``/``outputs`` are socket names (``(name, "widget")`` for a widget input)."""
    body = {"id": node_id, "type": node_type, "mode": mode, "pos": [0, 0], "size": [100, 50], "flags": {},
            "inputs": [{"name": n[0], "type": "INT", "widget": {"name": n[0]}, "link": None} if isinstance(n, tuple)
                       else {"name": n, "type": "INT", "link": None} for n in inputs],
            "outputs": [{"name": n, "type": "INT", "links": []} for n in outputs], **extra}
    if widgets is not None:
        body["widgets_values"] = widgets
    return body


def workflow(nodes, links, link_objects=False):
    if link_objects:
        links = [{"id": i, "origin_id": a, "origin_slot": b, "target_id": c, "target_slot": d, "type": "INT"}
                 for i, a, b, c, d in links]
    else:
        links = [[i, a, b, c, d, "INT"] for i, a, b, c, d in links]
    return {"last_node_id": 9, "last_link_id": 9, "nodes": nodes, "links": links, "groups": [], "config": {},
            "extra": {}, "version": 0.4 if not link_objects else 1.0}


def toy_workflow(link_objects=False):
    """Count(1) -> Double(2) -> Sink(3), with Count's widgets n, first, ... in declaration order."""
    nodes = [
        node(1, "Count", outputs=["out"], widgets=[4, 10, 0, True, None, 0.0]),
        node(2, "Double", inputs=["x"], outputs=["y"]),
        node(3, "Sink", inputs=["x", ("delay",)], widgets=[0.0]),
    ]
    return workflow(nodes, [(1, 1, 0, 2, 0), (2, 2, 0, 3, 0)], link_objects)


class TestNative:
    def test_native_document(self, registry):
        """A native document loads with its nodes, params, links and run section."""
        doc = {"format": "dnne-graph", "version": 1, "description": "toy",
               "nodes": {"c": {"type": "Count", "params": {"n": 3}, "title": "counter"}, "s": {"type": "Sink"}},
               "links": [["c.out", "s.x"]], "run": {"seed": 3, "timeout": "5m"}}
        g = load_graph(doc, registry=registry)
        assert g.nodes["c"].params == {"n": 3} and g.nodes["c"].type == "Count"
        assert link_set(g) == {"c.out -> s.x"}
        assert g.run == {"seed": 3, "timeout": "5m"}
        assert g.nodes["c"].param_where["n"] == "/nodes/c/params/n"

    def test_link_objects_keep_options(self, registry):
        """Link objects carry capacity, policy and route."""
        doc = {"format": "dnne-graph", "nodes": {"c": {"type": "Count", "params": {"group": "g1"}}, "s": {"type": "Sink"}},
               "links": [{"from": "c.out", "to": "s.x", "capacity": 4, "policy": "latest", "route": "g1"}]}
        (link,) = load_graph(doc, registry=registry).links
        assert (link.capacity, link.policy, link.route) == (4, "latest", "g1")

    def test_file_path(self, registry, tmp_path):
        """A path loads like the parsed document and records the path."""
        path = tmp_path / "g.json"
        path.write_text(json.dumps({"format": "dnne-graph", "nodes": {"c": {"type": "Count"}, "s": {"type": "Sink"}},
                                    "links": [["c.out", "s.x"]]}))
        g = load_graph(path, registry=registry)
        assert g.path == str(path) and set(g.nodes) == {"c", "s"}

    def test_unknown_top_level_key_is_a_warning(self, registry):
        """An unknown top-level key is ignored with a warning, not an error."""
        doc = {"format": "dnne-graph", "nodes": {"c": {"type": "Count"}, "s": {"type": "Sink"}},
               "links": [["c.out", "s.x"]], "colour": "red"}
        g = load_graph(doc, registry=registry)
        assert [w.code for w in g.warnings] == ["ignored_field"]

    def test_repeated_node_id_in_file(self, registry, tmp_path):
        """A node id written twice in a native file is a duplicate_node_id error, not silently the last one."""
        path = tmp_path / "dup.json"
        path.write_text('{"format": "dnne-graph", "nodes": {"c": {"type": "Count"}, "c": {"type": "Sink"}}}')
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        (issue,) = [i for i in info.value.errors if i.code == "duplicate_node_id"]
        assert issue.node == "c" and issue.where == "/nodes/c"

    def test_to_native_round_trip(self, registry, tmp_path):
        """A graph written with to_native and loaded again has the same nodes, params, links and run section."""
        g = (Graph().add("c", "Count", n=3, group="g").add("s", "Sink", delay=0.0).add("m", "Merge")
             .link("c.out", "m.a", capacity=3, policy="latest").link("m.out", "s.x", route="g"))
        g.run.update(seed=4, max_work=10)
        g.placement = {"c": "main"}
        first = load_graph(g, registry=registry)
        path = tmp_path / "round.json"
        path.write_text(json.dumps(first.to_native()))
        second = load_graph(path, registry=registry)
        assert {k: (v.type, v.params) for k, v in second.nodes.items()} == \
            {k: (v.type, v.params) for k, v in first.nodes.items()}
        assert [(str(l), l.capacity, l.policy, l.route) for l in second.links] == \
            [(str(l), l.capacity, l.policy, l.route) for l in first.links]
        assert second.run == first.run and second.placement == first.placement


class TestWorkflow:
    @pytest.mark.parametrize("link_objects", [False, True], ids=["v0.4-arrays", "v1.0-objects"])
    def test_workflow_links_and_widgets(self, registry, link_objects):
        """Workflow links resolve through socket names; widgets map in declared param order."""
        g = load_graph(toy_workflow(link_objects), registry=registry)
        assert {k: v.type for k, v in g.nodes.items()} == {"1": "Count", "2": "Double", "3": "Sink"}
        assert link_set(g) == {"1.out -> 2.x", "2.y -> 3.x"}
        assert g.nodes["1"].params["n"] == 4 and g.nodes["1"].params["first"] == 10
        assert g.nodes["1"].param_where["n"] == "/nodes/0/widgets_values/0"

    def test_slots_index_the_file_sockets_not_our_ports(self, registry):
        """A link's to_slot counts the file's inputs list, whatever order we declare ports in."""
        nodes = [node(1, "Count", outputs=["out"]), node(2, "Count", outputs=["out"]),
                 node(3, "Add", inputs=["c", "b", "a"], outputs=["total"]), node(4, "Sink", inputs=["x"])]
        g = load_graph(workflow(nodes, [(1, 1, 0, 3, 2), (2, 2, 0, 3, 1), (3, 3, 0, 4, 0)]), registry=registry)
        assert link_set(g) == {"1.out -> 3.a", "2.out -> 3.b", "3.total -> 4.x"}

    def test_muted_node_does_not_run(self, registry):
        """A mode 2 (muted) node is left out with its links."""
        doc = toy_workflow()
        doc["nodes"].append(node(4, "Sink", inputs=["x"], mode=2))
        doc["links"].append([3, 2, 0, 4, 0, "INT"])
        g = load_graph(doc, registry=registry)
        assert "4" not in g.nodes and all(l.dst != "4" for l in g.links)

    def test_bypassed_node_passes_its_input_through(self, registry):
        """A mode 4 (bypassed) node is removed and its same-typed input feeds its output's targets."""
        doc = toy_workflow()
        doc["nodes"][1]["mode"] = 4
        g = load_graph(doc, registry=registry)
        assert "2" not in g.nodes
        assert link_set(g) == {"1.out -> 3.x"}

    def test_reroutes_are_spliced_out(self, registry):
        """A chain of Reroute nodes is replaced by one link from the real source."""
        nodes = [node(1, "Count", outputs=["out"]), node(5, "Reroute", inputs=[""], outputs=[""]),
                 node(6, "Reroute", inputs=[""], outputs=[""]), node(3, "Sink", inputs=["x"])]
        g = load_graph(workflow(nodes, [(1, 1, 0, 5, 0), (2, 5, 0, 6, 0), (3, 6, 0, 3, 0)]), registry=registry)
        assert set(g.nodes) == {"1", "3"}
        assert link_set(g) == {"1.out -> 3.x"}
        assert g.links[0].where == "/links/2"

    def test_primitive_value_becomes_the_widget_value(self, registry):
        """A PrimitiveNode feeding a widget sets that param; the primitive itself is not a node."""
        nodes = [node(1, "Count", inputs=[("n",)], outputs=["out"]), node(3, "Sink", inputs=["x"]),
                 node(7, "PrimitiveNode", outputs=["INT"], widgets=[9, "fixed"])]
        g = load_graph(workflow(nodes, [(1, 1, 0, 3, 0), (2, 7, 0, 1, 0)]), registry=registry)
        assert set(g.nodes) == {"1", "3"}
        assert g.nodes["1"].params["n"] == 9
        assert g.nodes["1"].param_where["n"] == "/nodes/2/widgets_values/0"

    def test_note_is_skipped(self, registry):
        """Note and MarkdownNote nodes are ignored."""
        doc = toy_workflow()
        doc["nodes"] += [node(8, "Note", widgets=["hello"]), node(9, "MarkdownNote", widgets=["# hi"])]
        g = load_graph(doc, registry=registry)
        assert set(g.nodes) == {"1", "2", "3"}

    def test_widget_fed_by_a_real_node_is_refused(self, registry):
        """Only a PrimitiveNode may feed a widget socket: anything else is unknown_port."""
        nodes = [node(1, "Count", outputs=["out"]), node(2, "Count", inputs=[("n",)], outputs=["out"]),
                 node(3, "Sink", inputs=["x"])]
        with pytest.raises(GraphError) as info:
            load_graph(workflow(nodes, [(1, 1, 0, 2, 0), (2, 2, 0, 3, 0)]), registry=registry)
        assert "unknown_port" in codes(info.value)


class TestApiPrompt:
    def test_api_prompt(self, registry):
        """In an API prompt, [node_id, output_index] is a link and other values are params."""
        doc = {"1": {"class_type": "Count", "inputs": {"n": 3}},
               "2": {"class_type": "Double", "inputs": {"x": ["1", 0]}},
               "3": {"class_type": "Sink", "inputs": {"x": ["2", 0]}}}
        g = load_graph(doc, registry=registry)
        assert link_set(g) == {"1.out -> 2.x", "2.y -> 3.x"}
        assert g.nodes["1"].params == {"n": 3}
        assert g.format == "api"

    @pytest.mark.nodes
    def test_list_param_is_not_a_link(self, full_registry):
        """A two-integer list param (hidden_sizes [64, 64]) stays a param in an API prompt."""
        doc = {"1": {"class_type": "EnvNode", "inputs": {"num_envs": 2}},
               "3": {"class_type": "PPOAgentNode", "inputs": {"hidden_sizes": [64, 64], "observations": ["1", 0]}}}
        g = load_graph(doc, registry=full_registry)
        assert g.nodes["3"].params["hidden_sizes"] == [64, 64]
        assert link_set(g) == {"1.observations -> 3.observations"}

    @pytest.mark.nodes
    def test_dnne_output_indices_count_placeholders(self, builtin_registry):
        """API output indices count DNNE's sockets: the trainer's training_complete is output 1."""
        workflow_doc = json.loads(DNNE_FILE.read_text())
        doc = {str(n["id"]): {"class_type": n["type"], "inputs": {}} for n in workflow_doc["nodes"]}
        sockets = {str(n["id"]): [i["name"] for i in n["inputs"]] for n in workflow_doc["nodes"]}
        for _, src, src_slot, dst, dst_slot, _ in workflow_doc["links"]:
            doc[str(dst)]["inputs"][sockets[str(dst)][dst_slot]] = [str(src), src_slot]
        g = load_graph(doc, registry=builtin_registry)
        assert len(g.links) == len(workflow_doc["links"]) + 1  # the weights link the model link implies
        assert "6.weights -> 3.weights" in link_set(g)
        assert "6.training_complete -> 4.trigger" in link_set(g)
        assert "1.observations -> 2.input_a" in link_set(g)


@pytest.fixture(scope="module")
def graph(builtin_registry):
    """The real DNNE Cartpole file, loaded."""
    return load_graph(DNNE_FILE, registry=builtin_registry)


class TestDnneFile:
    @pytest.mark.nodes
    def test_node_types(self, graph):
        """The real DNNE file loads its six nodes with their DNNE type names."""
        assert {k: v.type for k, v in graph.nodes.items()} == {
            "1": "IsaacGymEnvNode", "2": "ORNode", "3": "PPOAgentNode", "4": "IsaacGymStepNode",
            "5": "CartpoleActionNode", "6": "PPOTrainerNode"}

    def test_links_resolved_by_socket_name(self, graph):
        """Every link resolves through the file's socket names to our canonical port names; the model link implies
        the weights link back."""
        assert link_set(graph) == {
            "1.env_handle -> 4.env_handle", "1.observations -> 2.input_a", "2.output -> 3.observations",
            "3.policy_output -> 5.network_output", "5.action -> 4.actions", "4.observations -> 6.states",
            "3.policy_output -> 6.policy_outputs", "4.dones -> 6.dones", "3.model -> 6.model",
            "6.training_complete -> 4.trigger", "4.rewards -> 6.rewards", "4.observations -> 2.input_b",
            "6.weights -> 3.weights"}

    @pytest.mark.nodes
    def test_widget_params_mapped(self, graph):
        """Widget values map to canonical param names (num_epochs -> epochs, gae_lambda -> lam, action_dim -> output_size)."""
        trainer, agent, env = graph.nodes["6"].params, graph.nodes["3"].params, graph.nodes["1"].params
        assert trainer["epochs"] == 4 and trainer["lam"] == 0.95 and trainer["horizon_length"] == 16
        assert trainer["minibatch_size"] == 32 and trainer["checkpoint_trigger_value"] == "10"
        assert agent["output_size"] == 1 and agent["hidden_sizes"] == [64, 64] and agent["activation"] == "elu"
        assert env["task"] == "Cartpole" and env["num_envs"] == 1 and env["device"] == "cuda"
        assert graph.nodes["5"].params["max_push_effort"] == 10.0

    @pytest.mark.nodes
    def test_v1_links_load_the_same(self, builtin_registry, graph):
        """The DNNE file with its links rewritten as v1.0 objects loads the same graph."""
        doc = json.loads(DNNE_FILE.read_text())
        doc["links"] = [{"id": l[0], "origin_id": l[1], "origin_slot": l[2], "target_id": l[3], "target_slot": l[4],
                         "type": l[5]} for l in doc["links"]]
        assert link_set(load_graph(doc, registry=builtin_registry)) == link_set(graph)

    @pytest.mark.nodes
    def test_round_trip_to_native(self, builtin_registry, graph, tmp_path):
        """The DNNE graph written as native and loaded back is the same graph."""
        path = tmp_path / "cartpole.json"
        path.write_text(json.dumps(graph.to_native()))
        again = load_graph(path, registry=builtin_registry)
        assert {k: (v.type, v.params) for k, v in again.nodes.items()} == \
            {k: (v.type, v.params) for k, v in graph.nodes.items()}
        assert link_set(again) == link_set(graph)

    @pytest.mark.nodes
    def test_link_to_a_context_socket_is_unknown_port(self, builtin_registry):
        """A link into DNNE's placeholder 'context' socket is an unknown_port error."""
        doc = json.loads(DNNE_FILE.read_text())
        doc["links"].append([13, 5, 1, 4, 2, "CONTEXT"])
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=builtin_registry)
        assert "unknown_port" in codes(info.value)


class TestOverrides:
    def test_param_override(self, registry):
        """--set ID.param=VALUE sets a param; VALUE is JSON."""
        doc = {"format": "dnne-graph", "nodes": {"c": {"type": "Count", "params": {"n": 3}}, "s": {"type": "Sink"}},
               "links": [["c.out", "s.x"]]}
        g = load_graph(doc, registry=registry, overrides=["c.n=7", "c.group=\"g1\"", "c.stamped=false"])
        assert g.nodes["c"].params == {"n": 7, "group": "g1", "stamped": False}
        assert g.nodes["c"].param_where["n"] == "--set c.n"

    def test_non_json_value_is_a_string(self):
        """A VALUE that is not JSON is taken as a string."""
        assert parse_override("c.group=g1") == ("c", "group", "g1")
        assert parse_override("run.timeout=30s") == ("run", "timeout", "30s")
        assert parse_override("c.n=3") == ("c", "n", 3)
        assert parse_override("a.b.c=[1, 2]") == ("a.b", "c", [1, 2])

    def test_run_override(self, registry):
        """run.KEY=VALUE sets the run section."""
        doc = {"format": "dnne-graph", "nodes": {}, "run": {"seed": 1}}
        g = load_graph(doc, registry=registry, overrides=["run.seed=5", "run.timeout=2m"])
        assert g.run == {"seed": 5, "timeout": "2m"}

    def test_cli_run_values_win(self, registry):
        """Values passed as run= win over --set and the file."""
        doc = {"format": "dnne-graph", "nodes": {}, "run": {"seed": 1}}
        g = load_graph(doc, registry=registry, overrides=["run.seed=5"], run={"seed": 9, "device": None})
        assert g.run["seed"] == 9 and "device" not in g.run

    def test_unknown_node_is_an_error(self, registry):
        """--set naming a node that is not in the graph is an unknown_node error located at --set."""
        doc = {"format": "dnne-graph", "nodes": {}}
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry, overrides=["nope.n=1"])
        (issue,) = info.value.errors
        assert (issue.code, issue.node, issue.where) == ("unknown_node", "nope", "--set nope.n")

    def test_unknown_param_and_bad_value(self, registry):
        """--set of an unknown param or a bad value is reported like the same mistake in the file."""
        doc = {"format": "dnne-graph", "nodes": {"c": {"type": "Count"}, "s": {"type": "Sink"}},
               "links": [["c.out", "s.x"]]}
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry, overrides=["c.nope=1", "c.n=-1", "c.delay=NaN", "bad"])
        assert sorted(codes(info.value)) == ["bad_override", "non_finite_value", "unknown_param",
                                             "value_out_of_bounds"]

    @pytest.mark.nodes
    def test_dnne_alias_override_replaces_the_written_spelling(self, builtin_registry):
        """--set 6.epochs=2 on a DNNE file replaces the value written as num_epochs."""
        g = load_graph(DNNE_FILE, registry=builtin_registry, overrides=["6.num_epochs=2", "1.num_envs=4"])
        assert g.nodes["6"].params["epochs"] == 2 and g.nodes["1"].params["num_envs"] == 4

    def test_mapping_overrides(self, registry):
        """apply_overrides takes a mapping of keys to already-parsed values."""
        g = Graph().add("c", "Count")
        issues = []
        apply_overrides(g, {"c.n": 2, "run.seed": 3}, registry, issues)
        assert issues == [] and g.nodes["c"].params == {"n": 2} and g.run == {"seed": 3}
