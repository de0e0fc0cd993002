"""Node type discovery: the ``dnne.nodes`` entry-point group and ``--plugin`` modules."""
from __future__ import annotations

import importlib
import logging
from importlib.metadata import entry_points

from .node import Node
from .types import PortType, Token, TypeRegistry

log = logging.getLogger("dnne")

ENTRY_POINT_GROUP = "dnne.nodes"


class PluginCollision(ValueError):
    """Two packages register the same node type name."""


class NodeRegistry:
    """The node types and port types one run knows. No globals: each run may build its own.

    Node packages expose ``register(registry)`` and call ``add_node`` / ``add_type`` / ``alias_type`` on it, and
    ``add_wire_type`` for the dataclasses their ports (or declarations) carry across a process boundary.
    """

    def __init__(self) -> None:
        self.nodes: dict[str, type[Node]] = {}
        self.sources: dict[str, str] = {}
        self.types = TypeRegistry()
        self.plugin_errors: list[str] = []
        self.plugin_modules: list[str] = []
        self.wire_types: dict[str, type] = {"Token": Token}
        self._current_source = "code"

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
        for entry in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: (e.name != "builtin", e.name)):
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
