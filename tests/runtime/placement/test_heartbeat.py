"""Worker heartbeats: a stopped worker (SIGSTOP) is detected, recorded (metrics row, summary) and the run stops
naming it; a worker that ends or is merely starved of the CPU is not reported lost."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.placement import heartbeat
from dnne.runtime.placement.heartbeat import RUNNING, Monitor, process_state
from dnne.runtime.runner import GraphRun, RunResult

HERE = Path(__file__).parent


async def watch_one(pid_of, beats: bytes, wait_s: float, close: bool = False) -> Monitor:
    """A monitor watching one socket that got ``beats`` and then nothing (or its end) for ``wait_s``."""
    lost: list[tuple[str, float]] = []
    monitor = Monitor(lambda name, silent: lost.append((name, silent)), timeout_s=0.3, pid_of=pid_of)
    ours, theirs = socket.socketpair()
    monitor.watch("w", ours)
    theirs.sendall(beats)
    if close:
        theirs.close()
    await asyncio.sleep(wait_s)
    monitor.close()
    theirs.close()
    monitor.reported = lost  # type: ignore[attr-defined]
    return monitor


class TestMonitor:
    def test_a_silent_worker_elsewhere_is_lost_once(self):
        monitor = asyncio.run(watch_one(lambda name: None, RUNNING, 1.2))
        assert [name for name, _ in monitor.reported] == ["w"]
        assert monitor.reported[0][1] >= 0.3

    def test_a_silent_worker_whose_process_runs_here_is_late_not_lost(self):
        """This test's own process is running: a silence is starvation, counted, never a loss."""
        monitor = asyncio.run(watch_one(lambda name: os.getpid(), RUNNING, 1.2))
        assert monitor.reported == []
        assert monitor.late["w"] >= 2

    def test_the_end_of_the_socket_is_not_a_loss(self):
        monitor = asyncio.run(watch_one(lambda name: None, RUNNING, 1.0, close=True))
        assert monitor.reported == []

    def test_before_it_runs_a_worker_gets_the_startup_allowance(self):
        monitor = asyncio.run(watch_one(lambda name: None, b".", 1.0))
        assert monitor.reported == []

    def test_process_state_reads_stopped_and_running(self):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        try:
            os.kill(child.pid, signal.SIGSTOP)
            for _ in range(100):
                if process_state(child.pid) == "T":
                    break
                asyncio.run(asyncio.sleep(0.01))
            assert process_state(child.pid) == "T"
            assert process_state(os.getpid()) == "R"
        finally:
            child.kill()
            child.wait()
        assert process_state(child.pid) is None


def forever(wreg) -> Graph:
    g = (Graph().add("c", "Forever", delay=0.005).add("p", "Pid").add("s", "Sink")
         .link("c.out", "p.x").link("p.y", "s.x"))
    g.placement = {"c": "w1", "p": "w1"}
    return g


def test_a_stopped_worker_is_detected_recorded_and_the_run_stops_naming_it(wreg):
    """SIGSTOP: the worker is silent, its process stopped; the run fails for it (before, it ran on until the
    run's own limits), the event says how long it was silent, and the stopped process is killed."""
    run = GraphRun(load_graph(forever(wreg), registry=wreg), wreg)
    rows: list[tuple[str, dict]] = []
    run.context.metric_sinks.append(lambda node_id, values: rows.append((node_id, values)))

    async def scenario() -> RunResult:
        task = asyncio.ensure_future(run.execute())
        while "s" not in run.nodes or len(run.nodes["s"].received) < 200:  # well past setup
            await asyncio.sleep(0.02)
        os.kill(run.placement.workers["w1"].process.pid, signal.SIGSTOP)
        return await asyncio.wait_for(task, 60)

    result = asyncio.run(scenario())
    assert result.stop_reason == "failed"
    assert result.error.node_id == "w1" and result.error.node_type == "worker"
    assert "worker 'w1' (nodes c, p) stopped answering: no heartbeat for" in str(result.error)
    [event] = result.placement["events"]
    assert event["event"] == "worker_lost" and event["worker"] == "w1"
    assert event["silent_s"] >= heartbeat.TIMEOUT_S
    assert event["where"]["pid"] == run.placement.workers["w1"].process.pid
    assert ("w1", {"worker_lost": 1.0, "silent_s": event["silent_s"]}) in rows
    assert run.placement.workers["w1"].process.returncode == -signal.SIGKILL
    assert result.summary()["placement"]["workers"]["w1"]["kind"] == "process"


@pytest.mark.slow  # a whole CLI run (10-13 s): CI's slow step
def test_the_cli_run_records_the_loss_in_summary_and_metrics(wreg, tmp_path):
    """``dnne run``: exit code of a failed run, ``summary.json`` names the lost worker and where it ran, and
    ``metrics.jsonl`` holds the event row."""
    path = tmp_path / "forever.json"
    path.write_text(json.dumps(forever(wreg).to_native()))
    run_dir = tmp_path / "run"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE), str(HERE.parent)] + sys.path))
    process = subprocess.Popen([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--run-dir",
                                str(run_dir), "--plugin", "placement_nodes", "--timeout", "5m"],
                               env=env, stderr=subprocess.PIPE, text=True)
    try:
        worker_pid = None
        for _ in range(600):  # the worker is the run's child process
            children = subprocess.run(["pgrep", "-P", str(process.pid), "-f", "placement.worker --name w1"],
                                      capture_output=True, text=True).stdout.split()
            if children:
                worker_pid = int(children[0])
                break
            asyncio.run(asyncio.sleep(0.1))
        assert worker_pid is not None
        asyncio.run(asyncio.sleep(8.0))  # past setup, as a rule (stopped during setup, it is lost after STARTUP_S)
        os.kill(worker_pid, signal.SIGSTOP)
        _, stderr = process.communicate(timeout=heartbeat.STARTUP_S + 180)
    finally:
        process.kill()
    assert process.returncode == 1, stderr
    assert "worker 'w1'" in stderr and "stopped answering" in stderr
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["error"]["node"] == "w1"
    [event] = summary["placement"]["events"]
    assert event["worker"] == "w1" and event["where"]["pid"] == worker_pid
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert any(row.get("worker_lost") == 1.0 for row in rows), rows

