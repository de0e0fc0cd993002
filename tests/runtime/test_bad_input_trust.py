"""Bad input is refused before anything runs, clearly and without a traceback: numbers beyond range, deep values,
files that never end, long bypass chains, misspelt names, broken plugins, malformed metrics."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnne.runtime import Input
from dnne.runtime.errors import GraphError
from dnne.runtime.loading import load_graph, parse_override
from dnne.runtime.registry import default_registry

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
REGISTRY = default_registry()
BIG = "9" * 401


def dnne(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI in a subprocess."""
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=120, env=env)


def codes(overrides: list[str], source: object = CARTPOLE) -> list[str]:
    """The error codes of loading ``source`` with ``overrides``."""
    with pytest.raises(GraphError) as caught:
        load_graph(source, overrides, REGISTRY)
    return [issue.code for issue in caught.value.errors]


class TestNumbersAndDepth:
    @pytest.mark.nodes
    @pytest.mark.parametrize("override", [f"trainer.gamma={BIG}", f"run.target_return={BIG}",
                                          f"run.max_steps={BIG}", f"run.timeout={BIG}", f"trainer.gamma=-{'9' * 5000}"])
    def test_huge_integers_in_set(self, override: str) -> None:
        """Integers beyond 64 bits in --set are refused with a message, never an OverflowError."""
        assert codes([override]) == ["bad_override"]

    @pytest.mark.nodes
    def test_huge_integer_in_file(self, tmp_path: Path) -> None:
        """A 401-digit integer in a file is refused at its place."""
        path = tmp_path / "g.json"
        path.write_text(CARTPOLE.read_text().replace('"gamma": 0.98', f'"gamma": {BIG}'))
        with pytest.raises(GraphError) as caught:
            load_graph(path, registry=REGISTRY)
        assert [(i.code, i.where) for i in caught.value.errors] == [("number_too_large", "/nodes/trainer/params/gamma")]

    @pytest.mark.nodes
    def test_huge_numbers_from_code(self) -> None:
        """A graph built in code with huge Python integers gets issues, not exceptions."""
        document = json.loads(CARTPOLE.read_text())
        document["nodes"]["trainer"]["params"]["gamma"] = 10**400
        document["run"].update(target_return=10**400, max_steps=10**30, timeout=10**400)
        found = set(codes([], document))
        assert found == {"number_too_large", "bad_run_option"}

    @pytest.mark.nodes
    def test_huge_max_steps_flag(self, tmp_path: Path) -> None:
        """--max-steps with 401 digits is a usage error, exit 2."""
        done = dnne("run", str(CARTPOLE), "--max-steps", BIG, "--run-dir", str(tmp_path / "r"))
        assert done.returncode == 2 and "too large" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.nodes
    @pytest.mark.parametrize("depth", [62, 50_000])
    def test_deep_set_values(self, depth: int) -> None:
        """A --set value deeper than the file's depth limit allows at its place is refused (no RecursionError)."""
        assert codes(["agent.hidden_sizes=" + "[" * depth + "]" * depth]) == ["bad_override"]

    @pytest.mark.nodes
    def test_set_value_within_depth(self) -> None:
        """A nested value within the limit is taken (then checked as a param)."""
        assert "bad_override" not in codes(["agent.hidden_sizes=" + "[" * 10 + "]" * 10])


