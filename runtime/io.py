"""A node's connections: input slots that join messages into firings, and output fan-out."""
from __future__ import annotations

import asyncio
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, NamedTuple

from .channel import Activity, Channel, Inbox, LocalChannel, Message
from .firing import deliver, fire_fused, fusable_consumer
from .firing_rules import AlignmentError, RuleJoin
from .ports import Input, Output
from .types import identity

__all__ = ["AlignmentError", "Direct", "Firing", "InputSlot", "Link", "NodeIO"]


def _source_order(source: str | None) -> tuple[bool, str]:
    """Unsourced messages first, then sources by name."""
    return source is not None, source or ""


def _misaligned(node_id: str, stamp_port: str, stamp: int, port: Input, raw: int, normalized: int) -> str:
    """What an ``AlignmentError`` says: the two inputs whose messages are out of step."""
    return (f"node {node_id!r}: input {stamp_port!r} holds step {stamp} but input {port.name!r} holds step "
            f"{normalized} (stamp {raw}, offset {port.offset}); their messages are out of step")


@dataclass(slots=True)
class Firing:
    """One complete set of inputs.

    Args:
        values: the input values by port name (config inputs included).
        stamp: the index of the source firing the firing derives from, ``None`` when unstamped.
        source: the stream the firing belongs to, ``None`` with a single stream.
    """

    values: dict[str, Any]
    stamp: int | None = None
    source: str | None = None


@dataclass
class Link:
    """One channel feeding an input, with the converter that reads the producer's type as the input's."""

    channel: Channel
    convert: Callable[[Any], Any]
    upstream: str


class Direct(NamedTuple):
    """A link on which a message can be a node's next firing as it is (``NodeIO.direct``)."""

    slot: InputSlot
    link: Link
    unsourced: str | None
    """The source an unsourced message fires under (``InputSlot.source_of``)."""


@dataclass
class InputSlot:
    """A declared input and the links that feed it.

    ``pulled`` counts the messages in ``pending``; it is kept as it changes because the firing loop reads it for
    every message.
    """

    port: Input
    config: bool
    links: list[Link] = field(default_factory=list)
    pending: dict[str | None, deque[Message]] = field(default_factory=dict)
    value: Any = None
    has_value: bool = False
    pulled: int = 0
    limit: int = 0

    def pending_count(self) -> int:
        """Messages pulled from channels but not fired yet."""
        return self.pulled

    def exhausted(self) -> bool:
        """Every link closed and drained, and nothing pending."""
        if self.pulled:
            return False
        for link in self.links:
            if not link.channel.closed or link.channel.messages:
                return False
        return True

    def pull(self) -> None:
        """Move waiting messages into ``pending``, bounded by the channels' capacity to keep backpressure.

        Past that bound, a message whose source has nothing pending here is still taken: a link that carries
        several sources (a node serving several streams) would otherwise let messages of the sources at its head,
        waiting for their partners, hold back the one a join can fire. The bound is then the capacity plus one
        message per source.
        """
        limit = self.limit
        for link in self.links:
            channel = link.channel
            waiting = channel.messages
            while waiting and (self.pulled < limit or not self.pending.get(self.source_of(link, waiting[0]))):
                self.store(link, channel.get_nowait())

    def source_of(self, link: Link, message: Message) -> str | None:
        """The source ``message``, arriving on ``link``, is queued under (a fan-in input names unsourced ones)."""
        source = message.source
        return self.unsourced(link) if source is None else source

    def unsourced(self, link: Link) -> str | None:
        """The source an unsourced message arriving on ``link`` is queued under: the link's upstream node on a
        fan-in input, none otherwise."""
        return link.upstream if self.port.fan_in else None

    def store(self, link: Link, message: Message) -> None:
        """Queue ``message``, taken from ``link``, under its source (a fan-in input names unsourced ones)."""
        source = self.source_of(link, message)
        if link.convert is not identity or source is not message.source:
            message = Message(link.convert(message.value), message.stamp, source)
        queue = self.pending.get(source)
        if queue is None:
            queue = self.pending[source] = deque()
        queue.append(message)
        self.pulled += 1

    def take(self, queue: deque[Message]) -> Message:
        """Remove the oldest message of one of this slot's pending queues."""
        self.pulled -= 1
        return queue.popleft()


