"""Unit tests of the channel (LocalChannel: block and latest, release, close, stats) and the deadlock watchdog
(reports only an all-blocked state that lasts, and only once per episode of being stuck), each against counts done
by hand."""
from __future__ import annotations

import asyncio
import random

import pytest

from dnne.runtime.channel import Activity, Inbox, LocalChannel, Message
from dnne.runtime.watchdog import Watchdog


def msg(value: int) -> Message:
    return Message(value, value, None)


class TestLocalChannel:
    def test_fifo_and_stats(self):
        """Messages come out in order; stats count messages and the deepest the buffer got."""
        channel = LocalChannel("c", capacity=3)
        for i in range(3):
            assert channel.offer(msg(i))
        assert not channel.offer(msg(3))  # full: the caller must await put
        assert [channel.get_nowait().value for _ in range(3)] == [0, 1, 2]
        assert (channel.stats.messages, channel.stats.max_depth, channel.stats.drops) == (3, 3, 0)
        with pytest.raises(IndexError):
            channel.get_nowait()

    def test_block_waits_for_room_and_counts_the_producer_blocked(self):
        """Under block a full put waits until a get; its producer is blocked meanwhile and woken after."""

        async def scenario() -> tuple[list[int], bool, float]:
            channel = LocalChannel("c", capacity=1)
            producer = Activity("p")
            await channel.put(msg(0), producer)
            task = asyncio.create_task(channel.put(msg(1), producer))
            await asyncio.sleep(0.05)
            blocked_while_full = not task.done() and producer.blocked_on == (channel,)
            first = channel.get_nowait().value
            await task
            assert producer.blocked_on == ()
            return [first, channel.get_nowait().value], blocked_while_full, channel.stats.producer_wait_s

        values, blocked, waited = asyncio.run(scenario())
        assert values == [0, 1] and blocked and waited >= 0.04

    def test_latest_drops_the_oldest(self):
        """Under latest a full put drops the oldest message (counted) and never waits."""

        async def scenario() -> tuple[list[int], int]:
            channel = LocalChannel("c", capacity=2, policy="latest")
            for i in range(5):
                await channel.put(msg(i))
            return [channel.get_nowait().value for _ in range(len(channel))], channel.stats.drops

        assert asyncio.run(scenario()) == ([3, 4], 3)

    def test_release_drops_and_frees_blocked_producers(self):
        """release drops what waits (counted), wakes a blocked producer, and drops what is sent after."""

        async def scenario() -> tuple[int, int, bool]:
            channel = LocalChannel("c", capacity=1)
            await channel.put(msg(0))
            task = asyncio.create_task(channel.put(msg(1)))
            await asyncio.sleep(0.01)
            channel.release()
            await asyncio.wait_for(task, 1)
            await channel.put(msg(2))
            return len(channel), channel.stats.drops, channel.offer(msg(3))

        assert asyncio.run(scenario()) == (0, 3, False)

    def test_close_notifies_the_consumer(self):
        """close marks the end and wakes the consumer's inbox; messages already sent stay to be drained."""
        woken = []

        class Recorder(Inbox):
            def notify(self) -> None:
                woken.append(True)

        channel = LocalChannel("c", capacity=2)
        channel.bind(Recorder(Activity("consumer")))
        channel.offer(msg(0))
        channel.close()
        assert channel.closed and len(woken) == 2 and channel.get_nowait().value == 0

    @pytest.mark.parametrize("policy", ["block", "latest"])
    def test_full_follows_the_buffer(self, policy):
        """``full`` is, after every operation, whether a message sent now would wait: a buffer at its capacity under
        block, never under latest or once released; primed messages, sends past the capacity and takes included."""
        rng = random.Random(3)

        async def scenario() -> None:
            for capacity in (1, 2, 3):
                channel = LocalChannel("c", capacity=capacity, policy=policy)
                channel.prime(msg(-1))
                for step in range(200):
                    operation = rng.choice(("offer", "put", "past", "get", "get"))
                    if operation == "offer":
                        channel.offer(msg(step))
                    elif operation == "put" and (len(channel) < capacity or policy == "latest"):
                        await channel.put(msg(step))
                    elif operation == "past":
                        channel.append_past_capacity(msg(step))
                    elif operation == "get" and len(channel):
                        channel.get_nowait()
                    assert channel.full == (policy == "block" and len(channel) >= capacity), (capacity, step)
                channel.release()
                assert not channel.full
                channel.offer(msg(0))
                assert not channel.full

        asyncio.run(scenario())

    @pytest.mark.parametrize("capacity, policy", [(0, "block"), (1, "newest")])
    def test_bad_options_are_refused(self, capacity, policy):
        """A capacity under 1 or an unknown policy is a ValueError naming the channel."""
        with pytest.raises(ValueError, match="channel c"):
            LocalChannel("c", capacity, policy)  # type: ignore[arg-type]


class TestWatchdog:
    def run_with(self, grace_s: float, steps):
        reports: list[str] = []

        async def scenario() -> None:
            watchdog = Watchdog(grace_s, reports.append)
            a, b = Activity("a", watchdog), Activity("b", watchdog)
            channel = LocalChannel("x -> y", 1)
            watchdog.add("a")
            watchdog.add("b")
            await steps(watchdog, a, b, channel)
            watchdog.stop()

        asyncio.run(scenario())
        return reports

    def test_all_blocked_for_the_grace_is_a_deadlock(self):
        """Both live nodes blocked past the grace: one report naming what each waits on."""

        async def steps(watchdog, a, b, channel):
            a.block((channel,))
            b.block((channel,))
            await asyncio.sleep(0.15)

        (report,) = self.run_with(0.05, steps)
        assert report.startswith("deadlock") and "a waits on x -> y" in report and "b waits on x -> y" in report

    def test_a_wake_within_the_grace_is_no_deadlock(self):
        """All blocked, but one wakes before the grace ends: no report."""

        async def steps(watchdog, a, b, channel):
            a.block((channel,))
            b.block((channel,))
            await asyncio.sleep(0.02)
            b.wake()
            await asyncio.sleep(0.15)

        assert self.run_with(0.1, steps) == []

    def test_one_node_still_running_is_no_deadlock(self):
        """One of two live nodes blocked (the other computing or sleeping): never reported."""

        async def steps(watchdog, a, b, channel):
            a.block((channel,))
            await asyncio.sleep(0.15)

        assert self.run_with(0.03, steps) == []

    def test_the_last_running_node_finishing_leaves_a_deadlock(self):
        """A blocked node whose only partner finished is stuck for good: reported after the grace."""

        async def steps(watchdog, a, b, channel):
            a.block((channel,))
            watchdog.finished("b")
            await asyncio.sleep(0.15)

        assert len(self.run_with(0.03, steps)) == 1
