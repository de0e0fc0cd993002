"""Preloading torch's native library with the interpreter lock released (``dnne.runtime.native_preload``)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

from dnne.runtime.native_preload import preload_extensions

# A fresh interpreter (torch not imported yet): a thread loads torch's extension module; the main thread sleeps 1 ms
# at a time and records its largest gap, then imports torch and computes with it. MODE "ctypes" loads the file through
# ctypes.CDLL, which calls dlopen holding the lock as the import system does: the control.
PROBE = textwrap.dedent("""
    import ctypes, json, sys, threading, time
    from dnne.runtime.native_preload import preload_extensions, _dlopen
    import importlib.util, pathlib
    mode = sys.argv[1]
    def load():
        if mode == "preload":
            result["loaded"] = [p.name for p in preload_extensions("torch", "_C*.so")]
        else:
            folder = pathlib.Path(importlib.util.find_spec("torch").origin).parent
            result["loaded"] = [p.name for p in folder.glob("_C*.so") if ctypes.CDLL(str(p))]
    result = {}
    worker = threading.Thread(target=load)
    last, gap = time.perf_counter(), 0.0
    started = last
    worker.start()
    while worker.is_alive():
        time.sleep(0.001)
        now = time.perf_counter()
        gap, last = max(gap, now - last), now
    result["load_s"] = last - started
    import torch
    result["sum"] = float(torch.arange(4.0).sum())
    result["max_gap_s"] = gap
    print(json.dumps(result))
""")


def probe(mode: str) -> dict[str, object]:
    """Run PROBE in a fresh interpreter; its JSON result."""
    done = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="measured where torch's _C is an ELF .so")
def test_loading_torch_leaves_other_threads_running() -> None:
    """While a thread preloads torch's extension module (0.1-0.6 s of libtorch's static initialisers, by machine),
    another thread keeps waking every millisecond; loading the same file holding the lock (ctypes.CDLL) stops it for
    the whole load. torch imports and computes normally after the preload."""
    held = probe("ctypes")
    free = probe("preload")
    assert free["loaded"] == held["loaded"] and len(free["loaded"]) == 1
    assert free["sum"] == held["sum"] == 6.0
    # the control: the lock held throughout a load of at least 50 ticks
    assert held["max_gap_s"] >= 0.8 * held["load_s"] and held["load_s"] > 0.05, held
    assert free["max_gap_s"] < held["max_gap_s"] / 10 and free["max_gap_s"] < free["load_s"] / 2, (free, held)


def test_an_imported_or_missing_package_is_skipped() -> None:
    """Nothing is loaded for a package already imported, a missing one or a submodule name."""
    assert preload_extensions("json", "*.so") == []
    assert preload_extensions("no_such_package_dnne", "*.so") == []
    assert preload_extensions("torch.nn", "*.so") == []
