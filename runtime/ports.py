"""Port and parameter declarations: ``Input``, ``Output`` and ``Param`` class attributes of a node."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .firing_rules import FiringRule, Window

REQUIRED: Any = object()
"""Marker default of a parameter the graph file must set."""


@dataclass
class Input:
    """A node input.

    Args:
        type: a registered port type name.
        doc: one line for ``dnne nodes`` and the docs.
        optional: the node runs without a link here; when linked, the input is required at every firing.
        fan_in: the input accepts several links; each message then carries the name of its source.
        primed: number of start tokens (``Token("start")``) the input holds, so a loop through it can start.
        offset: stamp offset: a message stamped ``k + offset`` joins a firing stamped ``k``.
        config: taken once and kept (models, env handles); ``None`` reads it from the port type.
        aliases: other spellings accepted in graph files (DNNE's ``state`` for ``states``).
        reply_to: the name of this node's output whose takers answer here: the graph builder links their reply
            output (``reply_on``) to this input when the file does not (see ``dnne.runtime.replies``). Like a
            primed input, it starts the loop it closes: an answerer replies once at its start.
        reply_on: the name of this node's output that answers the node linked to this input (once at its
            start, before it takes anything, then as it pleases).
        reads: other port types this input takes through their registered conversion (``PortType.reads_as``);
            a conversion into an input that does not list the type is refused, so it is never silent.
        rule: how many messages of this input a firing takes (``Every``, ``Window``, ``Hold`` of
            ``dnne.runtime.firing_rules``); ``None``: one message per firing, of the firing's stamp.
    """

    type: str
    doc: str = ""
    optional: bool = False
    fan_in: bool = False
    primed: int = 0
    offset: int = 0
    config: bool | None = None
    aliases: tuple[str, ...] = ()
    reply_to: str | None = None
    reply_on: str | None = None
    reads: tuple[str, ...] = ()
    rule: FiringRule | None = None
    name: str = field(default="", init=False)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @property
    def closes_loop(self) -> bool:
        """Whether a link into this input closes a feedback loop (so it does not order setup): a primed input, a
        reply input, or a ``Window`` input, whose first firing needs no message."""
        return bool(self.primed) or self.reply_to is not None or isinstance(self.rule, Window)


@dataclass
class Output:
    """A node output.

    Args:
        type: a registered port type name.
        doc: one line for ``dnne nodes`` and the docs.
        offset: added to the firing's stamp (a step node's outputs after action ``k`` carry ``k + 1``).
        aliases: other spellings accepted in graph files.
    """

    type: str
    doc: str = ""
    offset: int = 0
    aliases: tuple[str, ...] = ()
    name: str = field(default="", init=False)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name


class ParamError(ValueError):
    """A parameter value that does not fit its declaration; ``code`` is the validation error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Param:
    """A node parameter, read on the node instance as an attribute.

    Args:
        type: ``int``, ``float``, ``bool``, ``str``, ``list`` (of ints; ``"64,64"`` accepted) or ``dict``.
        default: the value when the file sets none; ``REQUIRED`` when it must be set.
        doc: one line for ``dnne nodes`` and the docs.
        ge, gt, le, lt: numeric bounds (every numeric param declares at least one).
        choices: the allowed values of a string param.
        nullable: ``None`` (JSON null) is allowed, meaning "off".
        aliases: other spellings accepted in graph files (DNNE's ``num_epochs`` for ``epochs``).
    """

    type: type
    default: Any = REQUIRED
    doc: str = ""
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    aliases: tuple[str, ...] = ()
    name: str = field(default="", init=False)

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, instance: Any, owner: type) -> Any:
        """The spec, read on the class. ``Node.__init__`` makes each param an instance attribute, which a read on
        the instance finds first; a node whose ``Node.__init__`` has not run has none."""
        if instance is None:
            return self
        raise AttributeError(f"{owner.__name__}.{self.name}: params are set by Node.__init__, which has not run")

    @property
    def required(self) -> bool:
        """Whether a graph must set this parameter."""
        return self.default is REQUIRED

    def bounds_text(self) -> str:
        """The bounds as ``[0, 1]`` / ``(0, 1)`` style text, empty when unbounded."""
        low = f"[{self.ge:g}" if self.ge is not None else f"({self.gt:g}" if self.gt is not None else "(-inf"
        high = f"{self.le:g}]" if self.le is not None else f"{self.lt:g})" if self.lt is not None else "inf)"
        return f"{low}, {high}"

    def coerce(self, value: Any) -> Any:
        """Check ``value`` against the declaration and return it in canonical form, or raise ``ParamError``."""
        if value is None:
            if self.nullable:
                return None
            raise ParamError("bad_param_type", f"null is not allowed, expected {self.type.__name__}")
        coerced = self._coerce_type(value)
        if self.type in (int, float):
            self._check_bounds(coerced)
        if self.type is list:
            for item in coerced:
                self._check_bounds(item)
        if self.choices is not None and coerced not in self.choices:
            raise ParamError(
                "value_not_in_choices", f"{value!r} is not one of {', '.join(repr(c) for c in self.choices)}"
            )
        return coerced

    def _coerce_type(self, value: Any) -> Any:
        expected = self.type.__name__
        if self.type is bool:
            if isinstance(value, bool):
                return value
        elif self.type is int:
            if isinstance(value, int) and not isinstance(value, bool):
                return value
            if isinstance(value, float) and value.is_integer() and math.isfinite(value):
                return int(value)
        elif self.type is float:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                if not math.isfinite(value):
                    raise ParamError("non_finite_value", f"{value!r} is not a finite number")
                return float(value)
        elif self.type is str:
            if isinstance(value, str):
                return value
        elif self.type is list:
            return _int_list(value)
        elif self.type is dict:
            if isinstance(value, dict):
                _check_finite(value)
                return value
        raise ParamError("bad_param_type", f"{value!r} is not of type {expected}")

    def _check_bounds(self, value: float) -> None:
        ok = (
            (self.ge is None or value >= self.ge)
            and (self.gt is None or value > self.gt)
            and (self.le is None or value <= self.le)
            and (self.lt is None or value < self.lt)
        )
        if not ok:
            raise ParamError("value_out_of_bounds", f"{value!r} is outside {self.bounds_text()}")


def _check_finite(value: Any) -> None:
    """Every float nested in ``value`` is finite (NaN and Infinity are refused everywhere)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            raise ParamError("non_finite_value", f"{item!r} is not a finite number")
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _int_list(value: Any) -> list[int]:
    items: list[Any]
    if isinstance(value, str):
        items = [part.strip() for part in value.split(",") if part.strip()]
        try:
            items = [int(part) for part in items]
        except ValueError:
            raise ParamError("bad_param_type", f"{value!r} is not a comma-separated list of integers") from None
    elif isinstance(value, list):
        items = value
    else:
        raise ParamError("bad_param_type", f"{value!r} is not a list of integers")
    if not items or not all(isinstance(i, int) and not isinstance(i, bool) for i in items):
        raise ParamError("bad_param_type", f"{value!r} is not a non-empty list of integers")
    return list(items)
