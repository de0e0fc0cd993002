"""Loading a package's native code without holding the interpreter lock, so a first import stalls no other thread.

A first ``import torch`` spends 0.35-0.55 s inside ``dlopen`` of its extension module: the dynamic loader maps
libtorch and runs its static initialisers (operator registration). The import system calls ``dlopen`` holding the
GIL, so every other thread of the process, a host application's event loop included, stops for that long. ``dlopen``
called through ctypes runs with the GIL released; loading the same file first that way leaves the import only the
module's Python-level initialisation, which yields the GIL as ordinary Python code does.

Loading an extension module's file does not initialise the module (its ``PyInit_*`` function runs at import), and
the import then ``dlopen``\\ s the same path with the same flags (``sys.getdlopenflags()``), which returns the
already loaded library. Preloading is an optimisation: where it cannot be done (no ``dlopen``, the package absent,
already imported) nothing happens and the import does all the work, as it would anyway.
"""
from __future__ import annotations

import ctypes
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path

EXTENSION_SUFFIXES = (".so",)


def preload_extensions(package: str, pattern: str) -> list[Path]:
    """``dlopen`` the files matching ``pattern`` in top-level ``package``'s folder, the GIL released; the loaded paths.

    Nothing is imported (the package's spec is found without running it); an already imported package, a missing
    one, a platform without ``dlopen`` or a file that fails to load is skipped.
    """
    if package in sys.modules or "." in package:
        return []
    dlopen = _dlopen()
    spec = importlib.util.find_spec(package)
    if dlopen is None or spec is None or spec.origin is None:
        return []
    loaded = []
    for path in sorted(Path(spec.origin).parent.glob(pattern)):
        if path.suffix in EXTENSION_SUFFIXES and dlopen(str(path).encode(), sys.getdlopenflags()):
            loaded.append(path)
    return loaded


def _dlopen() -> Callable[[bytes, int], int | None] | None:
    """libc's ``dlopen`` as a ctypes function (which releases the GIL while it runs), or ``None``."""
    if not hasattr(sys, "getdlopenflags"):
        return None
    try:
        function = ctypes.CDLL(None).dlopen
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_char_p, ctypes.c_int]
    function.restype = ctypes.c_void_p
    return function  # type: ignore[no-any-return]
