"""Entry-point discovery (``installed_entry_points``): scanned once per import path, again when a package is
installed or removed on it."""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

from dnne.runtime.registry import installed_entry_points

SECOND = 1_000_000_000


def _install(folder: Path, name: str) -> Path:
    """A minimal installed distribution in ``folder`` with one ``dnne.nodes`` entry point called ``name``."""
    info = folder / f"{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[dnne.nodes]\n{name} = {name}_module:register\n")
    return info


def _touched(folder: Path, after: int) -> int:
    """Give ``folder`` a modification time a second past ``after`` (and past its own), so that a change shows on a
    file system with coarse timestamps too; the time given."""
    when = max(after, folder.stat().st_mtime_ns) + SECOND
    os.utime(folder, ns=(when, when))
    return when


def test_entry_points_are_scanned_again_only_when_the_import_path_changes(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The same scan serves every registry while nothing changes; a folder added to the path, a package installed
    in it or removed from it is seen at the next call."""
    first = installed_entry_points()
    assert installed_entry_points() is first
    assert first[0].name == "builtin"
    monkeypatch.setattr(sys, "path", [*sys.path, str(tmp_path)])
    assert "dnne_probe_one" not in [entry.name for entry in installed_entry_points()]
    info = _install(tmp_path, "dnne_probe_one")
    changed = _touched(tmp_path, 0)
    assert "dnne_probe_one" in [entry.name for entry in installed_entry_points()]
    shutil.rmtree(info)
    _touched(tmp_path, changed)
    assert "dnne_probe_one" not in [entry.name for entry in installed_entry_points()]
