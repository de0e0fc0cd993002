"""Every test process runs as ``dnne run`` does: one thread for torch and one for numpy's BLAS.

The suite runs two workers on CI's two cores. With a thread per core in each worker, a worker's idle BLAS threads
spin beside the other worker's tests, and a test that times its host loop (``test_embedding``'s lag while embedded)
saw stalls of 100 ms that come from the suite's own oversubscription, not from the runtime.
"""
from __future__ import annotations

import os

import pytest

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
"""The environment that gives a process started by a test one thread per library from its start."""


def pytest_configure(config: pytest.Config) -> None:
    """One thread per library in this process and, through the environment, in the processes its tests start."""
    for name, value in ONE_THREAD.items():
        os.environ.setdefault(name, value)
    from dnne.runtime.threads import use_threads

    use_threads(1)
