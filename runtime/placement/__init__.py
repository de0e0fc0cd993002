"""Graphs split over processes on one machine: the ``placement`` section puts nodes in worker processes.

Modules, one concept each: ``split`` (a graph as one graph per process, crossing links as proxy node pairs),
``proxies`` (those two nodes), ``wire`` (the frame format), ``codec`` (msgpack values: tensors, allowlisted
dataclasses), ``endpoint`` (credit-based flow control on one process's side), ``mirror`` (counters across
processes), ``hub`` (the main process: starts, routes, stops the workers) and ``worker`` (a worker process).
"""
from .codec import Codec, WireError
from .hub import Placement, RemoteFailure, WorkerDied
from .split import Split, split_graph

__all__ = ["Codec", "Placement", "RemoteFailure", "Split", "WireError", "WorkerDied", "split_graph"]
