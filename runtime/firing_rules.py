"""Firing rules: how many messages of an input one firing of a join takes, by stamp.

By default a join takes one message of each streaming input, all of one stamp (after the port offsets). An input
may declare another rule, with a size ``k`` given as a number or as the name of an int param of its node (so a
graph file sets it) or of an attribute the node sets by the end of its ``start()`` (a size it learns from
upstream declarations); the size is read when the join first fires:

- ``Every(k)``: firing ``s`` takes the message stamped ``s * k``; the messages stamped in between are read and
  left out (the input samples every k-th message).
- ``Window(k)``: firing ``s`` takes the ``k`` messages stamped ``(s - 1) * k`` to ``s * k - 1``, as a tuple in
  stamp order: the window of messages that came before. Stamps count from 0, so the window of firing 0 is empty
  (and firing 0 needs nothing on this input, which therefore starts a loop through it, like a primed input).
- ``Hold(k)``: firing ``s`` takes the message stamped ``s // k``, taken at firing ``(s // k) * k`` and kept for
  the ``k`` firings of its period (a slow stream read by a fast one).

Stamps here are the stamps after the port offset. A join with rules fires at the stamp ``s`` its plain and
``Every`` inputs agree on (at least one input is one of those); a message whose stamp does not fit the firing is an
``AlignmentError`` naming the node and the port, never a silent mismatch. Rule inputs take stamped messages of one
stream: they are neither fan-in, nor config, nor primed inputs.
"""
from __future__ import annotations

from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .channel import Channel, Message
    from .io import InputSlot


@dataclass(frozen=True)
class FiringRule:
    """Base of the rules; ``k`` is the size: a positive int, or the name of a node attribute (a param) holding it."""

    k: int | str

    def size(self, node: Any) -> int:
        """The size for ``node``: ``k`` itself, or the value of the node's attribute it names."""
        value = getattr(node, self.k, None) if isinstance(self.k, str) else self.k
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{self}: the size must be an int of at least 1, got {value!r}")
        return value

    def __str__(self) -> str:
        return f"{type(self).__name__}({self.k!r})"


class Every(FiringRule):
    """Firing ``s`` takes the message stamped ``s * k``; those stamped in between are left out."""


class Window(FiringRule):
    """Firing ``s`` takes the ``k`` messages stamped ``(s - 1) * k`` .. ``s * k - 1`` (none for firing 0)."""


class Hold(FiringRule):
    """Firing ``s`` takes the message stamped ``s // k``, kept for the ``k`` firings of its period."""


def defines_stamp(rule: FiringRule | None) -> bool:
    """Whether an input with ``rule`` tells the firing's stamp (a plain or ``Every`` input does)."""
    return rule is None or isinstance(rule, Every)


class AlignmentError(RuntimeError):
    """Messages joined into one firing derive from different source firings (their stamps differ)."""


