"""Start-up, spawn to the first env step of ``dnne run graphs/cartpole_ppo.json``, part by part.

Run: ``python benchmarks/startup.py`` (about a minute; ``--repeats N``, default 7).

Each repeat spawns, pinned to core 0 (``taskset -c 0`` when available) with ``OMP_NUM_THREADS=1``, in turn:
``python -c pass`` and ``python -c "import torch"`` (spawn to exit), and the ``dnne`` CLI's ``main`` on
``graphs/cartpole_ppo.json`` for two training iterations, in a small driver that records the wall-clock time
(``time.time()``, the clock the parent read just before spawning) at each milestone: the driver's first line
(interpreter start), ``import torch`` done, ``dnne.runtime.cli`` and the built-in nodes imported, the call to
``load_graph`` and its return (graph loading: file, validation, node construction), the first ``step`` of the env
(setup: the runner, node ``setup``, the first observation and forward pass, the first action), the trainer's
optimizer construction, and the learner's first PPO update (``PPOUpdate.run``: its optimizer's first step imported
``torch._dynamo`` before ``EagerAdam``; the minibatch steps now run in closed form, ``nodes/rl/closed_form.py``)
against its second. The probes wrap functions and read a clock; they change nothing the run computes.
Medians over the repeats; the target is spawn-to-first-env-step <= ``python -c "import torch"`` + 0.3 s.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from common import REPO, machine, markdown_table, median

MARK = "STARTUP_RESULT "

# The driver: the CLI as `dnne run` calls it, with probes on the functions whose first call marks a milestone.
DRIVER = """
import time
def now():
    return (time.time(), time.process_time())
T = {"interpreter": now()}
import sys, json
import torch
T["import torch"] = now()
import dnne.runtime.cli as cli
import dnne.runtime.cli.shared as shared
import dnne.nodes
from dnne.nodes.envs.base import TensorTask
from dnne.nodes.rl.ppo import PPOUpdate
T["import dnne"] = now()

def first_call(cls, name, key):
    original = getattr(cls, name)
    def probe(*args, **kwargs):
        T.setdefault(key + " start", now())
        try:
            return original(*args, **kwargs)
        finally:
            T.setdefault(key + " end", now())
    setattr(cls, name, probe)

load = shared.load_graph
def load_probe(*args, **kwargs):
    T["load start"] = now()
    try:
        return load(*args, **kwargs)
    finally:
        T["load end"] = now()
shared.load_graph = load_probe
first_call(TensorTask, "step", "env step")
first_call(torch.optim.Adam, "__init__", "optimizer init")
update = PPOUpdate.run
calls = []
def update_probe(self, *args, **kwargs):
    started = time.perf_counter()
    try:
        return update(self, *args, **kwargs)
    finally:
        calls.append(time.perf_counter() - started)
PPOUpdate.run = update_probe
code = cli.main(sys.argv[1:])
T["first PPO update s"] = calls[0] if calls else None
T["second PPO update s"] = calls[1] if len(calls) > 1 else None
T["dynamo imported"] = "torch._dynamo" in sys.modules
print(%r + json.dumps(T))
sys.exit(code)
""" % MARK


def pinned(command: list[str]) -> list[str]:
    """``command`` pinned to core 0 when ``taskset`` exists."""
    return ["taskset", "-c", "0", *command] if shutil.which("taskset") else command


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def spawn(command: list[str]) -> tuple[float, float, float, str]:
    """Run ``command``: the epoch time just before spawning, wall and CPU seconds to exit, and stdout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
    cpu = _children_cpu()
    started = time.time()
    clock = time.perf_counter()
    done = subprocess.run(pinned(command), capture_output=True, text=True, env=env, cwd=REPO, timeout=600)
    seconds = time.perf_counter() - clock
    cpu = _children_cpu() - cpu
    if done.returncode != 0:
        sys.stderr.write(f"{' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}\n")
    return started, seconds, cpu, done.stdout


