"""Keeping the cycle collector's full collections off the objects a process imports before its first run.

Importing torch and the node packages creates several hundred thousand objects that live as long as the process
(modules, classes, functions, operator tables). Every full collection of the garbage collector walks all of them,
holding the interpreter lock: during the main Cartpole job's start three of them took 16, 60 and 82 ms, and each
stops every thread of the process, an embedding host's event loop among them. So ``dnne`` (before its imports), a
worker process (from its ``main``, after its modules' own ``import torch``) and an embedded run (before it finds the
node packages) call ``defer``: full collections wait, while the young generations are still collected as usual.
Once the first graph is loaded (``load_graph``; an embedded run given a ``Graph`` object settles itself), before
any run object exists, ``settle`` moves every object alive then into the collector's permanent generation
(``gc.freeze``, as servers do before they fork), which collections skip, and full collections resume. The run's own
objects (nodes, channels, envs, networks, hooks) come after the freeze and are collected as any others: a frozen
object that came to reference them (a closure cell made before the freeze, say) would keep them alive. Both act
once per process.

The cost: an object alive at the freeze that later becomes unreachable only through a reference cycle is not
reclaimed (reference counting still frees everything else). Where the collector has no oldest-generation threshold
to raise (Python 3.14's incremental collector ignores it), ``defer`` changes nothing and ``settle`` only freezes.
"""
from __future__ import annotations

import gc
import threading

DEFERRED = 1_000_000
"""The oldest generation's threshold while full collections wait: a count of younger collections never reached."""

_lock = threading.Lock()
_saved: int | None = None
_settled = False


def defer() -> None:
    """Hold full collections back until ``settle`` (nothing once this process has settled, or already deferred)."""
    global _saved
    with _lock:
        if _settled or _saved is not None:
            return
        young, middle, _saved = gc.get_threshold()
        gc.set_threshold(young, middle, DEFERRED)


def settle() -> None:
    """Freeze the objects alive now and let full collections resume (only after ``defer``, and once); a threshold
    the process set meanwhile is left as it is."""
    global _saved, _settled
    with _lock:
        if _settled or _saved is None:
            return
        gc.freeze()
        young, middle, oldest = gc.get_threshold()
        if oldest == DEFERRED:
            gc.set_threshold(young, middle, _saved)
        _saved, _settled = None, True