class RuleJoin:
    """The join of a node whose inputs declare firing rules (see the module doc).

    Args:
        node_id: the node's id, for errors.
        slots: the node's linked streaming input slots.
        sizes: returns each rule input's port name -> its size; called once, at the first join (after the node's
            ``start()``).
        config_values: the node's config input values (taken before each join).
    """

    def __init__(self, node_id: str, slots: list[InputSlot], sizes: Callable[[], Mapping[str, int]],
                 config_values: Callable[[], dict[str, Any]]) -> None:
        self.node_id = node_id
        self.slots = slots
        self.resolve_sizes = sizes
        self.sizes: dict[str, int] = {}
        self.config_values = config_values
        self.blocked: list[InputSlot] = []
        self._held: dict[str, tuple[int, Any]] = {}

    def __call__(self) -> tuple[dict[str, Any], int, str | None] | None:
        """The next firing's values, stamp and source if every input holds its part of it now, else ``None``
        (``blocked`` then names the inputs that lack)."""
        if not self.sizes:
            self._size()
        self.blocked = []
        for slot in self.slots:
            # Every input takes what it can hold now, so a producer waiting to send on one is not held up while
            # the join waits on another.
            slot.pull()
        stamp, stamp_port = self._stamp()
        if stamp is None:
            return None
        counts: dict[str, int | None] = {}
        for slot in self.slots:
            rule = slot.port.rule
            if defines_stamp(rule):
                counts[slot.port.name] = 1
            elif isinstance(rule, Window):
                counts[slot.port.name] = self._window(slot, stamp, stamp_port)
            else:
                counts[slot.port.name] = self._hold(slot, stamp, stamp_port)
        if self.blocked:
            return None
        values = self.config_values()
        source: str | None = None
        for slot in self.slots:
            name = slot.port.name
            count = counts[name]
            assert count is not None
            taken = [slot.take(_queue(slot, self.node_id)) for _ in range(count)]
            for message in taken:
                if message.source is not None:
                    source = message.source
            if defines_stamp(slot.port.rule):
                values[name] = taken[0].value
            elif isinstance(slot.port.rule, Window):
                values[name] = tuple(message.value for message in taken)
            else:
                if taken:
                    self._held[name] = (stamp // self.sizes[name], taken[0].value)
                values[name] = self._held[name][1]
        return values, stamp, source

    def _size(self) -> None:
        try:
            self.sizes = dict(self.resolve_sizes())
        except ValueError as error:
            raise ValueError(f"node {self.node_id!r}: {error}") from None
        for slot in self.slots:
            if isinstance(slot.port.rule, Window):
                # A window needs k messages pending at once: room for them beyond what the links hold.
                slot.limit += self.sizes[slot.port.name] - 1

    def waits_on(self) -> tuple[Channel, ...]:
        """The channels of the inputs the last join lacked."""
        return tuple(link.channel for slot in self.blocked for link in slot.links)

    def ended(self) -> bool:
        """Whether an input the last join lacked can never deliver again (its links closed and drained)."""
        return any(all(link.channel.closed and not len(link.channel) for link in slot.links)
                   for slot in self.blocked)

    def _stamp(self) -> tuple[int | None, str]:
        """The stamp the inputs that define it agree on; ``None`` when one of them holds nothing yet."""
        stamp: int | None = None
        stamp_port = ""
        for slot in self.slots:
            rule = slot.port.rule
            if not defines_stamp(rule):
                continue
            message = self._head(slot)
            if message is None:
                self.blocked.append(slot)
                continue
            normalized = self._normalized(slot, message)
            if rule is not None:
                normalized //= self.sizes[slot.port.name]
            if stamp is None:
                stamp, stamp_port = normalized, slot.port.name
            elif normalized != stamp:
                raise AlignmentError(
                    f"node {self.node_id!r}: input {stamp_port!r} holds step {stamp} but input {slot.port.name!r} "
                    f"holds step {normalized} (stamp {message.stamp}, offset {slot.port.offset}, rule "
                    f"{rule or 'one message'}); their messages are out of step")
        return (None, "") if self.blocked else (stamp, stamp_port)

    def _head(self, slot: InputSlot) -> Message | None:
        """The oldest message of a stamp-defining input; an ``Every`` input first leaves out those in between."""
        rule = slot.port.rule
        while True:
            slot.pull()
            if not slot.pulled:
                return None
            queue = _queue(slot, self.node_id)
            message = queue[0]
            if not isinstance(rule, Every) or self._normalized(slot, message) % self.sizes[slot.port.name] == 0:
                return message
            slot.take(queue)

    def _window(self, slot: InputSlot, stamp: int, stamp_port: str) -> int | None:
        """How many messages the window of firing ``stamp`` takes; ``None`` while some are still to come."""
        k = self.sizes[slot.port.name]
        first, end = max(0, (stamp - 1) * k), stamp * k
        slot.pull()
        queue = _queue(slot, self.node_id) if slot.pulled else deque()
        for index, message in enumerate(queue):
            if index == end - first:
                break
            got = self._normalized(slot, message)
            if got != first + index:
                raise AlignmentError(
                    f"node {self.node_id!r}: input {stamp_port!r} holds step {stamp}, so input {slot.port.name!r} "
                    f"({slot.port.rule}) needs the messages stamped {first} to {end - 1} after its offset "
                    f"{slot.port.offset}, but holds one stamped {got} where {first + index} belongs")
        if len(queue) < end - first:
            self.blocked.append(slot)
            return None
        return end - first

    def _hold(self, slot: InputSlot, stamp: int, stamp_port: str) -> int | None:
        """1 when firing ``stamp`` starts a new period (0 when it keeps the held message); ``None`` while it is to come."""
        name = slot.port.name
        k = self.sizes[name]
        period = stamp // k
        held = self._held.get(name)
        if held is not None and held[0] == period:
            return 0
        if stamp % k:
            raise AlignmentError(
                f"node {self.node_id!r}: input {stamp_port!r} holds step {stamp}, which needs the message of input "
                f"{name!r} ({slot.port.rule}) stamped {period}, taken at step {period * k}; but that step never "
                f"fired (the input holds {'nothing' if held is None else f'the one stamped {held[0]}'})")
        slot.pull()
        if not slot.pulled:
            self.blocked.append(slot)
            return None
        message = _queue(slot, self.node_id)[0]
        got = self._normalized(slot, message)
        if got != period:
            raise AlignmentError(
                f"node {self.node_id!r}: input {stamp_port!r} holds step {stamp}, so input {name!r} "
                f"({slot.port.rule}) needs its message stamped {period} after its offset {slot.port.offset}, "
                f"but holds one stamped {got}")
        return 1

    def _normalized(self, slot: InputSlot, message: Message) -> int:
        if message.stamp is None:
            raise AlignmentError(f"node {self.node_id!r}: input {slot.port.name!r} declares a firing rule "
                                 f"({slot.port.rule or 'joined with one'}) and needs stamped messages; got one "
                                 "without a stamp")
        return message.stamp - slot.port.offset


def _queue(slot: InputSlot, node_id: str) -> deque[Message]:
    """The one pending queue of a rule join's input that holds messages (rule joins take one stream)."""
    found: deque[Message] | None = None
    for queue in slot.pending.values():
        if queue:
            if found is not None:
                raise AlignmentError(f"node {node_id!r}: input {slot.port.name!r} holds messages of several "
                                     "streams; a node with firing rules joins one stream")
            found = queue
    assert found is not None
    return found
