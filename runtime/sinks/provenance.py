"""What a run records about where it came from: command line, package versions, the project's git revision."""
from __future__ import annotations

import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ..registry import ENTRY_POINT_GROUP

CORE_PACKAGES = ("dnne-runtime", "torch", "numpy")


def collect(argv: list[str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    """The command line, Python and package versions, and the git revision of the working directory's project.

    Package versions cover the runtime, torch, numpy and every installed node package (``dnne.nodes`` entry
    points), so a result can be traced to the code that made it.
    """
    return {
        "argv": list(sys.argv if argv is None else argv),
        "cwd": str(cwd or Path.cwd()),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "git": git_revision(cwd or Path.cwd()),
    }


def package_versions() -> dict[str, str]:
    """Versions of the core packages and of every distribution that provides node types."""
    names = set(CORE_PACKAGES)
    for entry in metadata.entry_points(group=ENTRY_POINT_GROUP):
        if entry.dist is not None:
            names.add(entry.dist.name)
    versions = {}
    for name in sorted(names):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return versions


def git_revision(path: Path) -> dict[str, Any] | None:
    """``{"commit", "dirty"}`` of the git work tree holding ``path``, or None (no git, or not in a work tree)."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=path, capture_output=True, text=True, timeout=10)
        if commit.returncode != 0:
            return None
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=path,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