def dnne_once(run_dir: str) -> dict[str, Any]:
    """One driven ``dnne run``: each milestone as (wall seconds from spawn, CPU seconds of the process)."""
    command = [sys.executable, "-c", DRIVER, "run", "graphs/cartpole_ppo.json", "--run-dir", run_dir, "-q",
               "--set", "run.target_return=null", "--set", "run.max_iterations=2"]
    started, seconds, cpu, stdout = spawn(command)
    line = next(line for line in stdout.splitlines() if line.startswith(MARK))
    marks = json.loads(line[len(MARK):])
    result: dict[str, Any] = {key: (value[0] - started, value[1]) for key, value in marks.items()
                              if isinstance(value, list)}
    result["exit"] = (seconds, cpu)
    for key in ("first PPO update s", "second PPO update s", "dynamo imported"):
        result[key] = marks[key]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()
    print(f"machine: {machine()}\n", flush=True)
    bare, torch_only, runs = [], [], []
    for repeat in range(args.repeats):
        bare.append(spawn([sys.executable, "-c", "pass"])[1:3])
        torch_only.append(spawn([sys.executable, "-c", "import torch"])[1:3])
        with tempfile.TemporaryDirectory(prefix="dnne-startup-") as tmp:
            runs.append(dnne_once(os.path.join(tmp, "run")))
        print(f"  repeat {repeat + 1}: wall/CPU s: pass {bare[-1][0]:.2f}/{bare[-1][1]:.2f}, import torch "
              f"{torch_only[-1][0]:.2f}/{torch_only[-1][1]:.2f}, dnne first env step "
              f"{runs[-1]['env step start'][0]:.2f}/{runs[-1]['env step start'][1]:.2f}", flush=True)

    def at(key: str, clock: int) -> float:
        return median([run[key][clock] for run in runs])

    milestones = [("interpreter start (spawn to the driver's first line)", None, "interpreter"),
                  ("import torch", "interpreter", "import torch"),
                  ("import dnne (CLI, built-in nodes)", "import torch", "import dnne"),
                  ("CLI to load_graph (arguments, node registry, entry points)", "import dnne", "load start"),
                  ("graph loading (load_graph)", "load start", "load end"),
                  ("setup to the first env step (runner, node setup, first forward pass)", "load end",
                   "env step start")]
    rows = []
    for name, since, until in milestones:
        rows.append((name, *(f"{at(until, clock) - (at(since, clock) if since else 0.0):.3f}" for clock in (0, 1))))
    rows.append(("**spawn to the first env step**", *(f"**{at('env step start', clock):.3f}**" for clock in (0, 1))))
    print(markdown_table((f"part (median of {args.repeats})", "wall s", "CPU s"), rows))
    print()
    table = []
    for clock, name in ((0, "wall"), (1, "CPU")):
        first, torch_process = at("env step start", clock), median([t[clock] for t in torch_only])
        table.append((name, f"{median([b[clock] for b in bare]):.3f}", f"{torch_process:.3f}", f"{first:.3f}",
                      f"{first - torch_process:+.3f}", "ok" if first - torch_process <= 0.3 else "MISSED"))
    print(markdown_table(("clock", "python -c pass s", "python -c \"import torch\" s",
                          "dnne: spawn to first env step s", "difference s", "target <= +0.3 s"), table))
    print()
    print(markdown_table(
        ("optimizer construction s (CPU)", "first PPO update s", "second PPO update s", "torch._dynamo imported"),
        [(f"{at('optimizer init end', 1) - at('optimizer init start', 1):.4f}",
          f"{median([r['first PPO update s'] for r in runs]):.4f}",
          f"{median([r['second PPO update s'] for r in runs]):.4f}",
          "yes" if any(r["dynamo imported"] for r in runs) else "no")]))


if __name__ == "__main__":
    main()
