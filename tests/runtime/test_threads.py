"""``use_threads``: torch's and numpy's BLAS thread counts follow one setting."""
from __future__ import annotations

import os
import subprocess
import sys


def test_torch_and_numpy_s_blas_take_the_count() -> None:
    """In a fresh process (the setting is process-wide), both libraries report each count set: 1, then one per
    core this process may use (numpy's BLAS starts with one per core)."""
    cores = len(os.sched_getaffinity(0))
    code = ("import numpy, torch\n"
            "from threadpoolctl import threadpool_info\n"
            "from dnne.runtime.threads import use_threads\n"
            f"for count in (1, {cores}):\n"
            "    use_threads(count)\n"
            "    blas = [lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas']\n"
            "    print(torch.get_num_threads(), blas)\n")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert lines[:2] == ["1 [1]", f"{cores} [{cores}]"]