class TestFiles:
    def test_dev_zero(self) -> None:
        """/dev/zero is refused at once as not a regular file (no unbounded read)."""
        done = dnne("validate", "/dev/zero")
        assert done.returncode == 2 and "not a regular file" in done.stderr

    def test_fifo(self, tmp_path: Path) -> None:
        """A FIFO nobody writes to is refused, not waited on."""
        fifo = tmp_path / "g.json"
        os.mkfifo(fifo)
        done = dnne("validate", str(fifo))
        assert done.returncode == 2 and "not a regular file" in done.stderr

    def test_bypassed_chain_of_3000(self) -> None:
        """3000 bypassed nodes in a row pass their input through (no RecursionError)."""
        from test_loading import node, workflow
        from toy_nodes import toy_registry

        count = 3000
        nodes = [node(1, "Count", outputs=["out"])]
        nodes += [node(10 + i, "Double", inputs=["x"], outputs=["y"], mode=4) for i in range(count)]
        nodes += [node(5, "Sink", inputs=["x"])]
        chain = [1] + [10 + i for i in range(count)] + [5]
        links = [(i + 1, a, 0, b, 0) for i, (a, b) in enumerate(zip(chain, chain[1:]))]
        graph = load_graph(workflow(nodes, links), registry=toy_registry())
        assert set(graph.nodes) == {"1", "5"} and [str(l) for l in graph.links] == ["1.out -> 5.x"]


class TestNames:
    @pytest.mark.nodes
    def test_did_you_mean(self, tmp_path: Path) -> None:
        """Misspelt node types, ports, params, node ids and run keys get the closest known name."""
        document = json.loads(CARTPOLE.read_text())
        document["nodes"]["agent"]["type"] = "PPOAgentNod"
        document["links"][0] = ["env.observation", "or.input_a"]
        document["run"]["max_step"] = 5
        with pytest.raises(GraphError) as caught:
            load_graph(document, ["trainer.gama=0.9", "trainr.gamma=0.9"], REGISTRY)
        text = "\n".join(str(issue) for issue in caught.value.errors)
        for hint in ("did you mean 'PPOAgentNode'", "did you mean 'observations'", "did you mean 'max_steps'",
                     "did you mean 'gamma'", "did you mean 'trainer'"):
            assert hint in text


class TestPluginsAndTools:
    @pytest.mark.nodes
    def test_plugin_calling_sys_exit(self, tmp_path: Path) -> None:
        """A plugin that calls sys.exit while it loads is a clear error, exit 2."""
        (tmp_path / "quitter.py").write_text("import sys\nsys.exit(0)\n")
        env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
        done = dnne("validate", str(CARTPOLE), "--plugin", "quitter", env=env)
        assert done.returncode == 2 and "called sys.exit(0)" in done.stderr

    @pytest.mark.nodes
    def test_plugin_given_as_a_file(self) -> None:
        """--plugin ./file.py says how to name it as a module."""
        done = dnne("validate", str(CARTPOLE), "--plugin", "./my_nodes.py")
        assert done.returncode == 2 and "not a module name" in done.stderr and "--plugin my_nodes" in done.stderr
        assert "TypeError" not in done.stderr

    @pytest.mark.nodes
    def test_plot_names_the_bad_line(self, tmp_path: Path) -> None:
        """dnne plot on a metrics file with a malformed line names the file and the line."""
        (tmp_path / "metrics.jsonl").write_text('{"env_steps": 1, "mean_return": 2}\n{"env_steps": \n')
        done = dnne("plot", str(tmp_path), "-o", str(tmp_path / "c.png"))
        assert done.returncode == 2 and "metrics.jsonl, line 2" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.nodes
    @pytest.mark.parametrize(("argv", "warned"), [
        (["run", str(ROOT / "graphs" / "dnne" / "cartpole_ppo.json")], True),
        (["run", str(ROOT / "graphs" / "dnne" / "cartpole_ppo.json"), "--timeout", "5m"], False),
        (["run", str(CARTPOLE)], False),
    ])
    def test_no_stop_condition_warns(self, argv: list[str], warned: bool, caplog: pytest.LogCaptureFixture) -> None:
        """A run with no stop condition says so at start (the DNNE workflow files have none)."""
        from dnne.runtime.cli.main import build_parser
        from dnne.runtime.cli.shared import load_from_args

        args = build_parser().parse_args(argv)
        with caplog.at_level("WARNING", logger="dnne"):
            load_from_args(args, REGISTRY, {"timeout": args.timeout})
        assert any("no stop condition" in record.getMessage() for record in caplog.records) == warned



