"""The bad-input corpus: every file in bad_graphs/ is refused with its code, node and place; never a traceback."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loaders.document import MAX_FILE_BYTES
from dnne.runtime.loading import load_graph

CORPUS = Path(__file__).parent / "bad_graphs"

# file stem (<code>__<name>) -> (node id of the first issue with that code, its where, other error codes expected)
EXPECTED: dict[str, tuple[str | None, str | None, list[str]]] = {
    "bad_link__capacity": (None, "/links/0/capacity", []),
    "bad_param_value__checkpoint_trigger": ("trainer", "/nodes/trainer/params/checkpoint_trigger_value", []),
    "implicit_conversion__dones_into_rewards": ("trainer", "/links/9", []),
    "offset_mismatch__current_obs_as_states": ("trainer", "/links/8", []),
    "bad_device__env_cuda_abc": ("env", "/nodes/env/params/device", []),
    "number_too_large__float_param": (None, "/nodes/trainer/params/gamma", []),
    "module_not_allowed__gym_module_id": ("env", "/nodes/env/params/task", []),
    "bad_env_kwargs__unknown_key": ("env", "/nodes/env/params/env_kwargs", []),
    "bad_link__no_dot": (None, "/links/0", []),
    "bad_link__one_end": (None, "/links/13", []),
    "bad_link__policy": (None, "/links/0/policy", []),
    "bad_link__unknown_option": (None, "/links/0", []),
    "bad_link__workflow_short": (None, "/links/2", []),
    "bad_link__workflow_slot_string": (None, "/links/1", ["missing_required_input"]),
    "bad_node_id__blank": (None, "/nodes/ ", []),
    "bad_param_type__hidden_sizes": ("agent", "/nodes/agent/params/hidden_sizes", []),
    "bad_param_type__num_envs_string": ("env", "/nodes/env/params/num_envs", []),
    "bad_placement__not_object": (None, "/placement", []),
    "bad_placement__undeclared_worker": ("env", "/placement/env", ["link_crosses_process"]),
    "bad_run_option__run_not_object": (None, "/run", []),
    "bad_run_option__seed": (None, "/run/seed", []),
    "bad_run_option__fuse_chains": (None, "/run/fuse_chains", []),
    "bad_run_option__timeout": (None, "/run/timeout", []),
    "bad_run_option__unknown_key": (None, "/run/max_step", []),
    "bad_slot_index__api_output": ("3", "/3/inputs/observations", ["missing_required_input"]),
    "bad_slot_index__workflow_output": ("2", "/links/1", ["missing_required_input"]),
    "dangling_link__api": ("3", "/3/inputs/observations", ["missing_required_input"]),
    "dangling_link__native": (None, "/links/13", []),
    "dangling_link__workflow": (None, "/links/2", []),
    "duplicate_node_id__native_repeated_key": ("step", "/nodes/step", []),
    "duplicate_node_id__workflow": ("3", "/nodes/2", ["dangling_link"]),
    "duplicate_param__alias_and_name": ("trainer", "/nodes/trainer/params/gae_lambda", []),
    "link_crosses_process__env_handle": ("step", "/links/5", []),
    "malformed_file__nodes_not_object": (None, "/nodes", ["dangling_link"]),
    "malformed_file__truncated_json": (None, "line 1, column 201", []),
    "malformed_file__workflow_links_not_list": (None, "/links", ["missing_required_input"]),
    "malformed_node__api_inputs": ("2", "/2", ["dangling_link", "missing_required_input"]),
    "malformed_node__no_type": ("or", "/nodes/or", ["dangling_link", "missing_required_input"]),
    "malformed_node__widgets_not_list": ("3", "/nodes/2/widgets_values", []),
    "malformed_node__workflow_id": (None, "/nodes/1", ["dangling_link", "missing_required_input"]),
    "missing_required_input__step_actions": ("step", "/nodes/step", []),
    "missing_required_param__toy_needs": ("needs", "/nodes/needs", []),
    "non_finite_value__infinity_target": (None, "/run/target_return", []),
    "non_finite_value__nan_literal": (None, "/nodes/trainer/params/gamma", []),
    "too_deeply_nested__env_kwargs": (None, None, []),
    "too_many_links__action_policy": ("action", "/links/13", []),
    "type_mismatch__dnne_model_into_observations": ("3", "/links/2", ["missing_required_input"]),
    "type_mismatch__trigger_into_actions": ("step", "/links/6", ["missing_required_input"]),
    "unknown_format__not_a_graph": (None, None, []),
    "unknown_format__top_level_list": (None, None, []),
    "unknown_node__placement": ("critic", "/placement/critic", []),
    "unknown_node_type__typo": ("agent", "/nodes/agent", []),
    "unknown_node_type__workflow": ("3", "/nodes/2", []),
    "unknown_param__typo": ("trainer", "/nodes/trainer/params/gama", []),
    "unknown_port__dnne_context_socket": ("5", "/links/12", []),
    "unknown_port__input": ("agent", "/links/2", ["missing_required_input"]),
    "unknown_port__output": ("env", "/links/0", []),
    "unstarted_loop__no_start": ("action", "/nodes/action", []),
    "unsupported_version__v2": (None, "/version", []),
    "value_not_in_choices__activation": ("agent", "/nodes/agent/params/activation", []),
    "value_out_of_bounds__clip_param_open": ("trainer", "/nodes/trainer/params/clip_param", []),
    "value_out_of_bounds__gamma": ("trainer", "/nodes/trainer/params/gamma", []),
    "value_out_of_bounds__num_envs": ("env", "/nodes/env/params/num_envs", []),
    "widget_count_mismatch__agent": ("3", "/nodes/1/widgets_values", []),
}

# codes the corpus has no file for, and the tests below that cover them instead
GENERATED = {"file_too_large", "file_not_found", "too_many_nodes"}
COMPOSITION = {"bad_group", "unknown_group", "unknown_stream", "bad_stream", "duplicate_link"}  # test_composition.py


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


class TestCorpus:
    def test_every_file_has_an_expectation(self):
        """The corpus and its table of expectations name the same files."""
        assert {f.stem for f in corpus_files()} == set(EXPECTED)

    @pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
    def test_file_is_refused_with_its_code(self, path, full_registry):
        """Each corpus file raises GraphError with its code, the node it concerns and its place in the file."""
        code = path.stem.split("__")[0]
        node, where, others = EXPECTED[path.stem]
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=full_registry)
        errors = info.value.errors
        first = next((issue for issue in errors if issue.code == code), None)
        assert first is not None, f"{code} not among {[i.code for i in errors]}"
        assert (first.node, first.where) == (node, where)
        assert sorted({i.code for i in errors} - {code}) == others
        assert info.value.path == str(path) and str(path) in str(info.value)
        assert all(issue.message for issue in errors)

    @pytest.mark.parametrize("path", [p for p in corpus_files() if p.stem.split("__")[0] not in
                                      ("malformed_file", "non_finite_value", "duplicate_node_id")
                                      or "nodes_not_object" in p.stem or "workflow" in p.stem],
                             ids=lambda p: p.stem)
    def test_parsed_document_gives_the_same_codes(self, path, full_registry):
        """Passing the parsed document instead of the path reports the same codes."""
        with pytest.raises(GraphError) as from_file:
            load_graph(path, registry=full_registry)
        with pytest.raises(GraphError) as from_doc:
            load_graph(json.loads(path.read_text()), registry=full_registry)
        assert [i.code for i in from_doc.value.errors] == [i.code for i in from_file.value.errors]


class TestGeneratedInputs:
    def test_file_too_large(self, tmp_path, registry):
        """A file over the size limit is refused before it is parsed."""
        path = tmp_path / "huge.json"
        with path.open("w") as f:
            f.write('{"format": "dnne-graph", "description": "')
            f.write("x" * (MAX_FILE_BYTES + 1))
            f.write('", "nodes": {}}')
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        assert [i.code for i in info.value.errors] == ["file_too_large"]

    def test_file_not_found(self, tmp_path, registry):
        """A missing file is a file_not_found error, not an OSError."""
        with pytest.raises(GraphError) as info:
            load_graph(tmp_path / "nope.json", registry=registry)
        assert [i.code for i in info.value.errors] == ["file_not_found"]

    def test_not_utf8(self, tmp_path, registry):
        """A file that is not UTF-8 text is malformed_file."""
        path = tmp_path / "bin.json"
        path.write_bytes(b"\xff\xfe{\x00")
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        assert [i.code for i in info.value.errors] == ["malformed_file"]

    def test_too_many_nodes(self, registry):
        """A graph of more than 10000 nodes is refused as a whole."""
        doc = {"format": "dnne-graph", "nodes": {f"n{i}": {"type": "Count"} for i in range(10_001)}}
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=registry)
        assert [i.code for i in info.value.errors] == ["too_many_nodes"]

    def test_deeply_nested_document(self, registry):
        """An already-parsed document nested too deeply is refused, not recursed into."""
        deep: object = 1
        for _ in range(10_000):
            deep = [deep]
        with pytest.raises(GraphError) as info:
            load_graph({"format": "dnne-graph", "nodes": {}, "run": {"seed": deep}}, registry=registry)
        assert [i.code for i in info.value.errors] == ["too_deeply_nested"]

    def test_deeply_nested_file(self, tmp_path, registry):
        """A file nested far deeper than the parser's recursion limit is too_deeply_nested."""
        path = tmp_path / "deep.json"
        path.write_text('{"format": "dnne-graph", "nodes": {}, "run": ' + "[" * 100_000 + "]" * 100_000 + "}")
        with pytest.raises(GraphError) as info:
            load_graph(path, registry=registry)
        assert [i.code for i in info.value.errors] == ["too_deeply_nested"]

    def test_link_options_built_in_code(self, registry):
        """A capacity or policy given in code is validated like one in a file."""
        g = (Graph().add("c", "Count").add("s", "Sink").add("t", "Sink")
             .link("c.out", "s.x", capacity=0).link("c.out", "t.x", policy="newest"))
        with pytest.raises(GraphError) as info:
            load_graph(g, registry=registry)
        assert [(i.code, i.node, i.field) for i in info.value.errors] == [("bad_link", "s", "x"), ("bad_link", "t", "x")]

    def test_nan_inside_a_dict_param(self, registry, builtin_registry):
        """A NaN nested in a dict param (here through --set, which parses NaN) is non_finite_value."""
        doc = {"format": "dnne-graph", "nodes": {"env": {"type": "EnvNode"}}}
        with pytest.raises(GraphError) as info:
            load_graph(doc, registry=builtin_registry, overrides=['env.env_kwargs={"length": [1, NaN]}'])
        assert [(i.code, i.node, i.field) for i in info.value.errors] == [("non_finite_value", "env", "env_kwargs")]

    def test_every_code_is_covered(self):
        """Every validation code the loaders and validator emit has a corpus file or a generated test."""
        import re

        root = Path(__file__).resolve().parents[2] / "runtime"
        sources = [root / "validate.py", root / "loading.py", root / "streams.py",
                   *sorted((root / "loaders").glob("*.py"))]
        emitted = set()
        for source in sources:
            emitted |= set(re.findall(r'Issue\(\s*"([a-z_]+)"', source.read_text()))
            emitted |= set(re.findall(r'ParamError\(\s*"([a-z_]+)"', source.read_text()))
        emitted |= set(re.findall(r'ParamError\(\s*"([a-z_]+)"', (root / "ports.py").read_text()))
        emitted -= {"ignored_field", "unused_output", "bad_override"}  # warnings, and --set only (test_loading)
        covered = {stem.split("__")[0] for stem in EXPECTED} | GENERATED | COMPOSITION
        assert emitted - covered == set()
