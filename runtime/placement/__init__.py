"""Graphs split over processes: the ``placement`` section puts nodes in worker processes, or in Ray actors.

Modules, one concept each: ``split`` (a graph as one graph per process, crossing links as proxy node pairs),
``proxies`` (those two nodes), ``wire`` (the frame format), ``codec`` (msgpack values: tensors, allowlisted
dataclasses; bounded decoding), ``slots`` (shared-memory slot rings for tensors), ``endpoint`` (credit-based flow
control on one process's side), ``mirror`` (counters across processes), ``interpreters`` (which Python runs a
worker: the user's choice), ``heartbeat`` (every worker's liveness), ``ray_parts`` (workers as Ray actors), ``hub``
(the main process: starts and stops the workers) and ``worker`` (a worker process or actor's program).

The names below load on first use, so validating a graph (which checks its ``workers`` section) does not import
msgpack or torch.
"""
from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {"Codec": "codec", "WireError": "codec", "Placement": "hub", "RemoteFailure": "hub",
            "WorkerDied": "hub", "Split": "split", "split_graph": "split"}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_EXPORTS[name]}", __name__), name)
