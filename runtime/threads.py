"""``use_threads``: one process's CPU thread count, for torch and for numpy's BLAS alike.

A run sets its process's threads once (``--threads``, 1 by default; a worker takes the main process's value). Torch
reads ``torch.set_num_threads``; numpy's BLAS (OpenBLAS in numpy's wheels) does not, and starts a thread per core
whose idle threads spin between matrix products. A learner that multiplies with numpy (the closed-form PPO step) in
a process beside env workers then took a core from them: 0.72 of a core for a learner that needs 0.15 on this
project's 2-core machine.
"""
from __future__ import annotations

import torch
from threadpoolctl import threadpool_limits


def use_threads(count: int) -> None:
    """Run torch's CPU operations and numpy's BLAS with ``count`` threads in this process from now on."""
    torch.set_num_threads(count)
    threadpool_limits(limits=count, user_api="blas")
