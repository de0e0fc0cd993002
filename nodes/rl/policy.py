"""``SharedPolicy``: the value on a ``Model`` link: the actor-critic, its version, and the sync gate."""
from __future__ import annotations

from collections.abc import Callable

from .actor_critic import ActorCritic


class SharedPolicy:
    """The agent's model as shared with its trainer (same process, by reference).

    In sync mode the trainer sets ``horizon``; the agent then acts on observation ``k`` only once ``version``
    reaches ``base_version + k // horizon`` (per stream; ``base_version`` is the version a resumed run starts
    from), so a rollout's first action comes from the updated weights and the
    agent never acts during an update.

    Args:
        model: the actor-critic.
        learning_rate: the agent's learning rate, the trainer's fallback.
    """

    def __init__(self, model: ActorCritic, learning_rate: float) -> None:
        self.model = model
        self.learning_rate = learning_rate
        self.version = 0
        self.base_version = 0
        self.horizon: int | None = None
        self.listeners: list[Callable[[], None]] = []

    def required_version(self, stamp: int | None) -> int:
        """The version that must act on observation ``stamp`` (0 when not gated)."""
        if self.horizon is None or stamp is None:
            return 0
        return self.base_version + stamp // self.horizon

    def may_act(self, stamp: int | None) -> bool:
        """Whether the current weights may act on observation ``stamp``."""
        return self.version >= self.required_version(stamp)

    def publish(self, version: int) -> None:
        """Announce that the weights now are ``version`` and wake the listeners (the agent's inbox)."""
        self.version = version
        for listener in self.listeners:
            listener()
