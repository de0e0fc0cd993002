"""A stuck run can always be stopped and is reported: a node blocking the event loop, Ctrl-C at any moment."""
from __future__ import annotations

import pytest

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fault_nodes import faulty_graph

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
CARTPOLE = ROOT / "graphs" / "presets" / "cartpole_zoo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
ENV = dict(os.environ, PYTHONPATH=f"{HERE}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")


def blocking_graph(tmp_path: Path) -> Path:
    """The cartpole graph with a node that blocks the event loop for an hour at step 100 (after 3 updates)."""
    document = faulty_graph(json.loads(CARTPOLE.read_text()), "block", 100)
    document["run"] = dict(document.get("run", {}), target_return=None)
    path = tmp_path / "block.json"
    path.write_text(json.dumps(document))
    return path


def wait_for(predicate, seconds: float = 120) -> None:
    """Poll ``predicate`` until it holds."""
    deadline = time.time() + seconds
    while not predicate():
        assert time.time() < deadline, "timed out"
        time.sleep(0.2)


class TestBlockedLoop:
    def test_signal_stops_a_blocked_loop(self, tmp_path: Path) -> None:
        """SIGINT to a background run whose loop is blocked: the node is reported, the last consistent state is
        saved, the summary names the node, exit 130 (SIGINT is ignored in background jobs; the CLI takes it)."""
        run_dir = tmp_path / "r"
        script = (f"{' '.join(DNNE)} run {blocking_graph(tmp_path)} --plugin fault_nodes --run-dir {run_dir} -q "
                  f"--stall-warning 2s 2> {tmp_path}/err & echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
        shell = subprocess.Popen(["bash", "-c", script], env=ENV)
        err = tmp_path / "err"
        wait_for(lambda: err.exists() and "node 'fault' (Fault) is in compute" in err.read_text())
        os.kill(int((tmp_path / "pid").read_text()), signal.SIGINT)
        shell.wait(timeout=60)
        assert (tmp_path / "rc").read_text().strip() == "130"
        assert "Traceback" not in err.read_text()
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop_reason"] == "interrupted" and summary["error"]["node"] == "fault"
        assert "LoopBlockedError" in summary["error"]["cause"]
        assert summary["last_checkpoint"].endswith("ckpt-00000003.pt")

    def test_timeout_stops_a_blocked_loop(self, tmp_path: Path) -> None:
        """--timeout ends a run whose loop is blocked (asyncio's loop), exit 1, summary says timeout."""
        run_dir = tmp_path / "r"
        done = subprocess.run([*DNNE, "run", str(blocking_graph(tmp_path)), "--plugin", "fault_nodes", "--run-dir",
                               str(run_dir), "-q", "--timeout", "8s", "--no-uvloop"], capture_output=True, text=True,
                              env=ENV, timeout=120)
        assert done.returncode == 1 and "timeout while the event loop is blocked" in done.stderr
        summary = json.loads((run_dir / "summary.json").read_text())
        assert summary["stop_reason"] == "timeout" and summary["error"]["node"] == "fault"


class TestEarlyExits:
    def test_no_arguments(self) -> None:
        """``dnne`` alone prints usage, exit 2, no traceback."""
        done = subprocess.run(DNNE, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "usage" in done.stderr and "Traceback" not in done.stderr

    @pytest.mark.nodes
    def test_ctrl_c_while_starting(self, tmp_path: Path) -> None:
        """SIGINT as soon as the CLI's code runs (before torch, the graph and the run's own handlers are loaded),
        to a background job (which inherits SIGINT ignored), is exit 130 without a traceback."""
        script = (f"{' '.join(DNNE)} run {CARTPOLE} --run-dir {tmp_path}/r -q 2> {tmp_path}/err & "
                  f"echo $! > {tmp_path}/pid; wait $!; echo $? > {tmp_path}/rc")
        shell = subprocess.Popen(["bash", "-c", script])
        wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text().strip())
        pid = int((tmp_path / "pid").read_text())
        wait_for(lambda: catches_sigint(pid), 60)
        os.kill(pid, signal.SIGINT)
        shell.wait(timeout=60)
        assert (tmp_path / "rc").read_text().strip() == "130"
        assert "Traceback" not in (tmp_path / "err").read_text()
        assert not (tmp_path / "r" / "summary.json").exists()


def catches_sigint(pid: int) -> bool:
    """Whether process ``pid`` has a handler for SIGINT (its ``SigCgt`` mask in /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signal.SIGINT - 1)))
    return False
