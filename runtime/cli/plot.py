"""``dnne plot``: learning curves of runs as a PNG."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def add_parser(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``plot`` to the ``dnne`` parser."""
    plot = sub.add_parser("plot", parents=[common], help="learning curves of runs as a PNG")
    plot.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    plot.add_argument("-o", "--output", help="PNG path (default: FIRST_RUN_DIR/curves.png)")
    plot.set_defaults(handler=cmd_plot)


def cmd_plot(args: argparse.Namespace) -> int:
    """Plot return against env steps and wall time, and the losses, for one or more runs."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = {str(Path(d)): read_metrics(Path(d)) for d in args.run_dirs}
    figure, axes = plt.subplots(2, 2, figsize=(12, 8))
    panels = [("env_steps", "mean_return"), ("wall_time_s", "mean_return"), ("env_steps", "policy_loss"),
              ("env_steps", "value_loss")]
    for axis, (x_key, y_key) in zip(axes.flat, panels):
        for name, rows in runs.items():
            points = [(r[x_key], r[y_key]) for r in rows if r.get(y_key) is not None and x_key in r]
            if points:
                xs, ys = zip(*points)
                axis.plot(xs, ys, label=Path(name).name)
        axis.set_xlabel(x_key)
        axis.set_ylabel(y_key)
        axis.grid(alpha=0.3)
    axes.flat[0].legend(fontsize=8)
    figure.tight_layout()
    output = Path(args.output) if args.output else Path(args.run_dirs[0]) / "curves.png"
    figure.savefig(output, dpi=100)
    print(output)
    return 0


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
