"""A worker's ``nice`` option: the part runs that many niceness levels below the main process, every thread of it;
validation refuses anything but an integer from 0 to 19."""
from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.runner import GraphRun

PROBE = """
import os, threading, time
from dnne.runtime.placement.priority import lower_priority
started = threading.Event()
def idle():
    started.set()
    time.sleep(5)
thread = threading.Thread(target=idle, daemon=True)
thread.start()
started.wait()
before = os.getpriority(os.PRIO_PROCESS, 0)
now = lower_priority(int(os.environ["INCREMENT"]))
levels = [os.getpriority(os.PRIO_PROCESS, int(tid)) for tid in os.listdir("/proc/self/task")]
print(before, now, len(levels), *levels)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="Linux keeps a niceness per thread")
@pytest.mark.parametrize("increment, expected", [(5, 5), (40, 19), (0, 0)])
def test_every_thread_runs_at_the_lowered_priority(increment, expected):
    """A thread started before the call is lowered too (Linux keeps a niceness per thread); capped at 19."""
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, check=True,
                         env=os.environ | {"INCREMENT": str(increment)}).stdout.split()
    before, now, count, *levels = map(int, out)
    assert now == min(before + expected, 19)
    assert count >= 2 and levels == [now] * count


def ticker(options: dict) -> Graph:
    g = (Graph().add("t", "Ticker", steps_per_tick=10).add("e", "Echo")
         .link("t.tick", "e.tick").link("e.done", "t.trigger"))
    g.run = {"max_work": 100}
    g.placement = {"t": "w1", "e": "w2"}
    g.workers = {"w1": options, "w2": {}}
    return g


def test_a_part_runs_at_its_nice_and_the_summary_says_so(wreg):
    """w1 asks for 3 levels below the main process, w2 for nothing: each reports the niceness it ran at."""
    run = GraphRun(load_graph(ticker({"nice": 3}), registry=wreg), wreg)
    result = asyncio.run(asyncio.wait_for(run.execute(), 60))
    assert result.stop_reason == "max_work", result.error
    workers = result.summary()["placement"]["workers"]
    main = os.getpriority(os.PRIO_PROCESS, 0)
    assert workers["w1"]["nice"] == min(main + 3, 19) and workers["w2"]["nice"] == main


@pytest.mark.parametrize("value", [-1, 20, 2.5, True, "10", None])
def test_nice_is_an_integer_from_0_to_19(wreg, value):
    with pytest.raises(GraphError) as caught:
        load_graph(ticker({"nice": value}), registry=wreg)
    [issue] = caught.value.issues
    assert issue.code == "bad_placement" and issue.where == "/workers/w1/nice"
    assert "from 0 to 19" in issue.message


def test_dnne_run_refuses_a_bad_nice_naming_the_worker_and_place(tmp_path):
    """From the command line: exit 2, the worker and ``/workers/w/nice`` in the message, no traceback."""
    document = json.loads((Path(__file__).resolve().parents[3] / "graphs" / "cartpole_ppo.json").read_text())
    document["placement"] = {node: "w" for node in ("env", "or", "action", "step")}
    document["workers"] = {"w": {"nice": 25}}
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(document))
    done = subprocess.run([sys.executable, "-m", "dnne.runtime.cli", "run", str(path), "--run-dir",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "worker 'w': nice must be an integer from 0 to 19" in done.stderr and "/workers/w/nice" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
