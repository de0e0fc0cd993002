"""``use_threads``: torch's and numpy's BLAS thread counts follow one setting."""
from __future__ import annotations

import json
import os
import subprocess
import sys


def test_torch_and_numpy_s_blas_take_the_count() -> None:
    """In a fresh process (the setting is process-wide), torch and every BLAS loaded report each count set: 1, then
    2 where the process may use 2 cores (numpy's BLAS starts with one thread per core)."""
    counts = (1, 2) if len(os.sched_getaffinity(0)) >= 2 else (1,)
    code = ("import json, numpy, torch\n"
            "from threadpoolctl import threadpool_info\n"
            "from dnne.runtime.threads import use_threads\n"
            f"for count in {counts}:\n"
            "    use_threads(count)\n"
            "    blas = [lib['num_threads'] for lib in threadpool_info() if lib['user_api'] == 'blas']\n"
            "    print(json.dumps([torch.get_num_threads(), blas]))\n")
    lines = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    for count, line in zip(counts, lines, strict=True):
        torch_threads, blas = json.loads(line)
        assert torch_threads == count and blas and set(blas) == {count}
