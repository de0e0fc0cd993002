"""Fixtures of the runtime tests: registries with the toy nodes and a helper that runs a graph."""
from __future__ import annotations

import asyncio
from typing import Any

import pytest
from toy_nodes import toy_registry

from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.registry import NodeRegistry, default_registry
from dnne.runtime.runner import GraphRun, RunResult


@pytest.fixture(scope="session")
def registry() -> NodeRegistry:
    """The toy nodes only."""
    return toy_registry()


@pytest.fixture(scope="session")
def full_registry() -> NodeRegistry:
    """The toy nodes plus the installed node packages (the built-in RL nodes)."""
    return toy_registry(builtins=True)


@pytest.fixture(scope="session")
def builtin_registry() -> NodeRegistry:
    """What ``dnne run`` uses: every installed node package."""
    return default_registry()


def execute(graph: Graph, registry: NodeRegistry, **options: Any) -> tuple[GraphRun, RunResult]:
    """Validate ``graph``, run it in a fresh event loop, and return the run and its result."""
    graph_run = GraphRun(load_graph(graph, registry=registry), registry, **options)
    result = asyncio.run(asyncio.wait_for(graph_run.execute(), 20))
    return graph_run, result


@pytest.fixture
def run_graph():
    """``run_graph(graph, registry, **GraphRun options) -> (GraphRun, RunResult)``."""
    return execute


NODE_PACKAGE_FIXTURES = {"full_registry", "builtin_registry"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A test that asks for the installed node packages goes through dnne.nodes: mark it ``nodes``."""
    for item in items:
        if NODE_PACKAGE_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.nodes)
