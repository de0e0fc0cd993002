"""The node API: typed ports and params as class attributes, an async ``compute`` or ``run``, a lifecycle."""
from __future__ import annotations

import inspect
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from .firing import fire_loop
from .firing_rules import defines_stamp
from .ports import REQUIRED, Input, Output, Param, ParamError

if TYPE_CHECKING:
    from .context import NodeContext
    from .io import Firing, NodeIO


@dataclass(frozen=True)
class DnneLayout:
    """How a DNNE/ComfyUI workflow file lays out a node type.

    Args:
        inputs: input socket names in DNNE's order; ``"context"`` marks a placeholder socket nothing links to.
        outputs: output socket names in DNNE's order, placeholders included.
        widgets: param names in ``widgets_values`` order.
    """

    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    widgets: tuple[str, ...] = ()


class NodeDefinitionError(TypeError):
    """A node class whose declarations are inconsistent (raised when the class is defined)."""


class Node:
    """Base class of every node.

    Declare ports and params as class attributes (``Input``, ``Output``, ``Param``). Per-message nodes implement
    ``async compute(**inputs) -> {output: value}``; sources and free-running nodes override ``run()``.
    Lifecycle: ``setup()`` in dependency order before anything runs, ``start()`` after the start barrier,
    firings, ``teardown()`` always, in reverse order. Stateful nodes implement ``state_dict`` /
    ``load_state_dict``.

    Args:
        node_id: the id of the node in its graph.
        params: param values already checked by validation (missing ones take their defaults).
        context: the node's handle on the run: seed, counters, metrics, warnings, stop requests.
    """

    category: ClassVar[str] = "misc"
    merge: ClassVar[bool] = False
    """Fire once per message on whichever input it arrives (a merge node) instead of one from each input."""
    training_only: ClassVar[bool] = False
    """Left out by ``dnne play``."""
    declares: ClassVar[tuple[str, ...]] = ()
    """The keys ``setup`` may ``declare``: validation never looks past this node for them (``wiring``)."""
    dnne: ClassVar[DnneLayout | None] = None
    input_ports: ClassVar[dict[str, Input]] = {}
    output_ports: ClassVar[dict[str, Output]] = {}
    param_specs: ClassVar[dict[str, Param]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        inputs: dict[str, Input] = {}
        outputs: dict[str, Output] = {}
        params: dict[str, Param] = {}
        for klass in reversed(cls.__mro__):
            for name, value in vars(klass).items():
                if isinstance(value, Input):
                    inputs[name] = value
                elif isinstance(value, Output):
                    outputs[name] = value
                elif isinstance(value, Param):
                    params[name] = value
        cls.input_ports, cls.output_ports, cls.param_specs = inputs, outputs, params
        _check_definition(cls)

    def __init__(self, node_id: str, params: Mapping[str, Any], context: NodeContext) -> None:
        self.id = node_id
        self.ctx = context
        self.io: NodeIO | None = None
        self.stamp: int | None = None
        self.source: str | None = None
        self.firings = 0
        # Each param an instance attribute, so a read is a plain one. Set one by one: touching the instance's __dict__
        # (vars(self).update) would make CPython keep one, and every attribute read of the node slower.
        for name, value in resolve_params(type(self), params).items():
            setattr(self, name, value)

    @classmethod
    def type_name(cls) -> str:
        """The node type name used in graph files."""
        return cls.__name__

    @classmethod
    def streams(cls, params: dict[str, Any]) -> set[str]:
        """The stream names this node, with these (validated) params, gives the messages it emits itself
        (``emit(..., source=NAME)``), so routes may name them (``streams``); default: none, its messages carry
        the streams of its inputs."""
        return set()

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The node type as data: doc, category, ports and params (used by the CLI, validator and docs)."""
        return {
            "type": cls.type_name(),
            "category": cls.category,
            "doc": (cls.__doc__ or "").strip().split("\n\n")[0],
            "merge": cls.merge,
            "training_only": cls.training_only,
            "stateful": cls.state_dict is not Node.state_dict,
            "inputs": {
                name: {
                    "type": p.type, "doc": p.doc, "optional": p.optional, "fan_in": p.fan_in,
                    "primed": p.primed, "offset": p.offset, "aliases": list(p.aliases),
                    "reply_to": p.reply_to, "reply_on": p.reply_on,
                    "rule": None if p.rule is None else str(p.rule),
                }
                for name, p in cls.input_ports.items()
            },
            "outputs": {
                name: {"type": p.type, "doc": p.doc, "offset": p.offset, "aliases": list(p.aliases)}
                for name, p in cls.output_ports.items()
            },
            "params": {
                name: {
                    "type": p.type.__name__,
                    "default": None if p.required else p.default,
                    "required": p.required,
                    "doc": p.doc,
                    "bounds": p.bounds_text() if p.type in (int, float, list) else None,
                    "choices": list(p.choices) if p.choices else None,
                    "nullable": p.nullable,
                    "aliases": list(p.aliases),
                }
                for name, p in cls.param_specs.items()
            },
        }

    def rule_sizes(self) -> dict[str, int]:
        """The size of each input's firing rule for this node (inputs without a rule left out); read at the first
        firing, after ``start()``."""
        return {name: port.rule.size(self) for name, port in self.input_ports.items() if port.rule is not None}

    def linked(self, port: str) -> bool:
        """Whether input or output ``port`` is linked in this graph."""
        return self.ctx.is_linked(port)

    async def setup(self) -> None:
        """Prepare resources; upstream nodes are already set up (read their declarations with ``upstream``)."""

    async def start(self) -> None:
        """Run once after the start barrier, before the first firing (emit config outputs here)."""

    async def compute(self, **inputs: Any) -> Mapping[str, Any] | None:
        """Handle one firing and return ``{output: value}`` (or ``None`` to send nothing)."""
        raise NotImplementedError(f"{type(self).__name__} implements neither compute() nor run()")

    async def run(self) -> None:
        """Fire ``compute`` once per complete set of inputs until the inputs end."""
        await self.start()
        cls = type(self)
        if cls.receive is Node.receive and cls.emit_all is Node.emit_all and cls.emit is Node.emit:
            await fire_loop(self)
            return
        while (firing := await self.receive()) is not None:
            outputs = await self.compute(**firing.values)
            if outputs:
                await self.emit_all(outputs, firing)

    @classmethod
    def fires_in_loop(cls) -> bool:
        """Whether ``run`` fires through ``firing.fire_loop``: the class keeps ``Node``'s own ``run``, ``receive``,
        ``emit_all`` and ``emit``, so a producer may also fire it in its own task (``firing.fire_fused``)."""
        return (cls.run is Node.run and cls.receive is Node.receive and cls.emit_all is Node.emit_all
                and cls.emit is Node.emit)

    async def fire_ready(self) -> bool:
        """For a node with its own ``run``: fire on whatever its inputs hold now, without waiting, and say whether
        it fired. A node that implements it and waits for input through ``NodeIO.wait_idle`` may also be fired in
        its producers' tasks, as a ``fire_loop`` node is (``firing.fire_fused``)."""
        raise NotImplementedError(f"{type(self).__name__} does not implement fire_ready()")

    @classmethod
    def fires_when_ready(cls) -> bool:
        """Whether the class implements ``fire_ready`` (its producers may fire it in their tasks)."""
        return cls.fire_ready is not Node.fire_ready

    async def teardown(self) -> None:
        """Release resources; always called, in reverse setup order, also after failures."""

    def state_dict(self) -> dict[str, Any] | None:
        """The node's state for a checkpoint; ``None`` for stateless nodes."""
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what ``state_dict`` returned."""

    async def receive(self) -> Firing | None:
        """Wait for the next firing and remember its stamp and source; ``None`` when the inputs ended."""
        assert self.io is not None
        firing = await self.io.next_firing()
        if firing is not None:
            self.stamp, self.source = firing.stamp, firing.source
            self.firings += 1
        return firing

    def emit(self, port: str, value: Any, stamp: int | None = None, source: str | None = None) -> Awaitable[None]:
        """Send ``value`` on output ``port`` (stamp and source given explicitly); await what it returns.

        It hands back ``NodeIO.emit``'s coroutine rather than wrapping it in one of its own: one frame less
        for every message a node sends itself.
        """
        assert self.io is not None
        return self.io.emit(port, value, stamp, source)

    async def emit_all(self, outputs: Mapping[str, Any], firing: Firing) -> None:
        """Send each output of a firing, stamped with the firing's stamp plus the output's offset."""
        for port, value in outputs.items():
            spec = self.output_ports.get(port)
            if spec is None:
                raise KeyError(f"node {self.id!r} returned unknown output {port!r}")
            stamp = None if firing.stamp is None else firing.stamp + spec.offset
            await self.emit(port, value, stamp, firing.source)

    def declare(self, key: str, value: Any) -> None:
        """Publish a value for downstream nodes to read at their setup (an env's spaces)."""
        self.ctx.declarations[key] = value

    def upstream(self, key: str, port: str) -> Any:
        """The nearest declaration ``key`` upstream of input ``port``, ``None`` when nothing declares it."""
        return self.ctx.find_upstream(key, port)


def resolve_params(cls: type[Node], given: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``given`` against the class's params and fill in defaults; raises ``ParamError`` on the first fault."""
    values: dict[str, Any] = {}
    for name, spec in cls.param_specs.items():
        if name in given:
            try:
                values[name] = spec.coerce(given[name])
            except ParamError as error:
                raise ParamError(error.code, f"{cls.type_name()}.{name}: {error}") from None
        elif spec.required:
            raise ParamError("missing_required_param", f"{cls.type_name()}.{name} must be set")
        else:
            values[name] = spec.default
    unknown = set(given) - set(cls.param_specs)
    if unknown:
        raise ParamError("unknown_param", f"{cls.type_name()} has no param {sorted(unknown)[0]!r}")
    return values


def canonical_name(ports: Mapping[str, Input | Output | Param], spelling: str) -> str | None:
    """The declared name that ``spelling`` (a name or an alias) refers to, ``None`` when unknown."""
    if spelling in ports:
        return spelling
    for name, spec in ports.items():
        if spelling in spec.aliases:
            return name
    return None


_INSTANCE_ATTRIBUTES = frozenset({"id", "ctx", "io", "stamp", "source", "firings"})


def _check_definition(cls: type[Node]) -> None:
    for kind, ports in (("input", cls.input_ports), ("output", cls.output_ports), ("param", cls.param_specs)):
        for name in ports:
            # a port or param named like a Node attribute or method would shadow it (or be shadowed) silently
            if name in _INSTANCE_ATTRIBUTES or hasattr(Node, name):
                raise NodeDefinitionError(f"{cls.__name__}: {kind} name {name!r} is taken by the Node API; "
                                          "choose another name")
    for name, spec in cls.param_specs.items():
        if inspect.getattr_static(cls, name) is not spec:
            # each param becomes an instance attribute (Node.__init__), which would hide this class's own
            raise NodeDefinitionError(f"{cls.__name__}: {name!r} is a param of a base class and an attribute of this "
                                      "one; rename one of them")
        numeric = spec.type in (int, float) or spec.type is list
        if numeric and spec.ge is None and spec.gt is None and spec.le is None and spec.lt is None:
            raise NodeDefinitionError(f"{cls.__name__}.{name}: a numeric param must declare bounds (ge/gt/le/lt)")
        if spec.default is not REQUIRED and spec.default is not None:
            try:
                spec.coerce(spec.default)
            except ParamError as error:
                raise NodeDefinitionError(f"{cls.__name__}.{name}: default {error}") from None
    taken: dict[str, str] = {}
    for kind, ports in (("input", cls.input_ports), ("output", cls.output_ports), ("param", cls.param_specs)):
        for name, spec in ports.items():
            for spelling in (name, *spec.aliases):
                key = f"{kind}:{spelling}"
                if key in taken and taken[key] != name:
                    raise NodeDefinitionError(f"{cls.__name__}: {kind} name {spelling!r} used twice")
                taken[key] = name
    for name, spec in cls.input_ports.items():
        for field_name, target in (("reply_to", spec.reply_to), ("reply_on", spec.reply_on)):
            if target is not None and target not in cls.output_ports:
                raise NodeDefinitionError(f"{cls.__name__}.{name}: {field_name} names {target!r}, which is not an "
                                          "output of this node")
    _check_rules(cls)
    layout = cls.dnne
    if layout is not None:
        for widget in layout.widgets:
            if canonical_name(cls.param_specs, widget) is None:
                raise NodeDefinitionError(f"{cls.__name__}: DNNE widget {widget!r} is not a param")


def _check_rules(cls: type[Node]) -> None:
    """Firing rules only on the stamped streaming inputs of a join that has an input telling the stamp."""
    ruled = {name: spec for name, spec in cls.input_ports.items() if spec.rule is not None}
    if not ruled:
        return
    if cls.merge:
        raise NodeDefinitionError(f"{cls.__name__}: a merge node fires once per message; firing rules are for joins")
    for name, spec in ruled.items():
        if spec.fan_in or spec.primed or spec.config or spec.reply_to or spec.reply_on:
            raise NodeDefinitionError(f"{cls.__name__}.{name}: a firing rule ({spec.rule}) takes one stream of "
                                      "stamped messages: not on a fan-in, primed, config or reply input")
        size = spec.rule.k
        if isinstance(size, str):
            param = cls.param_specs.get(size)
            low = None if param is None else param.ge if param.ge is not None else param.gt
            if param is not None and (param.type is not int or low is None or low < 1):
                raise NodeDefinitionError(f"{cls.__name__}.{name}: the firing rule {spec.rule} names a param that "
                                          "is not an int bounded below by 1 (ge=1)")
        elif not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise NodeDefinitionError(f"{cls.__name__}.{name}: the firing rule {spec.rule} needs a size of at least 1")
    if not any(defines_stamp(spec.rule) and not spec.optional and not spec.config
               for spec in cls.input_ports.values()):
        raise NodeDefinitionError(f"{cls.__name__}: a join with firing rules needs a required input without a rule "
                                  "or with Every, to tell the firing's stamp")
