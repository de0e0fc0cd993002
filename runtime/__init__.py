"""The dnne-runtime engine: nodes, ports, channels, graphs, runner and CLI. Knows nothing about RL."""

__version__ = "0.1.0"
