"""The dnne-runtime engine: nodes, ports, channels, graphs, runner and CLI. Knows nothing about RL."""

__version__ = "0.1.0"

from .errors import GraphError, Issue, NodeFailure
from .graph import Graph
from .loading import load_graph
from .node import DnneLayout, Node
from .ports import Input, Output, Param
from .registry import NodeRegistry, default_registry
from .runner import GraphRun, RunResult, run
from .types import PortType, Token

__all__ = [
    "DnneLayout", "Graph", "GraphError", "GraphRun", "Input", "Issue", "Node", "NodeFailure", "NodeRegistry",
    "Output", "Param", "PortType", "RunResult", "Token", "default_registry", "load_graph", "run",
]
