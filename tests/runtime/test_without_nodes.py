"""The engine's tests need no node package: with ``dnne.nodes`` unimportable (``hide_nodes``) they pass."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@pytest.mark.slow  # the whole non-slow runtime suite again, in a subprocess
def test_runtime_tests_pass_without_the_node_package() -> None:
    """``python -m pytest -p hide_nodes tests/runtime -m "not slow"`` passes: no runtime test module imports
    dnne.nodes unguarded, and the tests that go through it are marked ``nodes`` (skipped there)."""
    paths = [str(HERE), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "hide_nodes", str(HERE), "-q", "-x", "-m", "not slow",
         "-p", "no:cacheprovider"],
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)}, cwd=HERE.parents[1], capture_output=True,
        text=True, check=False)
    assert result.returncode == 0, result.stdout[-4000:]
    assert " skipped" in result.stdout.splitlines()[-1]  # the nodes-marked tests were found and skipped