class TestErrorsBeforeRunning:
    @pytest.mark.nodes
    @pytest.mark.parametrize(("kind", "value"), [("epoch", "abc"), ("epoch", "0"), ("epoch", "1.5"), ("time", "5x"),
                                                 ("time", "-1m"), ("time", BIG)])
    def test_checkpoint_trigger_value(self, kind: str, value: str) -> None:
        """A trigger value the trainer could not read is refused at load, when checkpoints are on."""
        overrides = ["trainer.checkpoint_enabled=true", f"trainer.checkpoint_trigger_type={kind}",
                     f'trainer.checkpoint_trigger_value="{value}"']
        assert codes(overrides) == ["bad_param_value"]
        load_graph(CARTPOLE, overrides[1:], REGISTRY)  # never read with checkpoints off: not an error

    def test_validate_names_node_and_param(self) -> None:
        """dnne validate: exit 2, the node and the param named, no traceback."""
        done = dnne("validate", str(CARTPOLE), "--set", "trainer.checkpoint_enabled=true", "--set",
                    "trainer.checkpoint_trigger_value=abc")
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert "[bad_param_value] node 'trainer' 'checkpoint_trigger_value'" in done.stderr

    @pytest.mark.nodes
    def test_linear_schedule_needs_a_run_length(self) -> None:
        """A linear learning-rate schedule with no max_steps or max_iterations failed at setup (exit 1): refused at
        load, pointing at the schedule; accepted once the run has a length, and in play (no trainer runs)."""
        with pytest.raises(GraphError) as caught:
            load_graph(CARTPOLE, ["run.max_steps=null"], REGISTRY)
        assert [(i.code, i.node, i.where) for i in caught.value.errors] == [
            ("bad_param_value", "trainer", "/nodes/trainer/params/lr_schedule")]
        load_graph(CARTPOLE, ["run.max_steps=null", "run.max_iterations=10"], REGISTRY)
        load_graph(CARTPOLE, ["run.max_steps=null", "trainer.lr_schedule=constant"], REGISTRY)
        load_graph(CARTPOLE, ["run.max_steps=null"], REGISTRY, run={"mode": "play"})

    @pytest.mark.nodes
    def test_linear_schedule_in_a_split_graph(self) -> None:
        """A worker's part keeps no stop conditions in its run section: its trainer's schedule is checked against
        the whole graph's run (the settings the worker gets), so a placed graph with a linear schedule loads in its
        worker, and a whole run without a length is still refused there."""
        from dnne.runtime.placement.proxies import add_proxies
        from dnne.runtime.placement.split import split_graph

        graph = load_graph(ROOT / "graphs" / "halfcheetah_async.json", registry=REGISTRY)
        learner = split_graph(graph, REGISTRY).graphs["learner"]
        assert "trainer" in learner.nodes and "max_steps" not in learner.run
        registry = default_registry()
        add_proxies(registry)
        load_graph(learner.to_native(), registry=registry, settings=graph.run)
        with pytest.raises(GraphError) as caught:
            load_graph(learner.to_native(), registry=registry, settings=dict(graph.run, max_steps=None))
        assert [issue.field for issue in caught.value.errors] == ["lr_schedule"]

    @pytest.mark.nodes
    def test_recurrent_agent_needs_dones(self) -> None:
        """A recurrent agent whose dones input is not linked failed at setup: refused at load, naming the agent
        and pointing at its recurrent param."""
        document = json.loads((ROOT / "graphs" / "cartpole_novel_lstm.json").read_text())
        document["links"] = [link for link in document["links"] if "agent.dones" not in json.dumps(link)]
        with pytest.raises(GraphError) as caught:
            load_graph(document, registry=REGISTRY)
        assert [(i.code, i.node, i.where) for i in caught.value.errors] == [
            ("missing_dones_link", "agent", "/nodes/agent/params/recurrent")]

    @pytest.mark.nodes
    @pytest.mark.parametrize(("override", "code"), [
        ("agent.action_space=continuous", "action_space_mismatch"),
        ("agent.output_size=3", "action_size_mismatch"),
        ("agent.input_size=5", "observation_size_mismatch"),
    ])
    @pytest.mark.nodes
    def test_agent_against_its_env(self, override: str, code: str) -> None:
        """An agent whose action kind or sizes differ from its env's spaces (known from the env's params) failed
        at setup: refused at load, pointing at the param."""
        with pytest.raises(GraphError) as caught:
            load_graph(CARTPOLE, [override], REGISTRY)
        assert [(i.code, i.node, i.where) for i in caught.value.errors] == [
            (code, "agent", f"--set {override.split('=')[0]}")]
        load_graph(CARTPOLE, ["agent.output_size=2", "agent.input_size=4"], REGISTRY)

    @pytest.mark.nodes
    def test_agent_against_a_gymnasium_env(self) -> None:
        """Gymnasium ids are probed too; a module:Env id the command line did not allow is refused, never probed
        (probing would import it)."""
        pytest.importorskip("gymnasium")
        document = ROOT / "graphs" / "gym_cartpole_ppo.json"
        assert codes(["agent.action_space=continuous"], document) == ["action_space_mismatch"]
        assert codes(["agent.action_space=continuous", "env.task=os:CartPole-v1"], document) == [
            "module_not_allowed"]

    @pytest.mark.nodes
    @pytest.mark.parametrize("override", ["run.device=tpu", "run.timeout=abc", "run.max_steps=0", "run.colour=1",
                                          "run.stop=3", "run.seed=-1"])
    @pytest.mark.nodes
    def test_run_errors_point_at_their_set_argument(self, override: str) -> None:
        """A bad run value from --set points at the --set argument, not at a place in the file that does not
        hold it; a bad value in the file points at the file."""
        key = override.split("=")[0]
        with pytest.raises(GraphError) as caught:
            load_graph(CARTPOLE, [override], REGISTRY)
        assert [issue.where for issue in caught.value.errors] == [f"--set {key}"]
        document = json.loads(CARTPOLE.read_text())
        document["run"]["device"] = "tpu"
        with pytest.raises(GraphError) as caught:
            load_graph(document, registry=REGISTRY)
        assert [issue.where for issue in caught.value.errors] == ["/run/device"]

    @pytest.mark.nodes
    def test_validate_points_at_the_set_argument(self) -> None:
        """dnne validate --set run.device=tpu: exit 2, the --set argument named, no traceback."""
        done = dnne("validate", str(CARTPOLE), "--set", "run.device=tpu")
        assert done.returncode == 2 and "(at --set run.device)" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.nodes
    def test_cnn_layers_checked_together(self) -> None:
        """cnn lists of different lengths, or an image the convolutions shrink to nothing, fail at load."""
        assert codes(["agent.encoder=cnn", "agent.cnn_channels=[8,8]", "agent.cnn_kernels=[3]"]) == [
            "bad_param_value"]
        assert codes(["agent.encoder=cnn", "agent.image_shape=[1,4,1]"]) == ["bad_param_value"]

    @pytest.mark.nodes
    @pytest.mark.parametrize("node", ["env", "agent", "trainer"])
    @pytest.mark.parametrize("device", ["garbage", "tpu", "cuda:abc", "cuda:-1"])
    def test_devices(self, node: str, device: str) -> None:
        """A device string no backend takes is refused at load, on every node with a device."""
        assert codes([f"{node}.device={device}"]) == ["bad_device"]

    @pytest.mark.nodes
    def test_dones_never_read_as_rewards(self) -> None:
        """step.dones into trainer.rewards is an implicit conversion; a DonesToTensor node between makes it
        explicit (and it loads)."""
        document = json.loads(CARTPOLE.read_text())
        document["links"] = [link for link in document["links"] if link != ["step.rewards", "trainer.rewards"]]
        wrong = dict(document, links=document["links"] + [["step.dones", "trainer.rewards"]])
        with pytest.raises(GraphError) as caught:
            load_graph(wrong, registry=REGISTRY)
        assert [(i.code, i.node, i.field) for i in caught.value.errors] == [
            ("implicit_conversion", "trainer", "rewards")]
        explicit = dict(document, nodes=dict(document["nodes"], ended={"type": "DonesToTensor"}),
                        links=document["links"] + [["step.dones", "ended.dones"], ["ended.ended", "trainer.rewards"]])
        load_graph(explicit, registry=REGISTRY)

    @pytest.mark.nodes
    def test_policy_output_only_where_read(self) -> None:
        """A PolicyOutput reads as a tensor only where the input says so (the action node), not as rewards."""
        document = json.loads(CARTPOLE.read_text())
        document["links"] = [link for link in document["links"] if link != ["step.rewards", "trainer.rewards"]]
        document["links"].append(["agent.policy_output", "trainer.rewards"])
        with pytest.raises(GraphError) as caught:
            load_graph(document, registry=REGISTRY)
        assert [i.code for i in caught.value.errors] == ["implicit_conversion"]

    @pytest.mark.nodes
    def test_missing_offset_names_the_link(self) -> None:
        """A node between the step's rewards and the trainer that shifts stamps (its input offset missing) is refused
        at load naming the link, instead of an AlignmentError mid-run blamed on the trainer; with its offsets right
        the same graph loads."""
        from fault_nodes import Fault, faulty_graph

        class Unshifted(Fault):
            """The fault node with its input offset missing: its output is one step ahead."""

            x = Input("Tensor", "rewards, stamped k + 1, read as if stamped k")

        registry = default_registry()
        registry.add_node(Fault)
        registry.add_node(Unshifted)
        document = faulty_graph(json.loads(CARTPOLE.read_text()), "none", 1)
        load_graph(document, registry=registry)
        document["nodes"]["fault"] = dict(document["nodes"]["fault"], type="Unshifted")
        with pytest.raises(GraphError) as caught:
            load_graph(document, registry=registry)
        (issue,) = caught.value.errors
        assert (issue.code, issue.node, issue.field) == ("offset_mismatch", "trainer", "rewards")
        assert "fault.y -> trainer.rewards" in issue.message and "1 step ahead" in issue.message

    def test_placement_did_you_mean(self) -> None:
        """Misspelt node ids and workers under placement get the closest known name."""
        document = json.loads(CARTPOLE.read_text())
        document["workers"] = {"envs": {}}
        document["placement"] = {"stpe": "envs", "env": "env"}
        with pytest.raises(GraphError) as caught:
            load_graph(document, registry=REGISTRY)
        text = "\n".join(str(issue) for issue in caught.value.errors)
        assert "did you mean 'step'" in text and "did you mean 'envs'" in text


SET_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=60) | st.builds(
    lambda depth, inner: "[" * depth + inner + "]" * depth, st.integers(0, 3000),
    st.sampled_from(["", "1", BIG, "NaN", "1e999", '"x"', "{}"]))


@pytest.mark.nodes
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=st.sampled_from(["run", "trainer", "agent", "env", "nosuch", ""]),
       name=st.sampled_from(["gamma", "hidden_sizes", "num_envs", "max_steps", "timeout", "device", "task", "x"]),
       value=SET_TEXT)
def test_fuzz_set_values(target: str, name: str, value: str) -> None:
    """Any --set value loads or is refused with GraphError: never another exception."""
    try:
        load_graph(CARTPOLE, [f"{target}.{name}={value}"], REGISTRY)
    except GraphError as error:
        assert error.errors and all(issue.code for issue in error.errors)


@settings(max_examples=100, deadline=None)
@given(text=st.text(max_size=80))
def test_fuzz_set_syntax(text: str) -> None:
    """parse_override either parses or raises ValueError with a message."""
    try:
        parse_override(text)
    except ValueError as error:
        assert str(error)
