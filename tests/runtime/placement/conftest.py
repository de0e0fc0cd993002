"""Fixtures of the placement tests: a registry whose nodes a worker process can load too."""
from __future__ import annotations

import pytest
from placement_nodes import placement_registry

from dnne.runtime.registry import NodeRegistry


@pytest.fixture(scope="session")
def wreg() -> NodeRegistry:
    """The toy nodes and the placement test nodes, loaded as a plugin module (workers load it by name)."""
    return placement_registry()
