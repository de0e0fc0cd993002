"""MLflow: one MLflow run per dnne run, through ``MlflowClient`` (no process-wide active run, so two graphs in one
process each keep their own)."""
from __future__ import annotations

from typing import Any

from .base import MetricSink, RunInfo, numeric


class MlflowSink(MetricSink):
    """Logs every row's numbers as MLflow metrics, the graph as an artifact and the provenance as tags.

    Args:
        experiment: the MLflow experiment name (created when missing).
        tracking_uri: where MLflow stores runs (default: ``MLFLOW_TRACKING_URI``, else MLflow's own default).
    """

    def __init__(self, experiment: str = "dnne", tracking_uri: str | None = None) -> None:
        self.experiment = experiment
        self.tracking_uri = tracking_uri
        self._client: Any = None
        self._run_id: str | None = None

    def open(self, info: RunInfo) -> None:
        """Create the MLflow run."""
        from mlflow.tracking import MlflowClient

        self._client = MlflowClient(tracking_uri=self.tracking_uri)
        found = self._client.get_experiment_by_name(self.experiment)
        experiment_id = found.experiment_id if found is not None else self._client.create_experiment(self.experiment)
        tags = {f"dnne.{key}": str(value) for key, value in info.provenance.items() if not isinstance(value, dict)}
        tags |= {f"dnne.package.{name}": version for name, version in info.provenance.get("packages", {}).items()}
        tags["dnne.run_dir"] = str(info.path)
        run = self._client.create_run(experiment_id, run_name=info.name, tags=tags)
        self._run_id = run.info.run_id
        self._client.log_dict(self._run_id, info.config, "graph.json")

    def write(self, row: dict[str, Any], step: int) -> None:
        """Log the row's numbers at ``step`` in one batch."""
        import time

        from mlflow.entities import Metric

        assert self._client is not None and self._run_id is not None
        now = int(time.time() * 1000)
        metrics = [Metric(_key(key), value, now, step) for key, value in numeric(row).items()]
        self._client.log_batch(self._run_id, metrics=metrics)

    def close(self) -> None:
        """Mark the MLflow run finished."""
        if self._client is not None and self._run_id is not None:
            self._client.set_terminated(self._run_id)
            self._run_id = None


def _key(name: str) -> str:
    """MLflow metric names allow letters, digits and ``_-./ ``; anything else becomes ``_``."""
    return "".join(c if c.isalnum() or c in "_-./ " else "_" for c in name)
