"""Metric sinks: where a run's metric rows go (JSON lines, TensorBoard, CSV, Weights & Biases, MLflow).

Each sink imports its library only when opened, so a run pays only for the sinks it uses.
"""
from __future__ import annotations

from collections.abc import Callable

from .base import STEP_COUNTER, MetricSink, MetricStamp, RunInfo, numeric, plain
from .callback import MetricsCallback, MetricsHook
from .csv_file import CsvSink
from .jsonl import JsonLinesSink
from .mlflow_sink import MlflowSink
from .tensorboard import TensorBoardSink
from .wandb_sink import WandbSink

SINKS: dict[str, Callable[[], MetricSink]] = {
    "jsonl": JsonLinesSink, "tensorboard": TensorBoardSink, "csv": CsvSink, "wandb": WandbSink, "mlflow": MlflowSink,
}


def make_sink(name: str) -> MetricSink:
    """The sink registered as ``name`` (one of ``SINKS``)."""
    if name not in SINKS:
        raise ValueError(f"unknown metric sink {name!r}; choose from {', '.join(SINKS)}")
    return SINKS[name]()


__all__ = ["STEP_COUNTER", "CsvSink", "JsonLinesSink", "MetricSink", "MetricStamp", "MetricsCallback", "MetricsHook", "MlflowSink", "RunInfo", "SINKS",
           "TensorBoardSink", "WandbSink", "make_sink", "numeric", "plain"]
