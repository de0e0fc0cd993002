"""``dnne run --preset NAME``: the graph files of ``graphs/presets/`` by name."""
from __future__ import annotations

import difflib
from pathlib import Path

SOURCE_PRESETS = Path(__file__).resolve().parents[2] / "graphs" / "presets"


def preset_dirs() -> list[Path]:
    """Where presets are looked for, first match wins: ``graphs/presets`` under the current directory, then the one
    of the source tree this package runs from (an editable install or a checkout)."""
    found: list[Path] = []
    for folder in (Path.cwd() / "graphs" / "presets", SOURCE_PRESETS):
        if folder.is_dir() and all(folder.resolve() != seen.resolve() for seen in found):
            found.append(folder)
    return found


def presets() -> dict[str, Path]:
    """Every preset's name (its file's stem) and path."""
    named: dict[str, Path] = {}
    for folder in preset_dirs():
        for path in sorted(folder.glob("*.json")):
            named.setdefault(path.stem, path)
    return named


def preset_path(name: str) -> Path:
    """The graph file of preset ``name`` (case-insensitive, ``.json`` optional); a ``ValueError`` naming the
    presets there are, and the closest ones, for any other name."""
    named = presets()
    key = name.strip().lower().removesuffix(".json")
    if key in named:
        return named[key]
    if not named:
        raise ValueError(f"no preset {name!r}: no graphs/presets folder here or in the source tree "
                         f"({SOURCE_PRESETS})")
    close = difflib.get_close_matches(key, list(named), n=3, cutoff=0.5)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    raise ValueError(f"no preset {name!r}: {hint}presets: {', '.join(named)}")
