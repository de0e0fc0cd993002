"""A pytest plugin that makes ``dnne.nodes`` unimportable, to show the engine's tests need no node package:
``PYTHONPATH=tests/runtime python -m pytest -p hide_nodes tests/runtime``. Tests that exercise the built-in node
package through the engine (shipped graphs, ``dnne play``) are marked ``nodes`` and skipped then."""
from __future__ import annotations

import sys
from collections.abc import Sequence
from importlib.abc import MetaPathFinder
from importlib.machinery import ModuleSpec
from types import ModuleType

import pytest


class _Hidden(MetaPathFinder):
    """Refuses every module of the ``dnne.nodes`` package."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> ModuleSpec | None:
        if fullname == "dnne.nodes" or fullname.startswith("dnne.nodes."):
            raise ModuleNotFoundError(f"{fullname} is hidden (hide_nodes)", name=fullname)
        return None


sys.meta_path.insert(0, _Hidden())
for name in [name for name in sys.modules if name == "dnne.nodes" or name.startswith("dnne.nodes.")]:
    del sys.modules[name]


@pytest.hookimpl(trylast=True)  # after the conftest files have marked their tests
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked ``nodes``: they need the hidden package."""
    skip = pytest.mark.skip(reason="needs dnne.nodes, hidden by hide_nodes")
    for item in items:
        if item.get_closest_marker("nodes") is not None:
            item.add_marker(skip)
