"""``LoopTurns``: a watching thread sees a blocked loop and the node that blocks it."""
from __future__ import annotations

import asyncio
import threading
import time

from dnne.runtime.loop_turns import LoopTurns
from dnne.runtime.node import Node


class Blocker(Node):
    """A node whose code holds the loop in a synchronous sleep (built bare: only its id matters here)."""

    def __init__(self, node_id: str) -> None:
        self.id = node_id

    def hold(self, seconds: float) -> None:
        """Block the calling thread."""
        time.sleep(seconds)


def test_a_turning_loop_is_not_blocked() -> None:
    """While the loop runs callbacks, the time since its last turn stays near the probe interval."""

    async def main() -> float:
        turns = LoopTurns(asyncio.get_running_loop())
        worst = 0.0
        for _ in range(20):
            await asyncio.to_thread(turns.probe)
            await asyncio.sleep(0.01)
            worst = max(worst, turns.blocked_s(time.monotonic()))
        return worst

    assert asyncio.run(main()) < 0.5


def test_a_blocked_loop_is_seen_and_its_node_named() -> None:
    """A node sleeping synchronously on the loop's thread: the watcher sees the time since the last turn grow,
    and ``describe`` names the node and its method."""
    seen: dict[str, object] = {}

    def watch(turns: LoopTurns, started: threading.Event) -> None:
        started.wait()
        turns.probe()
        time.sleep(0.6)
        seen["blocked_s"] = turns.blocked_s(time.monotonic())
        seen["described"] = turns.describe()

    async def main() -> None:
        turns = LoopTurns(asyncio.get_running_loop())
        started = threading.Event()
        thread = threading.Thread(target=watch, args=(turns, started))
        thread.start()
        await asyncio.sleep(0)
        started.set()
        Blocker("sim").hold(1.0)
        thread.join()

    asyncio.run(main())
    node_id, description = seen["described"]  # type: ignore[misc]
    assert seen["blocked_s"] >= 0.5  # type: ignore[operator]
    assert node_id == "sim" and "'sim'" in description and "in hold" in description


def test_outside_any_node_says_so() -> None:
    """Code that is not a node's is described as such, with its place."""
    result: list[tuple[str | None, str]] = []

    async def main() -> None:
        turns = LoopTurns(asyncio.get_running_loop())
        thread = threading.Thread(target=lambda: (time.sleep(0.2), result.append(turns.describe())))
        thread.start()
        time.sleep(0.5)  # noqa: ASYNC251  (the loop must be busy outside any node)
        thread.join()

    asyncio.run(main())
    assert result[0][0] is None and result[0][1].startswith("code outside any node is running, now at ")
