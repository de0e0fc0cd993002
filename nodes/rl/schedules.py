"""Learning-rate schedules for PPO: constant, linear decay, and rl_games' KL-adaptive rule."""
from __future__ import annotations

from typing import Any

SCHEDULES = ("constant", "linear", "adaptive")


class LRSchedule:
    """A learning rate updated once per PPO update.

    Args:
        kind: ``"constant"``, ``"linear"`` or ``"adaptive"``.
        base_lr: the starting learning rate.
        total_updates: updates over which ``linear`` decays to ``min_lr``; needed only when ``step`` gets no
            ``progress``.
        kl_threshold: the KL the ``adaptive`` schedule aims at.
        min_lr: lower bound (the linear floor, and the adaptive minimum).
        max_lr: upper bound of the adaptive schedule.
    """

    def __init__(
        self,
        kind: str,
        base_lr: float,
        total_updates: int | None = None,
        kl_threshold: float = 0.008,
        min_lr: float | None = None,
        max_lr: float = 1e-2,
    ) -> None:
        if kind not in SCHEDULES:
            raise ValueError(f"unknown lr schedule {kind!r}; valid names: {', '.join(SCHEDULES)}")
        self.kind = kind
        self.base_lr = base_lr
        self.total_updates = total_updates
        self.kl_threshold = kl_threshold
        # rl_games keeps the adaptive rate in [1e-6, 1e-2]; linear decays all the way to 0 as CleanRL does.
        self.min_lr = min_lr if min_lr is not None else (1e-6 if kind == "adaptive" else 0.0)
        self.max_lr = max_lr
        self.lr = base_lr
        self.updates = 0

    def step(self, kl: float = 0.0, progress: float | None = None) -> float:
        """Advance one update and return the new learning rate.

        Args:
            kl: the mean approximate KL of the update just done (used by ``adaptive``).
            progress: fraction of training done in ``[0, 1]`` (used by ``linear``); defaults to
                ``updates / total_updates``.

        Returns:
            The learning rate for the next update.
        """
        self.updates += 1
        if self.kind == "linear":
            if progress is None:
                if not self.total_updates:
                    raise ValueError("the linear lr schedule needs total_updates or an explicit progress")
                progress = self.updates / self.total_updates
            self.lr = max(self.base_lr * (1.0 - min(max(progress, 0.0), 1.0)), self.min_lr)
        elif self.kind == "adaptive":
            if kl > 2.0 * self.kl_threshold:
                self.lr = max(self.lr / 1.5, self.min_lr)
            elif kl < 0.5 * self.kl_threshold:
                self.lr = min(self.lr * 1.5, self.max_lr)
        return self.lr

    def state_dict(self) -> dict[str, Any]:
        """Return the schedule's state for a checkpoint."""
        return {"kind": self.kind, "base_lr": self.base_lr, "lr": self.lr, "updates": self.updates}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the state saved by ``state_dict``.

        Raises:
            ValueError: the checkpoint was written by a different kind of schedule.
        """
        if state["kind"] != self.kind:
            raise ValueError(f"checkpoint holds a {state['kind']!r} lr schedule, this one is {self.kind!r}")
        self.base_lr = float(state["base_lr"])
        self.lr = float(state["lr"])
        self.updates = int(state["updates"])


def make_schedule(
    name: str, base_lr: float, total_updates: int | None = None, kl_threshold: float = 0.008
) -> LRSchedule:
    """Build a schedule by name (``constant``, ``linear`` or ``adaptive``); see ``LRSchedule``."""
    return LRSchedule(name, base_lr, total_updates=total_updates, kl_threshold=kl_threshold)
