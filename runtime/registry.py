"""Node type discovery: the ``dnne.nodes`` entry-point group and ``--plugin`` modules."""
from __future__ import annotations

import importlib
import logging
import os
import sys
from importlib.metadata import EntryPoint, entry_points

from .node import Node
from .types import PortType, Token, TypeRegistry
from .vocabulary import (Check, Expand, RunKey, StopShorthand, SummaryField, Vocabulary, engine_run_keys,
                         finite_number)

log = logging.getLogger("dnne")

ENTRY_POINT_GROUP = "dnne.nodes"

_scans: dict[tuple[tuple[str, int | None], ...], list[EntryPoint]] = {}
"""The last scan of the installed entry points, under the import path it was made on (``installed_entry_points``)."""


def installed_entry_points() -> list[EntryPoint]:
    """The ``dnne.nodes`` entry points installed now, builtin first, then by name. Finding them reads every installed
    package's metadata (milliseconds), so a process scans again only when its import path, or a folder on it,
    changed since the last scan (installing or removing a package with pip changes its folder), not for every
    registry. Metadata rewritten in place inside a package's own folder (a legacy ``setup.py develop`` run again)
    is seen by the next process."""
    path = tuple((entry, _modified(entry)) for entry in sys.path)
    found = _scans.get(path)
    if found is None:
        found = sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name))
        _scans.clear()
        _scans[path] = found
    return found


def _modified(entry: str) -> int | None:
    try:
        return os.stat(entry or ".").st_mtime_ns
    except OSError:
        return None


class PluginCollision(ValueError):
    """Two packages register the same node type name."""


class NodeRegistry:
    """The node types and port types one run knows. No globals: each run may build its own.

    Node packages expose ``register(registry)`` and call ``add_node`` / ``add_type`` / ``alias_type`` on it, and
    ``add_wire_type`` for the dataclasses their ports (or declarations) carry across a process boundary. They
    give their counters meaning with ``add_run_key``, ``add_stop_shorthand``, ``add_summary_field``,
    ``set_step_counter`` and ``add_progress_column`` (see ``vocabulary``).
    """

    def __init__(self) -> None:
        self.nodes: dict[str, type[Node]] = {}
        self.sources: dict[str, str] = {}
        self.types = TypeRegistry()
        self.plugin_errors: list[str] = []
        self.plugin_modules: list[str] = []
        self.wire_types: dict[str, type] = {"Token": Token}
        self.vocabulary = Vocabulary(run_keys=engine_run_keys())
        self._current_source = "code"

    def add_run_key(self, name: str, doc: str, check: Check | None = None, expand: Expand | None = None) -> None:
        """Declare a run-section key the package's nodes read (``ctx.settings``), validated by ``check``; with
        ``expand``, a key that stands for nodes added to the graph at load (``vocabulary.Expand``)."""
        known = self.vocabulary.run_keys.get(name)
        if known is not None and (known.doc, known.check, known.expand) != (doc, check, expand):
            raise PluginCollision(f"run key {name!r} from {self._current_source} is already registered")
        self.vocabulary.run_keys[name] = RunKey(name, doc, check, expand)

    def add_stop_shorthand(self, key: str, counter: str, doc: str, op: str = ">=", solved: bool = False,
                           check: Check | None = None) -> None:
        """Declare run key ``key`` as the stop predicate ``counter op VALUE`` (stop reason: ``key``)."""
        from .stopping import OPERATORS

        if op not in OPERATORS:
            raise ValueError(f"stop shorthand {key!r}: unknown comparison {op!r}")
        self.add_run_key(key, doc, check or finite_number)
        self.vocabulary.shorthands[key] = StopShorthand(key, counter, op, key, solved)

    def add_summary_field(self, name: str, counter: str, integer: bool = False) -> None:
        """Write counter ``counter`` as the top-level field ``name`` of ``summary.json``."""
        self.vocabulary.summary_fields[name] = SummaryField(name, counter, integer)

    def set_step_counter(self, counter: str, total_key: str | None = None) -> None:
        """Make ``counter`` the metrics' x axis and the progress position; run key ``total_key`` its total."""
        self.vocabulary.step_counter = counter
        self.vocabulary.step_total_key = total_key

    def add_progress_column(self, counter: str, label: str | None = None) -> None:
        """Show ``counter`` on the progress line (as ``label``, default its name)."""
        self.vocabulary.progress_columns[counter] = label or counter

    def add_node(self, cls: type[Node], name: str | None = None) -> None:
        """Register a node class under ``name`` (default: its class name)."""
        name = name or cls.type_name()
        if name in self.nodes and self.nodes[name] is not cls:
            raise PluginCollision(
                f"node type {name!r} from {self._current_source} collides with the one from {self.sources[name]}"
            )
        self.nodes[name] = cls
        self.sources[name] = self._current_source

    def add_type(self, port_type: PortType) -> None:
        """Register a port type."""
        self.types.register(port_type, self._current_source)

    def alias_type(self, alias: str, name: str) -> None:
        """Let ``alias`` name the port type ``name``."""
        self.types.alias(alias, name)

    def add_wire_type(self, cls: type, name: str | None = None) -> None:
        """Allow dataclass ``cls`` to cross a process boundary (the msgpack codec refuses any other class)."""
        name = name or cls.__name__
        if name in self.wire_types and self.wire_types[name] is not cls:
            raise PluginCollision(f"wire type {name!r} from {self._current_source} is already registered")
        self.wire_types[name] = cls

    def get(self, name: str) -> type[Node] | None:
        """The node class registered as ``name``."""
        return self.nodes.get(name)

    def load_entry_points(self) -> None:
        """Register every installed package of the ``dnne.nodes`` group; a failing one is reported, not fatal."""
        for entry in installed_entry_points():
            source = f"entry point {entry.name!r} ({entry.value})"
            try:
                register = entry.load()
            except Exception as error:  # a broken plugin must not break the rest
                self._plugin_failed(source, error)
                continue
            self._register_from(register, source)

    def load_plugin(self, module_name: str) -> None:
        """Import ``module_name`` (named on the command line) and call its ``register(registry)``."""
        source = f"plugin module {module_name!r}"
        try:
            module = importlib.import_module(module_name)
        except Exception as error:
            self._plugin_failed(source, error)
            return
        register = getattr(module, "register", None)
        if register is None:
            self._plugin_failed(source, AttributeError("it defines no register(registry) function"))
            return
        self._register_from(register, source)
        self.plugin_modules.append(module_name)

    def _register_from(self, register: object, source: str) -> None:
        self._current_source = source
        try:
            register(self)  # type: ignore[operator]
        except PluginCollision:
            raise
        except Exception as error:
            self._plugin_failed(source, error)
        finally:
            self._current_source = "code"

    def _plugin_failed(self, source: str, error: BaseException) -> None:
        message = f"{source} failed to load: {type(error).__name__}: {error}"
        self.plugin_errors.append(message)
        log.warning(message)


def default_registry(plugins: list[str] | tuple[str, ...] = ()) -> NodeRegistry:
    """A registry with every installed node package and the named plugin modules."""
    registry = NodeRegistry()
    registry.load_entry_points()
    for module in plugins:
        registry.load_plugin(module)
    return registry
