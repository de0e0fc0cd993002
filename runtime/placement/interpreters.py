"""Which Python interpreter runs each worker: chosen by the user, never by a graph file.

A graph file (or a run directory's ``graph.json``) is data from strangers, so it may not name a program to run. A
worker runs under this process's own interpreter unless the file names an *alias* under ``workers.NAME.python``;
an alias maps to an interpreter only where the user allowed it: ``dnne run --worker-python ALIAS=PATH`` on the
command line, or ``{"worker_python": {"ALIAS": "PATH"}}`` in the user's configuration file
(``$XDG_CONFIG_HOME/dnne/config.json``, by default ``~/.config/dnne/config.json``). An alias nobody allowed is a
validation error (``unknown_worker_python``), and so is a path written in the file (``worker_python_not_alias``,
found by ``validate``).
"""
from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..errors import GraphError, Issue
from ..graph import Graph

ALIAS = re.compile(r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$")
"""What a file may write as ``workers.NAME.python``: a name, never a path."""
CONFIG_LIMIT = 1 << 20


def config_path() -> Path:
    """The user's configuration file."""
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "dnne" / "config.json"


def allowed_interpreters(command_line: Sequence[str] = (), config: Path | None = None) -> dict[str, str]:
    """The aliases the user allowed: the configuration file's ``worker_python``, then ``ALIAS=PATH`` strings from
    the command line (which win). ``ValueError`` for a malformed entry."""
    allowed: dict[str, str] = {}
    path = config or config_path()
    if path.is_file():
        with open(path, "rb") as file:
            text = file.read(CONFIG_LIMIT + 1)
        if len(text) > CONFIG_LIMIT:
            raise ValueError(f"{path} is larger than {CONFIG_LIMIT} bytes")
        try:
            document = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{path} is not valid JSON: {error}") from None
        table = document.get("worker_python", {}) if isinstance(document, dict) else None
        if not isinstance(table, dict) or not all(isinstance(v, str) for v in table.values()):
            raise ValueError(f"{path}: 'worker_python' must map aliases to interpreter paths")
        allowed.update(_checked(alias, interpreter, str(path)) for alias, interpreter in table.items())
    for entry in command_line:
        alias, equals, interpreter = entry.partition("=")
        if not equals or not interpreter:
            raise ValueError(f"--worker-python {entry!r}: expected ALIAS=PATH")
        allowed.update([_checked(alias, interpreter, "--worker-python")])
    return allowed


def _checked(alias: str, interpreter: str, where: str) -> tuple[str, str]:
    if not ALIAS.match(alias):
        raise ValueError(f"{where}: worker interpreter alias {alias!r} must be a name (letters, digits, _ . -)")
    return alias, interpreter


def worker_interpreters(graph: Graph, allowed: Mapping[str, str]) -> dict[str, str]:
    """The interpreter of every worker the graph declares options for (``sys.executable`` where it names none);
    ``GraphError`` (``unknown_worker_python``) for an alias the user did not allow."""
    chosen: dict[str, str] = {}
    issues = []
    for name, options in graph.workers.items():
        alias = options.get("python")
        if alias is None:
            chosen[name] = sys.executable
        elif isinstance(alias, str) and alias in allowed:
            chosen[name] = allowed[alias]
        else:
            known = ", ".join(sorted(allowed)) or "none"
            issues.append(Issue("unknown_worker_python",
                                f"worker {name!r} asks for interpreter alias {alias!r}, which the user has not "
                                f"allowed (allowed: {known}); allow it with --worker-python {alias}=PATH or in "
                                f"{config_path()}", where=f"/workers/{name}/python"))
    if issues:
        raise GraphError(issues, graph.path)
    return chosen


def check_worker_options(graph: Graph) -> list[Issue]:
    """What ``validate`` refuses in the ``workers`` section: unknown options, a ``python`` that is not an alias,
    an ``on_loss`` other than ``stop`` or ``replace`` (``failover``), a ``nice`` that is not an integer from 0 to
    19 (``priority``), and a ``ray`` entry that is malformed or that this installation cannot run
    (``ray_parts.check_ray_options``)."""
    from .failover import ON_LOSS
    from .priority import MAX_NICE
    from .ray_parts import check_ray_options

    issues = []
    for name, options in graph.workers.items():
        for key in options:
            if key not in ("python", "ray", "on_loss", "nice"):
                issues.append(Issue("bad_placement", f"worker {name!r}: unknown option {key!r} (known: python, ray, "
                                    "on_loss, nice)", where=f"/workers/{name}/{key}"))
        nice = options.get("nice", 0)
        if isinstance(nice, bool) or not isinstance(nice, int) or not 0 <= nice <= MAX_NICE:
            issues.append(Issue("bad_placement", f"worker {name!r}: nice must be an integer from 0 to {MAX_NICE} "
                                f"(how many niceness levels the part runs below the main process), not "
                                f"{json.dumps(nice)[:80]}", where=f"/workers/{name}/nice"))
        if "on_loss" in options and options["on_loss"] not in ON_LOSS:
            issues.append(Issue("bad_on_loss", f"worker {name!r}: on_loss must be \"stop\" (the run stops naming the "
                                "part) or \"replace\" (the run goes on from its last consistent state with a new "
                                f"part), not {json.dumps(options['on_loss'])[:80]}",
                                where=f"/workers/{name}/on_loss"))
        if "ray" in options:
            issues.extend(check_ray_options(name, options))
        alias = options.get("python")
        if alias is not None and not (isinstance(alias, str) and ALIAS.match(alias)):
            issues.append(Issue("worker_python_not_alias",
                                f"worker {name!r}: 'python' must name an interpreter alias the user allowed "
                                f"(--worker-python ALIAS=PATH), not {json.dumps(alias)[:80]}: a graph file may not "
                                "name a program to run", where=f"/workers/{name}/python"))
    return issues
