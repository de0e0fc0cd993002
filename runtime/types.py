"""Port types: a small registry of named types, their compatibility rules and aliases."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Converter = Callable[[Any], Any]


@dataclass(frozen=True)
class Token:
    """The value a ``Trigger`` carries: a declared reason, never an untyped dict.

    Args:
        reason: why the trigger fired: ``"start"`` (a primed token), ``"transition"`` (one transition taken in),
            ``"update"`` (released after a policy update), or a reason a node package documents.
    """

    reason: str = "transition"


@dataclass(frozen=True)
class PortType:
    """A named port type.

    Args:
        name: the type name used in ``Input``/``Output`` declarations.
        doc: one line saying what travels on such a port.
        config: values are taken once and kept by the receiving node (models, env handles), not streamed.
        reads_as: conversions that let this type feed an input of another type (a structured output read as the ``Tensor`` it carries).
        crosses_processes: whether a link of this type may cross a process boundary.
    """

    name: str
    doc: str = ""
    config: bool = False
    reads_as: dict[str, Converter] = field(default_factory=dict)
    crosses_processes: bool = True


class TypeRegistry:
    """The port types one graph run knows: the generic built-ins plus what node packages register."""

    def __init__(self) -> None:
        self._types: dict[str, PortType] = {}
        self._aliases: dict[str, str] = {}
        self._sources: dict[str, str] = {}
        for port_type in BUILTIN_TYPES:
            self.register(port_type, source="dnne.runtime")

    def register(self, port_type: PortType, source: str = "") -> None:
        """Add a type; registering a different type under a taken name is an error naming both sources."""
        existing = self._types.get(port_type.name)
        if existing is not None and existing is not port_type:
            raise ValueError(
                f"port type {port_type.name!r} from {source or '?'} collides with the one from "
                f"{self._sources.get(port_type.name, '?')}"
            )
        self._types[port_type.name] = port_type
        self._sources[port_type.name] = source

    def alias(self, alias: str, name: str) -> None:
        """Let ``alias`` (for example DNNE's ``POLICY_OUTPUT``) name the registered type ``name``."""
        if name not in self._types:
            raise KeyError(f"cannot alias {alias!r} to unknown port type {name!r}")
        self._aliases[alias] = name

    def get(self, name: str) -> PortType:
        """Return the type registered under ``name`` or one of its aliases."""
        resolved = self._aliases.get(name, name)
        try:
            return self._types[resolved]
        except KeyError:
            raise KeyError(f"unknown port type {name!r}") from None

    def __contains__(self, name: str) -> bool:
        return self._aliases.get(name, name) in self._types

    def names(self) -> list[str]:
        """All registered type names, sorted."""
        return sorted(self._types)

    def converter(self, out_type: str, in_type: str) -> Converter | None:
        """How a value of ``out_type`` is read by an input of ``in_type``; ``None`` when incompatible.

        The identity converter is returned for equal types and where either side is ``Any`` (a merge node's
        output takes the type of what flows through it).
        """
        source, target = self.get(out_type), self.get(in_type)
        if source.name == target.name or "Any" in (source.name, target.name):
            return identity
        return source.reads_as.get(target.name)


def identity(value: Any) -> Any:
    """The converter of compatible types: the value as it is."""
    return value


BUILTIN_TYPES: tuple[PortType, ...] = (
    PortType("Any", "anything; an input of this type accepts every output"),
    PortType("Tensor", "a torch tensor"),
    PortType("Trigger", "a Token that lets the receiver take its next step"),
    PortType("Dict", "a flat dict of named values (losses, infos)"),
    PortType("Model", "a model as data: its architecture and weights", config=True),
    PortType("Int", "an integer"),
    PortType("Float", "a float"),
    PortType("Bool", "a boolean"),
    PortType("String", "a string"),
)
