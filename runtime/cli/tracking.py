"""``dnne run --track``: which extra metric sinks a run writes to, checked before the run starts."""
from __future__ import annotations

import importlib.util

TRACKERS = ("wandb", "mlflow", "csv")
LIBRARIES = {"wandb": "wandb", "mlflow": "mlflow"}


def trackers(chosen: list[str] | None) -> list[str]:
    """The metric sinks ``--track`` asks for (bare ``--track``: wandb); a tracker whose library is missing is bad
    input, named with the extra that installs it."""
    if chosen is None:
        return []
    names = chosen or ["wandb"]
    for name in names:
        library = LIBRARIES.get(name)
        if library is not None and importlib.util.find_spec(library) is None:
            raise ValueError(f"--track {name} needs the {library} package: pip install 'dnne-runtime[{name}]'")
    return names
