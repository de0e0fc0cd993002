"""Weights & Biases: one W&B run per dnne run (``dnne run --track``; ``WANDB_MODE=offline`` works without an
account, and ``wandb sync`` uploads later)."""
from __future__ import annotations

from typing import Any

from .base import MetricSink, RunInfo, numeric


class WandbSink(MetricSink):
    """Logs every row to a W&B run whose config is the resolved graph and the run's provenance.

    Args:
        project: the W&B project (``WANDB_PROJECT`` wins when set, as in W&B's own tools).
    """

    def __init__(self, project: str = "dnne") -> None:
        self.project = project
        self._run: Any = None

    def open(self, info: RunInfo) -> None:
        """Start the W&B run, writing its local files under the run directory."""
        import wandb

        self._run = wandb.init(project=self.project, name=info.name, dir=str(info.path),
                               config={"graph": info.config, "provenance": info.provenance}, reinit="create_new")

    def write(self, row: dict[str, Any], step: int) -> None:
        """Log the row's numbers at ``step``; W&B needs steps that never go back, which env steps are."""
        assert self._run is not None
        self._run.log(numeric(row), step=step)

    def close(self) -> None:
        """Finish the W&B run."""
        if self._run is not None:
            self._run.finish()
            self._run = None
