"""The dnne-runtime engine: nodes, ports, channels, graphs, runner and CLI. Knows nothing about RL."""

__version__ = "0.1.0"

from .embedding import run
from .errors import GraphError, Issue, NodeFailure
from .graph import Graph
from .loading import load_graph
from .node import DnneLayout, Node
from .ports import Input, Output, Param
from .progress import Progress
from .registry import NodeRegistry, default_registry
from .rundir import RunDirectory
from .runner import GraphRun, RunHooks, RunResult
from .sinks import MetricSink, MetricsCallback, RunInfo
from .types import PortType, Token

__all__ = [
    "DnneLayout", "Graph", "GraphError", "GraphRun", "Input", "Issue", "MetricSink", "MetricsCallback", "Node",
    "NodeFailure", "NodeRegistry", "Output", "Param", "PortType", "Progress", "RunDirectory", "RunHooks", "RunInfo",
    "RunResult", "Token", "default_registry", "load_graph", "run",
]
