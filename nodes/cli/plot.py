"""``dnne plot``: learning curves as a PNG; runs of the same graph (seeds) become one mean curve with a band."""
from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path
from typing import Any

X_AXES = {"steps": "env_steps", "time": "wall_time_s"}


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``plot`` to the ``dnne`` parser."""
    plot = sub.add_parser("plot", parents=[common], help="learning curves of runs as a PNG")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR",
                      help="run directories, or folders holding them (such as a --seeds parent)")
    plot.add_argument("-o", "--output", help="PNG path (default: FIRST_RUN_DIR/curves.png)")
    plot.add_argument("--metric", action="append", metavar="NAME",
                      help="metrics column to draw, one panel each (repeatable; default mean_return)")
    plot.add_argument("--x", choices=tuple(X_AXES), default="steps", help="x axis: env steps or wall time")
    plot.add_argument("--smooth", type=float, default=0.0, metavar="W",
                      help="exponential smoothing weight in [0, 1) per run, as in TensorBoard (default 0: none)")
    plot.add_argument("--points", type=int, default=200, help="points on the common x grid of a group")
    plot.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    """Draw each metric against env steps or wall time: one line per graph, the mean over its runs with a 95%
    bootstrap confidence band (seaborn) when it has several."""
    missing = [name for name in ("matplotlib", "seaborn") if importlib.util.find_spec(name) is None]
    if missing:
        raise ValueError(f"dnne plot needs {' and '.join(missing)}: pip install 'dnne-runtime[plot]'")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    if not 0.0 <= args.smooth < 1.0:
        raise ValueError(f"--smooth must be in [0, 1), got {args.smooth}")
    metrics = args.metric or ["mean_return"]
    groups = group_runs(find_runs([Path(d) for d in args.run_dirs]))
    x_key = X_AXES[args.x]
    figure, axes = plt.subplots(1, len(metrics), figsize=(6.5 * len(metrics), 4.5), squeeze=False)
    for axis, metric in zip(axes.flat, metrics):
        frame = curves(groups, metric, x_key, args.smooth, args.points)
        if frame.empty:
            raise ValueError(f"no run has a {metric!r} column; see metrics.jsonl for the columns")
        sns.lineplot(frame, x=x_key, y=metric, hue="graph", errorbar=("ci", 95), ax=axis)
        runs = frame.groupby("graph", sort=False)["run"].nunique()  # seaborn orders hues as they first appear
        axis.legend([f"{name} ({count} run{'s' * (count > 1)})" for name, count in runs.items()], fontsize=8)
        axis.grid(alpha=0.3)
    figure.tight_layout()
    output = Path(args.output) if args.output else Path(args.run_dirs[0]) / "curves.png"
    figure.savefig(output, dpi=100)
    print(output)
    return 0


def find_runs(paths: list[Path]) -> list[Path]:
    """The run directories among ``paths``, a folder without ``metrics.jsonl`` standing for the runs under it."""
    runs: list[Path] = []
    for path in paths:
        if (path / "metrics.jsonl").exists():
            runs.append(path)
        else:
            found = sorted(p.parent for p in path.glob("*/metrics.jsonl"))
            if not found:
                raise FileNotFoundError(f"{path} has no metrics.jsonl, nor has any folder in it: is it a run directory?")
            runs.extend(found)
    return runs


def group_runs(runs: list[Path]) -> dict[str, list[Path]]:
    """Runs grouped by their graph (``graph.json`` with the seed left out), each group named after its first run
    (a ``seed-N`` run by its parent folder)."""
    groups: dict[str, list[Path]] = {}
    names: dict[str, str] = {}
    for run in runs:
        graph_file = run / "graph.json"
        graph = json.loads(graph_file.read_text()) if graph_file.exists() else {"run_dir": str(run)}
        graph.get("run", {}).pop("seed", None)
        key = json.dumps(graph, sort_keys=True)
        names.setdefault(key, run.parent.name if run.name.startswith("seed-") else run.name)
        groups.setdefault(key, []).append(run)
    return {names[key]: members for key, members in groups.items()}


def curves(groups: dict[str, list[Path]], metric: str, x_key: str, smooth: float, points: int) -> Any:
    """A long table (graph, run, x, metric) with each run interpolated onto its group's common x grid, so the
    band is taken across runs at equal x; the grid spans the x range every run of the group covers."""
    import numpy as np
    import pandas as pd

    tables = []
    for name, runs in groups.items():
        series = [s for s in (read_series(run, metric, x_key, smooth) for run in runs) if s is not None]
        if not series:
            continue
        low, high = max(s.index[0] for s in series), min(s.index[-1] for s in series)
        grid = np.linspace(low, high, points) if high > low else np.array([low])
        for run, s in zip(runs, series):
            tables.append(pd.DataFrame({"graph": name, "run": str(run), x_key: grid,
                                        metric: np.interp(grid, s.index.to_numpy(float), s.to_numpy(float))}))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def read_series(run: Path, metric: str, x_key: str, smooth: float) -> Any:
    """``metric`` against ``x_key`` for one run (the last value at each x), smoothed; None when never reported."""
    import pandas as pd

    rows = [r for r in read_metrics(run) if r.get(metric) is not None and r.get(x_key) is not None]
    if not rows:
        return None
    series = pd.DataFrame(rows).groupby(x_key)[metric].last().sort_index()
    return series.ewm(alpha=1.0 - smooth).mean() if smooth else series


def read_metrics(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``RUN_DIR/metrics.jsonl``."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{run_dir} has no metrics.jsonl: is it a run directory?")
    rows = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as error:
            raise ValueError(f"{path}, line {number}: not a JSON metrics row ({error})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: not a JSON object")
        rows.append(row)
    return rows
