"""Graph parts as Ray actors on a simulated three-node cluster (``ray.cluster_utils.Cluster``, one per module):
the same results as in one process, each part on the node its resources name, a part Ray cannot place and a node
lost mid-run stop the run naming the part, and the Cartpole graph on Ray solves."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from dnne.runtime import checkpoint  # noqa: E402
from dnne.runtime.graph import Graph  # noqa: E402
from dnne.runtime.loading import load_graph  # noqa: E402
from dnne.runtime.placement import heartbeat, ray_parts  # noqa: E402
from dnne.runtime.runner import GraphRun, RunResult  # noqa: E402

HERE = Path(__file__).parent
ROOT = HERE.parents[2]
# The learning runs here assert that the graph solves, not how fast: the shipped graph's 5-minute timeout is a
# wall-clock limit, and a Ray cluster of three nodes on a loaded 2-core machine (a replaced group starting over)
# can need more. This bound only catches a hang.
NO_WALL_LIMIT = "15m"


@pytest.fixture(scope="module")
def cluster():
    """Three simulated nodes, each offering one CPU and a custom resource naming its env group."""
    nodes = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "resources": {"group1": 1}})
    for group in ("group2", "group3"):
        nodes.add_node(num_cpus=1, resources={group: 1})
    ray.init(address=nodes.address, include_dashboard=False, configure_logging=False)
    nodes.wait_for_nodes()
    yield nodes
    ray.shutdown()
    nodes.shutdown()


def on_ray(group: str) -> dict:
    return {"ray": {"num_cpus": 1, "resources": {group: 1}}}


def execute(graph: Graph, registry, timeout: float = 120) -> tuple[GraphRun, RunResult]:
    run = GraphRun(load_graph(graph, registry=registry), registry)
    return run, asyncio.run(asyncio.wait_for(run.execute(), timeout))


def test_parts_on_two_nodes_carry_what_one_process_carries(cluster, wreg):
    """A pipeline through two Ray actors on two nodes: values and stamps as in one process; each part ran on
    the node its resource names, and at the niceness its entry asks for, as the summary says."""
    g = (Graph().add("a", "Count", n=30).add("d", "Double").add("e", "Double").add("s", "Sink")
         .link("a.out", "d.x").link("d.y", "e.x").link("e.y", "s.x"))
    alone_run, alone = execute(g, wreg)
    g.placement = {"d": "w2", "e": "w3"}
    g.workers = {"w2": on_ray("group2"), "w3": on_ray("group3") | {"nice": 4}}
    run, result = execute(g, wreg)
    assert result.stop_reason == "completed", result.error
    assert run.nodes["s"].received == alone_run.nodes["s"].received
    assert result.channels["d.y -> e.x"]["messages"] == 30
    workers = result.summary()["placement"]["workers"]
    nodes = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}
    for name, group in (("w2", "group2"), ("w3", "group3")):
        assert workers[name]["kind"] == "ray"
        assert group in nodes[workers[name]["node_id"]]
        assert workers[name]["pid"] != os.getpid()
    assert workers["w2"]["node_id"] != workers["w3"]["node_id"]
    assert workers["w3"]["nice"] == min(workers["w2"]["nice"] + 4, 19)


def test_a_part_ray_cannot_place_stops_the_run_naming_it(cluster, wreg, monkeypatch):
    monkeypatch.setattr(ray_parts, "CONNECT_TIMEOUT_S", 3.0)
    g = Graph().add("a", "Count", n=3).add("d", "Double").add("s", "Sink").link("a.out", "d.x").link("d.y", "s.x")
    g.placement = {"d": "w9"}
    g.workers = {"w9": on_ray("group9")}  # no node offers it
    run, result = execute(g, wreg)
    assert result.stop_reason == "failed"
    assert result.error.node_id == "w9"
    assert "worker 'w9' could not start on Ray: Ray actor not placed or not connected within 3s" in str(result.error)


def test_a_lost_node_stops_the_run_naming_its_part(cluster, wreg):
    """The node of a part goes away mid-run: the run stops, failed, naming the part; the event is recorded with
    the node the part ran on."""
    doomed = cluster.add_node(num_cpus=1, resources={"doomed": 1})
    cluster.wait_for_nodes()
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w1", "p": "w1"}
    g.workers = {"w1": on_ray("doomed")}
    run = GraphRun(load_graph(g, registry=wreg), wreg)

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 100:
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.remove_node, doomed)
        return await asyncio.wait_for(task, 60)

    result = asyncio.run(scenario())
    assert result.stop_reason == "failed"
    assert result.error.node_id == "w1"
    assert "worker 'w1' (nodes c, p)" in str(result.error)
    [event] = result.placement["events"]
    assert event["worker"] == "w1" and event["event"] in ("worker_died", "worker_lost")
    assert event["where"]["node_id"] == doomed.node_id


def test_a_stopped_actor_is_lost_by_its_heartbeat(cluster, wreg):
    """SIGSTOP of an actor's process (a frozen node, as far as the main process can tell): the heartbeat finds
    it, the event names the part and its Ray node, and the run stops naming it."""
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w3", "p": "w3"}
    g.workers = {"w3": on_ray("group3")}
    run = GraphRun(load_graph(g, registry=wreg), wreg)

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 200:
            await asyncio.sleep(0.05)
        os.kill(run.placement.workers["w3"].where["pid"], signal.SIGSTOP)
        return await asyncio.wait_for(task, 60)

    result = asyncio.run(scenario())
    assert result.stop_reason == "failed"
    assert result.error.node_id == "w3"
    assert "worker 'w3' (nodes c, p) stopped answering: no heartbeat for" in str(result.error)
    [event] = result.placement["events"]
    assert event["event"] == "worker_lost" and event["silent_s"] >= heartbeat.TIMEOUT_S
    nodes = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}
    assert "group3" in nodes[event["where"]["node_id"]]


def spare_part(**options) -> GraphRun:
    """A part asking for the custom resource 'spare' (which tests offer on nodes they add), replaceable."""
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w1", "p": "w1"}
    g.workers = {"w1": {"ray": {"num_cpus": 1, "resources": {"spare": 1}}} | options}
    return g


def test_a_replaceable_part_whose_node_is_removed_is_replaced_on_another_node(cluster, wreg):
    """The node of a part marked ``on_loss: replace`` goes away mid-run while another node offers what it needs:
    the loss is recorded with the lost node's id, a new actor runs the part on the other node, and the run goes
    on to its own stop."""
    doomed = cluster.add_node(num_cpus=1, resources={"spare": 1})
    cluster.wait_for_nodes()
    run = GraphRun(load_graph(spare_part(on_loss="replace"), registry=wreg), wreg)
    standby = None

    async def scenario() -> RunResult:
        nonlocal standby
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 100:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.05)
        standby = cluster.add_node(num_cpus=1, resources={"spare": 1})  # Ray's signal use: the main thread
        await asyncio.to_thread(cluster.remove_node, doomed)
        while run.replacements == 0 or "s" not in run.nodes or len(run.nodes["s"].received) < 100:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.05)
        run.request_stop("stop")
        return await asyncio.wait_for(task, 60)

    try:
        result = asyncio.run(scenario())
    finally:
        if standby is not None:
            cluster.remove_node(standby)
    assert result.stop_reason == "stop" and result.error is None
    lost, replaced = result.placement["events"]
    assert lost["worker"] == "w1" and lost["event"] in ("worker_died", "worker_lost")
    assert lost["where"]["node_id"] == doomed.node_id
    assert replaced["event"] == "worker_replaced" and replaced["where"]["node_id"] == standby.node_id
    assert replaced["lost"]["where"]["node_id"] == doomed.node_id
    assert result.placement["workers"]["w1"]["node_id"] == standby.node_id


def test_with_no_node_for_the_replacement_the_run_stops_naming_the_part(cluster, wreg, monkeypatch):
    """The only node offering what a replaceable part needs goes away: the replacement cannot be placed within
    the (here shortened) placement limit, and the run stops, failed, naming the part."""
    doomed = cluster.add_node(num_cpus=1, resources={"spare": 1})
    cluster.wait_for_nodes()
    run = GraphRun(load_graph(spare_part(on_loss="replace"), registry=wreg), wreg)

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 100:
            assert not task.done(), task.result().error
            await asyncio.sleep(0.05)
        monkeypatch.setattr(ray_parts, "CONNECT_TIMEOUT_S", 3.0)  # for the replacement only
        await asyncio.to_thread(cluster.remove_node, doomed)
        return await asyncio.wait_for(task, 90)

    result = asyncio.run(scenario())
    assert result.stop_reason == "failed" and result.error.node_id == "w1"
    text = str(result.error)
    assert "worker 'w1' could not start on Ray: Ray actor not placed or not connected within 3s" in text
    assert "(no replacement for the lost part)" in text
    assert [event["event"] for event in result.placement["events"]] in (["worker_died"], ["worker_lost"])


@pytest.mark.slow  # a whole CLI run (10-13 s): CI's slow step
def test_the_cli_joins_the_cluster_named_by_ray_address(cluster, wreg, tmp_path):
    """``dnne run --ray-address``: the part runs on the cluster's node, and at the run's stop condition it stops
    and reports (its nodes in the summary, the run not failed)."""
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w2", "p": "w2"}
    g.workers = {"w2": on_ray("group2")}
    path = tmp_path / "g.json"
    path.write_text(json.dumps(g.to_native()))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)] + sys.path))
    done = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--run-dir",
                           str(tmp_path / "run"), "--plugin", "placement_nodes", "--ray-address", cluster.address,
                           "--timeout", "8s"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["stop_reason"] == "timeout"
    assert summary["nodes"]["p"]["firings"] > 0  # the worker's own report
    assert summary["channels"]["c.out -> p.x"]["messages"] > 0
    worker = summary["placement"]["workers"]["w2"]
    assert worker["kind"] == "ray"
    assert "group2" in {n["NodeID"]: n["Resources"] for n in ray.nodes()}[worker["node_id"]]


@pytest.mark.slow
def test_the_cartpole_graph_on_ray_solves(cluster, tmp_path):
    """graphs/multi_env_ppo_ray.json: three env groups on the three nodes, the learner in the main process."""
    from dnne.runtime.cli import main

    code = main(["run", str(ROOT / "graphs" / "multi_env_ppo_ray.json"), "--seed", "1", "--run-dir",
                 str(tmp_path), "--set", f"run.timeout={NO_WALL_LIMIT}", "-q"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert code == 0 and summary["solved"] and summary["stop_reason"] == "target_return", summary["error"]
    placed = {name: w["node_id"] for name, w in summary["placement"]["workers"].items()}
    assert len(set(placed.values())) == 3
    saved = checkpoint.load(tmp_path)
    assert {"env1", "env2", "env3", "agent", "trainer"} <= set(saved["nodes"])  # the remote parts' states too


@pytest.mark.slow
def test_the_cartpole_graph_on_ray_still_solves_after_a_group_s_node_is_removed(cluster, tmp_path):
    """graphs/multi_env_ppo_ray.json as shipped (every group ``on_loss: replace``), run by ``dnne run
    --ray-address``: mid-run a new node offering group2 joins and group2's node is removed; the group is replaced
    on the new node, the events are recorded, and the run still solves Cartpole."""
    alive = {node["NodeID"]: node["Resources"] for node in ray.nodes() if node["Alive"]}
    [old] = [node for node in cluster.list_all_nodes() if "group2" in alive.get(node.node_id, {})]
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)] + sys.path))
    process = subprocess.Popen([sys.executable, "-m", "dnne.runtime.cli", "run",
                                str(ROOT / "graphs" / "multi_env_ppo_ray.json"), "--seed", "1", "--run-dir",
                                str(run_dir), "--ray-address", cluster.address, "--set",
                                f"run.timeout={NO_WALL_LIMIT}", "-q"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        metrics = run_dir / "metrics.jsonl"
        while not metrics.exists() or sum('"iteration"' in line for line in metrics.read_text().splitlines()) < 20:
            assert process.poll() is None, process.stderr.read()
            time.sleep(0.2)
        new = cluster.add_node(num_cpus=1, resources={"group2": 1})
        cluster.remove_node(old)
        _, stderr = process.communicate(timeout=1200)
    finally:
        process.kill()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert process.returncode == 0 and summary["solved"] and summary["stop_reason"] == "target_return", stderr
    lost, replaced = summary["placement"]["events"]
    assert lost["worker"] == "group2" and lost["where"]["node_id"] == old.node_id
    assert replaced["event"] == "worker_replaced" and replaced["where"]["node_id"] == new.node_id
    assert summary["placement"]["workers"]["group2"]["node_id"] == new.node_id
    assert any(json.loads(line).get("worker_replaced") for line in metrics.read_text().splitlines())