class NodeIO:
    """Joins a node's input messages into firings and fans its outputs out to subscriber channels."""

    def __init__(
        self,
        node_id: str,
        activity: Activity,
        slots: dict[str, InputSlot],
        outputs: dict[str, Output],
        subscribers: dict[str, list[tuple[Channel, str | None]]],
        merge: bool,
        rule_sizes: Callable[[], dict[str, int]] = dict,
        fires_ready: bool = False,
    ) -> None:
        self.node_id = node_id
        self.activity = activity
        self.inbox = Inbox(activity)
        self.slots = slots
        self.outputs = outputs
        self.subscribers = subscribers
        self.merge = merge
        self.streaming = [s for s in slots.values() if not s.config and s.links]
        self.configs = [s for s in slots.values() if s.config and s.links]
        self._turn = 0
        self.idle = False
        """The node's loop waits for input between firings (``fire_loop``, or ``wait_idle`` in a node's own loop)."""
        self.fusing = False
        """A producer is firing this node in its own task now (``firing.fire_fused``)."""
        self.fusable = True
        """Producers may fire it in their tasks (false for a node with stop points, or one that emits from
        ``compute`` past an output's room)."""
        self.computing = False
        """Its ``compute`` runs now (``emit`` from inside it fires no consumer)."""
        self.fires_ready = fires_ready
        """The node has its own ``run`` and fires through ``Node.fire_ready``, reading its config inputs itself."""
        self._settled: asyncio.Future[None] | None = None
        self.fused_streak = 0
        """Firings in other tasks since the last that let the event loop turn (``firing.YIELD_EVERY``)."""
        self._outputs = [channel for channels in subscribers.values() for channel, _ in channels]
        self._rules: RuleJoin | None = None
        # The join is chosen once for the node's shape instead of branching on it at every firing.
        if any(slot.port.rule is not None for slot in self.streaming):
            self._rules = RuleJoin(node_id, self.streaming, rule_sizes, self.current_configs)
            self._join = self._rule_firing
        elif merge:
            self._join: Callable[[], Firing | None] = self._merge_firing
        elif len(self.streaming) == 1:
            self._join = self._single_firing
        elif self.streaming:
            self._join = self._join_firing
        else:
            self._join = self._no_firing
        only = self.streaming[0] if len(self.streaming) == 1 and not merge and self._rules is None else None
        self.single = Direct(only, only.links[0], only.unsourced(only.links[0])) \
            if only is not None and len(only.links) == 1 else None
        """The one link of a node whose one streaming input has one link, no firing rule and no merge: the only way
        a message reaches its firings, so a message can go from the channel straight into one (``_single_firing``)."""
        if only is not None:  # unsourced messages queue first, ahead of any source (as a join takes them)
            only.pending[self.single.unsourced if self.single is not None else None] = deque()
        self.direct: dict[Channel, Direct] = {}
        """The links on which a message fired in its producer's task, with nothing waiting before it on its input,
        is the node's next firing as it is (``firing.fire_fused``): ``single``'s, and every link of a merge (a
        producer fires a merge only once its other links can bring nothing more: ``fusable_now``)."""
        if self.single is not None:
            self.direct[self.single.link.channel] = self.single
        if merge and self._rules is None:  # whose turn is next no longer matters there: the other links ended
            for slot in self.streaming:
                for link in slot.links:
                    self.direct[link.channel] = Direct(slot, link, slot.unsourced(link))
        self._waits_on = tuple(link.channel for link in only.links) if only is not None else ()
        self._lockstep = [(slot, slot.links[0].channel, slot.unsourced(slot.links[0])) for slot in self.streaming] \
            if self._join == self._join_firing and all(len(s.links) == 1 for s in self.streaming) else None
        """A join whose inputs have one link each: the slots, channels and names of unsourced messages (a fan-in
        input's upstream node) its lockstep firing reads."""
        self._others = {link.channel: ([other for other in self.streaming if other is not slot],
                                       [other.channel for other in slot.links if other is not link])
                        for slot in self.streaming for link in slot.links} if merge else {}
        """A merge's input channels, each with the other inputs' slots and the other links of its own input
        (``_alone``)."""
        for slot in slots.values():
            # Pull no more than the links could hold themselves, so backpressure reaches the producers (a window
            # input holds a window more: RuleJoin adds it at its first join).
            slot.limit = sum(link.channel.capacity for link in slot.links)
            for link in slot.links:
                link.channel.bind(self.inbox)

    async def emit(self, port: str, value: Any, stamp: int | None = None, source: str | None = None) -> None:
        """Send ``value`` on output ``port`` to every subscriber, waiting on full channels.

        A subscriber whose link routes one source only receives messages of that source.
        """
        message = Message(value, stamp, source)
        targets = self.subscribers[port]
        if self.computing or (self.fusing and not self._room_for(targets, source)):
            # from inside compute, or from a node with its own loop (``fire_ready``) fired in a producer's task
            # that would wait for room there
            await self._emit_in_firing(targets, message, source)
        elif len(targets) == 1:  # one subscriber: deliver's work without its frame and list
            channel, route = targets[0]
            if route is None or route == source:
                if (consumer := fusable_consumer(channel)) is not None:
                    await fire_fused(consumer, channel, message, self.activity)
                elif not channel.offer(message):
                    await channel.put(message, self.activity)
        elif targets:
            await deliver([(channel, message) for channel, route in targets if route is None or route == source],
                          self.activity)

    @staticmethod
    def _room_for(targets: list[tuple[Channel, str | None]], source: str | None) -> bool:
        """Whether every subscriber that takes messages of ``source`` has room for one."""
        for channel, route in targets:
            if (route is None or route == source) and channel.full:
                return False
        return True

    async def _emit_in_firing(self, targets: list[tuple[Channel, str | None]], message: Message,
                              source: str | None) -> None:
        """``emit`` from inside ``compute`` (or from ``fire_ready`` in a producer's task, where a channel is full):
        no consumer fires before the firing has sent everything, and a node a producer fires in its own task never
        blocks that task on a full output (the room ``fusable_now`` checked is one message an output): the message
        goes in past the capacity, and the node fires in its own task from then on."""
        for channel, route in targets:
            if route is None or route == source:
                if channel.offer(message):
                    continue
                if self.fusing and isinstance(channel, LocalChannel) and not channel.released:
                    self.fusable = False
                    channel.append_past_capacity(message)
                else:
                    await channel.put(message, self.activity)

    def fusable_now(self, channel: Channel) -> bool:
        """Whether a producer may fire this node in its own task now, on a message for one of its streaming inputs
        (on ``channel``): its loop waits between firings, no producer fires it already, its config inputs hold
        values, every output has room for a firing's messages, and for a merge, no other input can still bring a
        message (a producer firing a merge would otherwise take its own messages before the others' turn came)."""
        if not self.idle or self.fusing or not self.fusable or \
                (self.configs and not self.fires_ready and not self._read_configs()):
            return False
        if self.merge and not self._alone(channel):
            return False
        return self.outputs_have_room()

    def _alone(self, channel: Channel) -> bool:
        """Whether a merge's other links can bring nothing more: its other inputs exhausted, the other links of this
        input closed and drained (what this merge pulled from them is taken in the order its own task takes it)."""
        slots, siblings = self._others[channel]
        for slot in slots:
            if not slot.exhausted():
                return False
        for other in siblings:
            if not other.closed or other.messages:
                return False
        return True

    def end_fusing(self) -> None:
        """A producer's firing of this node is over (``firing.fire_fused``)."""
        self.fusing = False
        settled, self._settled = self._settled, None
        if settled is not None and not settled.done():
            settled.set_result(None)

    async def wait_idle(self, channels: tuple[Channel, ...]) -> None:
        """Wait for input between firings, as ``fire_loop`` does, in the loop of a node with its own ``run`` that
        fires through ``Node.fire_ready``: meanwhile a producer may fire the node in its task, and once awake the
        node waits for such a firing to end."""
        self.idle = True
        try:
            await self.inbox.wait(channels)
        finally:
            self.idle = False
        await self.fused_settled()

    async def fused_settled(self) -> None:
        """Wait while a producer fires this node in its own task: the node's own loop ends only after that."""
        while self.fusing:
            self._settled = asyncio.get_running_loop().create_future()
            await self._settled

    def outputs_have_room(self) -> bool:
        """Whether every output channel takes a message without waiting."""
        for channel in self._outputs:
            if channel.full:
                return False
        return True

    def close_outputs(self) -> None:
        """Tell every subscriber that this node sends nothing more."""
        for channels in self.subscribers.values():
            for channel, _ in channels:
                channel.close()

    async def next_firing(self) -> Firing | None:
        """Wait for the next complete set of inputs; ``None`` when the inputs have ended.

        Once the inputs have ended, every input channel is released, so producers still sending on an input
        that can no longer fire (the other input of a join ran out) are not blocked forever.
        """
        if self.configs and not self._read_configs() and not await self._take_configs():
            self.release_inputs()
            return None
        join = self._join
        while True:
            if self.fusing:  # a producer fires this node now: it takes the firings, in order, until it is done
                await self.fused_settled()
            firing = join()
            if firing is not None:
                return firing
            if self.ended():
                self.release_inputs()
                return None
            await self.inbox.wait(self.missing())

    def poll(self) -> Firing | None:
        """The next firing if one is complete now (``None`` otherwise, also when a config input has no value yet).

        The firing loop calls this before ``next_firing``, so a firing whose inputs are already there costs no
        coroutine and no wait.
        """
        if self.configs and not self._read_configs():
            return None
        return self._join()

    def release_inputs(self) -> None:
        """Tell every input channel that this node reads nothing more."""
        for slot in self.slots.values():
            for link in slot.links:
                link.channel.release()

    def ready(self) -> list[Firing]:
        """Every firing complete right now, without waiting (a policy server batches these)."""
        firings = []
        join = self._join
        while (firing := join()) is not None:
            firings.append(firing)
        return firings

    def _read_configs(self) -> bool:
        """Take the newest value of every config input from its channels; whether each has one."""
        complete = True
        for slot in self.configs:
            for link in slot.links:
                channel = link.channel
                while channel.messages:
                    slot.value = link.convert(channel.get_nowait().value)
                    slot.has_value = True
            complete = complete and slot.has_value
        return complete

    async def _take_configs(self) -> bool:
        while not self._read_configs():
            missing = [s for s in self.configs if not s.has_value]
            if any(s.exhausted() for s in missing):
                return False
            await self.inbox.wait(tuple(link.channel for s in missing for link in s.links))
        return True

    def current_configs(self) -> dict[str, Any]:
        """The config inputs' values as they are now, by port name (a fresh dict)."""
        values = {}
        for slot in self.configs:
            values[slot.port.name] = slot.value
        return values

    def lone_firing(self, direct: Direct, message: Message) -> tuple[dict[str, Any], int | None, str | None]:
        """The firing ``message`` makes on ``direct``'s link with nothing waiting before it on its input, as the join
        would make it: the value converted, the config inputs as they are, the stamp less the port's offset, the
        source as the join names it (and its queue made as the join makes it: queues fire in that order).

        Its values, stamp and source as a tuple, not a ``Firing``: a producer firing the node in its task
        (``firing.fire_fused``) takes them apart at once, and every message of a fused chain comes this way."""
        slot, link = direct.slot, direct.link
        source = message.source
        if source is None:
            source = direct.unsourced
        if source not in slot.pending:
            slot.pending[source] = deque()
        values = self.current_configs() if self.configs else {}
        values[slot.port.name] = message.value if link.convert is identity else link.convert(message.value)
        stamp = message.stamp
        return values, None if stamp is None else stamp - slot.port.offset, source

    def _no_firing(self) -> None:
        return None

    def _single_firing(self) -> Firing | None:
        """The join of a node with one streaming input: its oldest message of the first source that has one."""
        slot = self.streaming[0]
        single = self.single
        if single is not None and not slot.pulled:
            # One message in the channel and nothing pending: it is what the join would fire next, so it goes
            # straight into the firing.
            channel = single.link.channel
            count = len(channel.messages)
            if not count:
                return None
            if count == 1:
                return Firing(*self.lone_firing(single, channel.get_nowait()))
        slot.pull()
        if not slot.pulled:
            return None
        for queue in slot.pending.values():
            if queue:
                break
        slot.pulled -= 1
        message = queue.popleft()
        values = self.current_configs()
        values[slot.port.name] = message.value
        stamp = message.stamp
        return Firing(values, None if stamp is None else stamp - slot.port.offset, message.source)

    def _join_firing(self) -> Firing | None:
        """The join of several streaming inputs: one message of each, of one source, stamps aligned."""
        streaming = self.streaming
        if self._lockstep is not None:
            firing = self._lockstep_firing()
            if firing is not None:
                return firing
        for slot in streaming:
            slot.pull()
        for slot in streaming:
            if not slot.pulled:
                return None
        sources: Any = {source for slot in streaming for source, q in slot.pending.items() if q}
        if len(sources) > 1:
            sources = sorted(sources, key=_source_order)
        for source in sources:
            queues = []
            for slot in streaming:
                queue = slot.pending.get(source)
                if not queue:
                    queue = slot.pending.get(None)
                if not queue:
                    break
                queues.append((slot, queue))
            else:
                return self._fire(queues)
        return None

    def _lockstep_firing(self) -> Firing | None:
        """The general join's firing (and what it leaves pending and in the channels) made from the oldest message
        of each input, without queueing the messages it fires first. It applies when:

        - every input holds at least one message, pending or in its one link's channel, and at most one pending;
        - the oldest messages name at most one source (an unsourced one on a fan-in input is named by its link);
        - an input holding several (no more than it pulls) has a named source at its head, and another input holds
          exactly one message, of that source: no other source, unsourced included, can then be complete.

        A graph that moves in lockstep, such as an actor-learner loop where acting runs a step ahead of collection,
        always joins this way. The messages behind a head are then pulled, as the general join pulls them, so
        producers find the room they would find after it."""
        source: str | None = None
        anchored = False
        deep: list[InputSlot] = []
        heads: list[tuple[InputSlot, Channel, deque[Message] | None]] = []
        for slot, channel, unsourced in self._lockstep:  # type: ignore[union-attr]
            queue: deque[Message] | None = None
            held = len(channel.messages)
            if slot.pulled:  # one message pending: older than those in the channel
                if slot.pulled != 1:
                    return None
                for named, queue in slot.pending.items():
                    if queue:
                        break
                held += 1
            elif held:
                named = channel.messages[0].source
                if named is None:
                    named = unsourced
            else:
                return None
            if held == 1:
                anchored = anchored or named is not None
            elif named is None or held > slot.limit:  # a deeper message of a source could join before it
                return None
            else:
                deep.append(slot)
            if named is not None:
                if source is None:
                    source = named
                elif named != source:
                    return None
            heads.append((slot, channel, queue))
        if deep and not anchored:
            return None
        values = self.current_configs()
        stamp: int | None = None
        stamp_port = ""
        for slot, channel, queue in heads:
            port = slot.port
            if queue is not None:
                message = slot.take(queue)
                values[port.name] = message.value
            else:
                message = channel.get_nowait()
                convert = slot.links[0].convert
                values[port.name] = message.value if convert is identity else convert(message.value)
            if message.stamp is None:
                continue
            normalized = message.stamp - port.offset
            if stamp is None:
                stamp, stamp_port = normalized, port.name
            elif normalized != stamp:
                for other, _, _ in self._lockstep:  # type: ignore[union-attr]
                    other.pull()  # what the general join holds when it raises
                raise AlignmentError(_misaligned(self.node_id, stamp_port, stamp, port, message.stamp, normalized))
        for slot in deep:
            slot.pull()
        return Firing(values, stamp, source)

    def _fire(self, queues: list[tuple[InputSlot, deque[Message]]]) -> Firing:
        values = self.current_configs()
        stamp: int | None = None
        stamp_port = ""
        source: str | None = None
        for slot, queue in queues:
            message = slot.take(queue)
            values[slot.port.name] = message.value
            if message.source is not None:
                source = message.source
            if message.stamp is None:
                continue
            normalized = message.stamp - slot.port.offset
            if stamp is None:
                stamp, stamp_port = normalized, slot.port.name
            elif normalized != stamp:
                raise AlignmentError(_misaligned(self.node_id, stamp_port, stamp, slot.port, message.stamp,
                                                 normalized))
        return Firing(values, stamp, source)

    def _rule_firing(self) -> Firing | None:
        """The join of a node whose inputs declare firing rules (``dnne.runtime.firing_rules``)."""
        assert self._rules is not None
        joined = self._rules()
        return None if joined is None else Firing(*joined)

    def _merge_firing(self) -> Firing | None:
        count = len(self.streaming)
        for slot in self.streaming:
            slot.pull()
        for i in range(count):
            slot = self.streaming[(self._turn + i) % count]
            for queue in slot.pending.values():
                if queue:
                    self._turn = (self._turn + i + 1) % count
                    message = slot.take(queue)
                    values = self.current_configs()
                    values[slot.port.name] = message.value
                    stamp = None if message.stamp is None else message.stamp - slot.port.offset
                    return Firing(values, stamp, message.source)
        return None

    def ended(self) -> bool:
        """Whether no further firing can come (an input's links all closed and drained)."""
        if not self.streaming:
            return True
        if self._rules is not None:
            return self._rules.ended()
        if self.merge:
            return all(slot.exhausted() for slot in self.streaming)
        return any(slot.exhausted() for slot in self.streaming)

    def missing(self) -> tuple[Channel, ...]:
        """The channels of the inputs that hold nothing yet (what the node waits on)."""
        if self._waits_on:
            return () if self.streaming[0].pulled else self._waits_on
        if self._rules is not None:
            return self._rules.waits_on()
        return tuple(link.channel for slot in self.streaming if not slot.pending_count() for link in slot.links)

    async def config_values(self) -> dict[str, Any] | None:
        """Wait until every config input holds a value and return them; ``None`` when one ended without."""
        if not await self._take_configs():
            return None
        return self.current_configs()

    def newest(self, port: str) -> Any:
        """The newest value received so far on config input ``port`` (``None`` before the first), without
        waiting: a node that acts on whatever it holds reads it this way."""
        slot = self.slots[port]
        for link in slot.links:
            while link.channel.messages:
                slot.value = link.convert(link.channel.get_nowait().value)
                slot.has_value = True
        return slot.value
