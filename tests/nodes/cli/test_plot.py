"""``dnne run --seeds`` and ``dnne plot``: runs of one graph grouped into a mean curve with a confidence band."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from dnne.nodes.cli.plot import curves, find_runs, group_runs

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
PNG = b"\x89PNG\r\n\x1a\n"


def fake_run(path: Path, graph: dict, seed: int, xs: list[int], ys: list[float]) -> Path:
    """A run directory with a graph (seeded) and a metrics file of (env_steps, mean_return) rows."""
    path.mkdir(parents=True)
    (path / "graph.json").write_text(json.dumps(dict(graph, run={"seed": seed, "max_steps": 100})))
    rows = [{"node": "trainer", "env_steps": x, "wall_time_s": x / 10, "mean_return": y} for x, y in zip(xs, ys)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


class TestGrouping:
    def test_seeds_of_one_graph_form_one_group(self, tmp_path: Path) -> None:
        """Seeds of a graph group together (named by their parent folder); another graph is its own group."""
        a, b = {"nodes": {"env": {"type": "EnvNode"}}}, {"nodes": {"env": {"type": "OtherEnv"}}}
        for seed in (1, 2, 3):
            fake_run(tmp_path / "cartpole" / f"seed-{seed}", a, seed, [0, 10], [0.0, 1.0])
        fake_run(tmp_path / "other", b, 1, [0, 10], [0.0, 1.0])
        groups = group_runs(find_runs([tmp_path / "cartpole", tmp_path / "other"]))
        assert {name: len(runs) for name, runs in groups.items()} == {"cartpole": 3, "other": 1}

    def test_curves_interpolate_onto_the_common_range(self, tmp_path: Path) -> None:
        """Each run is interpolated onto the x range all runs cover; the mean equals numpy's at each grid point."""
        graph = {"nodes": {}}
        data = {1: ([0, 10, 20, 30], [0.0, 2.0, 4.0, 6.0]), 2: ([5, 15, 25], [1.0, 1.0, 5.0]),
                3: ([0, 12, 28, 40], [3.0, 0.0, 2.0, 8.0])}
        runs = [fake_run(tmp_path / "g" / f"seed-{s}", graph, s, xs, ys) for s, (xs, ys) in data.items()]
        frame = curves(group_runs(runs), "mean_return", "env_steps", 0.0, 11)
        grid = np.linspace(5, 25, 11)
        expected = np.mean([np.interp(grid, xs, ys) for xs, ys in data.values()], axis=0)
        means = frame.groupby("env_steps")["mean_return"].mean().to_numpy()
        assert np.allclose(means, expected) and np.allclose(sorted(frame["env_steps"].unique()), grid)

    def test_smoothing_is_tensorboards_ema(self, tmp_path: Path) -> None:
        """--smooth W is the exponential moving average y_t = W y_{t-1} + (1 - W) x_t."""
        run = fake_run(tmp_path / "r", {"nodes": {}}, 1, [0, 1, 2, 3], [0.0, 4.0, 0.0, 4.0])
        frame = curves(group_runs([run]), "mean_return", "env_steps", 0.5, 4)
        expected, value, weight = [], 0.0, 0.0  # bias-corrected EMA (pandas adjust=True)
        for y in [0.0, 4.0, 0.0, 4.0]:
            value, weight = 0.5 * value + y, 0.5 * weight + 1.0
            expected.append(value / weight)
        assert np.allclose(frame["mean_return"], expected)


class TestSeedsCommand:
    @pytest.mark.slow
    def test_seeds_then_plot(self, tmp_path: Path) -> None:
        """--seeds runs one directory per seed under one parent; plot draws them as one group; an unknown metric is
        a clear error."""
        parent = tmp_path / "cp"
        done = subprocess.run([*DNNE, "run", str(CARTPOLE), "--seeds", "1", "2", "--max-steps", "768",
                               "--set", "run.target_return=null", "--run-dir", str(parent), "-q"],
                              capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr
        for seed in (1, 2):
            assert json.loads((parent / f"seed-{seed}" / "graph.json").read_text())["run"]["seed"] == seed
            assert json.loads((parent / f"seed-{seed}" / "summary.json").read_text())["env_steps"] >= 768
        out = tmp_path / "curves.png"
        done = subprocess.run([*DNNE, "plot", str(parent), "-o", str(out), "--metric", "policy_loss", "--x", "time"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert out.read_bytes()[:8] == PNG
        done = subprocess.run([*DNNE, "plot", str(parent), "-o", str(out), "--metric", "no_such"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 2 and "no_such" in done.stderr and "Traceback" not in done.stderr

    def test_seed_and_seeds_conflict(self, tmp_path: Path) -> None:
        """--seed with --seeds is bad input (exit 2)."""
        done = subprocess.run([*DNNE, "run", str(CARTPOLE), "--seeds", "1", "2", "--seed", "3"],
                              capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert done.returncode == 2 and "--seeds" in done.stderr


@pytest.mark.parametrize("smooth", [-0.1, 1.0])
def test_bad_smoothing_is_bad_input(tmp_path: Path, smooth: float) -> None:
    """A smoothing weight outside [0, 1) exits 2 with a message."""
    run = fake_run(tmp_path / "r", {"nodes": {}}, 1, [0, 1], [0.0, 1.0])
    done = subprocess.run([*DNNE, "plot", str(run), "--smooth", str(smooth)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2 and "--smooth" in done.stderr
