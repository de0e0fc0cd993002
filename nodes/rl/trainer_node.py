"""``PPOTrainerNode``: collects transitions, computes GAE, runs clipped PPO updates, releases the env's trigger."""
from __future__ import annotations

import asyncio
import copy
import time
from collections.abc import Mapping
from typing import Any

import torch

from dnne.runtime.durations import parse_duration
from dnne.runtime.node import DnneLayout, Node
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.types import Token

from ..eager_adam import EagerAdam
from ..types import Dones, PolicyOutput
from .actor_critic import ActorCritic
from .normalizer import RunningMeanStd
from .policy import SharedPolicy
from .ppo import ADVANTAGE_NORMALIZATION, PPOConfig, PPOUpdate
from .rollout import RolloutBuffer
from .schedules import SCHEDULES, LRSchedule, make_schedule

MAX_NAN_UPDATES = 3


class PPOTrainerNode(Node):
    """The PPO learner: trajectory collection, GAE, clipped PPO updates.

    Takes in one transition per firing (the ``PolicyOutput`` for observation ``k`` with the reward, dones and
    next observation that followed) and sends one ``training_complete`` per transition, so the step node can step
    again. At a horizon end in ``sync`` mode the trigger waits for the update and the agent's next action comes
    from the new weights; in ``async`` mode the update runs in a worker thread while acting goes on with the
    previous weights, swapped in at a later horizon boundary (at most ``max_staleness`` updates behind).
    With several env groups (fan-in), each keeps its own trajectory; an update uses every group's horizon.
    """

    category = "RL/PPO"
    training_only = True
    dnne = DnneLayout(
        inputs=("state", "policy_output", "reward", "done", "model"),
        outputs=("loss", "training_complete"),
        widgets=("horizon_length", "epochs", "minibatch_size", "gamma", "lam", "clip_param", "value_coef",
                 "entropy_coef", "learning_rate", "max_grad_norm", "checkpoint_enabled", "checkpoint_trigger_type",
                 "checkpoint_trigger_value"),
    )

    states = Input("Tensor", "observations after the step (bootstrap at the horizon end)", offset=1, fan_in=True,
                   aliases=("state",))
    policy_outputs = Input("PolicyOutput", "the agent's decisions", aliases=("policy_output",))
    rewards = Input("Tensor", "rewards that followed", offset=1, fan_in=True, aliases=("reward",))
    dones = Input("Dones", "episode ends that followed, with final observations", offset=1, fan_in=True,
                  aliases=("done",))
    model = Input("Model", "the agent's actor-critic")

    training_complete = Output("Trigger", "one per transition taken in; after the update at a horizon end (sync)",
                               offset=1)
    loss_info = Output("Dict", "policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance, "
                               "learning_rate, iteration, update_time_s, staleness, ...")
    loss = Output("Tensor", "the total loss of the last update (DNNE's output)")

    horizon_length = Param(int, 2048, "steps per env before an update", ge=1, le=1_000_000)
    epochs = Param(int, 10, "PPO epochs per update", ge=1, le=10_000, aliases=("num_epochs",))
    minibatch_size = Param(int, 64, "samples (env x time) per gradient step; clamped to the rollout", ge=1,
                           le=1 << 30)
    learning_rate = Param(float, None, "optimizer learning rate; default: the agent's (3e-4)", gt=0.0, le=1.0,
                          nullable=True)
    gamma = Param(float, 0.99, "discount factor", ge=0.0, le=1.0)
    lam = Param(float, 0.95, "GAE lambda", ge=0.0, le=1.0, aliases=("gae_lambda",))
    clip_param = Param(float, 0.2, "PPO clipping epsilon", gt=0.0, lt=1.0)
    value_coef = Param(float, 0.5, "value loss coefficient", ge=0.0, le=1e4)
    entropy_coef = Param(float, 0.01, "entropy bonus coefficient", ge=0.0, le=1e4)
    max_grad_norm = Param(float, 0.5, "gradient norm clip; null disables", gt=0.0, le=1e6, nullable=True)
    mode = Param(str, "sync", "sync (exact on-policy) or async (update in a worker thread)",
                 choices=("sync", "async"))
    max_staleness = Param(int, 1, "async: updates the acting policy may lag behind", ge=1, le=100)
    target_kl = Param(float, None, "stop an update early past this approximate KL; null: off", gt=0.0, le=100.0,
                      nullable=True)
    lr_schedule = Param(str, "constant", "constant, linear (to 0 at max_steps) or adaptive (rl_games, KL)",
                        choices=SCHEDULES)
    kl_threshold = Param(float, 0.008, "adaptive schedule's KL target", gt=0.0, le=100.0)
    clip_value_loss = Param(bool, False, "clip the value loss around the old values")
    normalize_advantage = Param(str, "minibatch", "minibatch (SB3, CleanRL), batch or none",
                                choices=ADVANTAGE_NORMALIZATION)
    normalize_value = Param(bool, False, "train the critic on running-normalised returns")
    reward_scale = Param(float, 1.0, "multiply rewards by this before GAE", gt=0.0, le=1e6)
    checkpoint_enabled = Param(bool, False, "DNNE: ask the run for checkpoints on the trigger below")
    checkpoint_trigger_type = Param(str, "epoch", "epoch (every N updates), time (every duration), best_metric",
                                    choices=("epoch", "time", "best_metric"))
    checkpoint_trigger_value = Param(str, "10", "N updates, or a duration such as 1h30m")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy: SharedPolicy | None = None
        self.learner: ActorCritic | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.updater: PPOUpdate | None = None
        self.schedule: LRSchedule | None = None
        self.buffers: dict[str | None, RolloutBuffer] = {}
        self.last_states: dict[str | None, torch.Tensor] = {}
        self.held: list[tuple[int | None, str | None]] = []
        self.iteration = 0
        self.nan_updates = 0
        self.pending: list[asyncio.Future[dict[str, float]]] = []
        self.generator = torch.Generator()
        self.generator.manual_seed(self.ctx.seed)
        self._last_checkpoint = (time.perf_counter(), float("-inf"))
        self._restored: dict[str, Any] | None = None

    async def setup(self) -> None:
        """In sync mode, a graceful stop waits for the end of the current update (an exact-resume point)."""
        if self.mode == "sync":
            self.ctx.use_stop_points()

    # ---- collection ---------------------------------------------------------------------------------------
    async def compute(self, states: torch.Tensor, policy_outputs: PolicyOutput, rewards: torch.Tensor,
                      dones: Dones, model: SharedPolicy) -> Mapping[str, Any] | None:
        """Store one transition; at a horizon end update (or hold the trigger until every group is full)."""
        if self.optimizer is None:
            self._start_learning(model)
        source = self.source
        buffer = self._buffer(source, policy_outputs)
        acting = model.model
        next_value = torch.zeros_like(policy_outputs.value)
        truncated = dones.truncated & ~dones.terminated
        if truncated.any():
            final = dones.final_observations[truncated].to(next_value.device, torch.float32)
            next_value[truncated] = acting.value(acting.normalize_obs(final))
        buffer.add(policy_outputs.observation, policy_outputs.action, policy_outputs.log_prob, policy_outputs.value,
                   rewards.to(next_value.device, torch.float32) * self.reward_scale, dones.terminated,
                   dones.truncated, next_value)
        if not buffer.full:
            return {"training_complete": Token("transition")}
        self.last_states[source] = states
        self.held.append((self.stamp, source))
        if len(self.buffers) < self._groups() or not all(b.full for b in self.buffers.values()):
            return None
        await self._horizon_end()
        return None

    def _groups(self) -> int:
        assert self.io is not None
        return max(len(self.io.slots["states"].links), 1)

    def _buffer(self, source: str | None, first: PolicyOutput) -> RolloutBuffer:
        buffer = self.buffers.get(source)
        if buffer is None:
            action = first.action
            buffer = RolloutBuffer(self.horizon_length, action.shape[0], tuple(first.observation.shape[1:]),
                                   tuple(action.shape[1:]), action.dtype, first.value.device)
            self.buffers[source] = buffer
            rollout = self.horizon_length * action.shape[0] * self._groups()
            if self.minibatch_size > rollout and len(self.buffers) == 1:
                self.ctx.warn(f"minibatch_size {self.minibatch_size} is larger than the rollout "
                              f"({self.horizon_length} steps x {action.shape[0]} envs); clamped to {rollout}")
        return buffer

    def _start_learning(self, policy: SharedPolicy) -> None:
        self.policy = policy
        acting = policy.model
        if self.normalize_value and acting.value_normalizer is None:
            acting.value_normalizer = RunningMeanStd((), clip=None).to(next(acting.parameters()).device)
        if self.learning_rate is not None and self.learning_rate != policy.learning_rate:
            self.ctx.warn(f"learning_rate {self.learning_rate} differs from the agent's {policy.learning_rate}; "
                          "the trainer's is used")
        lr = self.learning_rate if self.learning_rate is not None else policy.learning_rate
        self.learner = copy.deepcopy(acting) if self.mode == "async" else acting
        self.optimizer = EagerAdam(self.learner.parameters(), lr=lr, eps=1e-5)
        config = PPOConfig(self.epochs, self.minibatch_size, self.clip_param, self.value_coef, self.entropy_coef,
                           self.max_grad_norm, self.clip_value_loss, self.normalize_advantage, self.target_kl,
                           self.gamma, self.lam)
        self.updater = PPOUpdate(self.learner, self.optimizer, config, self.generator)
        self.schedule = make_schedule(self.lr_schedule, lr, self._total_updates(), self.kl_threshold)
        if self.mode == "sync":
            policy.horizon = self.horizon_length
        restored = self._restored
        if restored is not None and "optimizer" in restored:
            self.optimizer.load_state_dict(restored["optimizer"])
            self.schedule.load_state_dict(restored["schedule"])
            self.learner.load_state_dict(restored["learner"])
            # The checkpoint may have been taken between an update and its publication: the trainer's count wins.
            policy.version = policy.base_version = self.iteration

    def _total_updates(self) -> int | None:
        settings = self.ctx.settings
        if settings.get("max_iterations"):
            return int(settings["max_iterations"])
        if settings.get("max_steps"):
            return None  # derived from env count at the first update (see _progress)
        if self.lr_schedule == "linear":
            raise ValueError("lr_schedule 'linear' needs run.max_steps or run.max_iterations to know its length")
        return None

    # ---- updates ------------------------------------------------------------------------------------------
    async def _horizon_end(self) -> None:
        assert self.policy is not None and self.updater is not None
        rollout = self._finish_rollout()
        if self.mode == "sync":
            stats = await self._in_thread(rollout)
            self._reset_buffers()
            await self._after_update(stats, staleness=0)
            await self.ctx.stop_point()  # nothing is in flight here but the held triggers, which resume as primed
            self.policy.publish(self.iteration)
            await self._release("update")
            return
        self._reset_buffers()  # the async rollout is a copy: collection goes on while it trains
        while len(self.pending) >= self.max_staleness:
            stats = await self.pending.pop(0)
            await self._after_update(stats, staleness=len(self.pending) + 1)
            self._swap_weights()
        self.pending.append(asyncio.ensure_future(asyncio.to_thread(self._timed_update, rollout)))
        await self._release("update")

    def _timed_update(self, rollout: RolloutBuffer) -> dict[str, float]:
        assert self.updater is not None
        started = time.perf_counter()
        stats = self.updater.run(rollout)
        stats["update_time_s"] = time.perf_counter() - started
        return stats

    async def _in_thread(self, rollout: RolloutBuffer) -> dict[str, float]:
        assert self.updater is not None
        future = asyncio.ensure_future(asyncio.to_thread(self._timed_update, rollout))
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])  # never leave a thread writing the weights behind a stop
            raise

    def _finish_rollout(self) -> RolloutBuffer:
        """Fill the bootstrap values, then hand the rollout (all groups side by side) to the update."""
        assert self.policy is not None
        acting = self.policy.model
        for source, buffer in self.buffers.items():
            truncated = buffer.dones & ~buffer.terminated
            last = self.last_states[source].to(buffer.values.device, torch.float32)
            following = torch.cat([buffer.values[1:], acting.value(acting.normalize_obs(last))[None]])
            buffer.next_values.copy_(torch.where(truncated, buffer.next_values, following))
        buffers = list(self.buffers.values())
        if len(buffers) == 1 and self.mode == "sync":
            return buffers[0]
        merged = copy.copy(buffers[0])
        for name in ("observations", "actions", "log_probs", "values", "rewards", "terminated", "dones",
                     "next_values"):
            setattr(merged, name, torch.cat([getattr(b, name) for b in buffers], dim=1))
        merged.num_envs = sum(b.num_envs for b in buffers)
        return merged

    async def _after_update(self, stats: dict[str, float], staleness: int) -> None:
        assert self.optimizer is not None and self.schedule is not None
        self.iteration += 1
        if stats["minibatches"] == 0 and stats["nan_skipped"] > 0:
            self.nan_updates += 1
            self.ctx.warn(f"update {self.iteration} skipped: non-finite loss in all {int(stats['nan_skipped'])} "
                          f"minibatches ({self.nan_updates} in a row)")
            if self.nan_updates >= MAX_NAN_UPDATES:
                raise FloatingPointError(f"{self.nan_updates} updates in a row had non-finite losses; stopping "
                                         "with the last good checkpoint kept")
        else:
            self.nan_updates = 0
        lr = self.schedule.step(kl=_finite(stats["approx_kl"]), progress=self._progress())
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        info = dict(stats, learning_rate=lr, iteration=self.iteration, staleness=staleness,
                    policy_version=self.iteration)
        self.ctx.counters.add("iterations")
        self.ctx.log_metrics(info)
        total = stats["policy_loss"] + self.value_coef * stats["value_loss"] - self.entropy_coef * stats["entropy"]
        await self.emit("loss_info", info)
        await self.emit("loss", torch.tensor(total))
        self._maybe_checkpoint()

    def _reset_buffers(self) -> None:
        for buffer in self.buffers.values():
            buffer.reset()

    def _progress(self) -> float | None:
        if self.lr_schedule != "linear":
            return None
        settings = self.ctx.settings
        if settings.get("max_iterations"):
            return self.iteration / settings["max_iterations"]
        return min(self.ctx.counters.get("env_steps", 0) / settings["max_steps"], 1.0)

    def _swap_weights(self) -> None:
        """Copy the learner's weights into the acting model (not its input statistics, which acting owns)."""
        assert self.policy is not None and self.learner is not None
        acting = self.policy.model
        with torch.no_grad():
            for target, source in zip(acting.parameters(), self.learner.parameters()):
                target.copy_(source)
            if acting.value_normalizer is not None and self.learner.value_normalizer is not None:
                acting.value_normalizer.load_state_dict(self.learner.value_normalizer.state_dict())
        self.policy.publish(self.policy.version + 1)

    async def _release(self, reason: str) -> None:
        held, self.held = self.held, []
        for stamp, source in held:
            await self.emit("training_complete", Token(reason), None if stamp is None else stamp + 1, source)

    def _maybe_checkpoint(self) -> None:
        if not self.checkpoint_enabled:
            return
        kind, value = self.checkpoint_trigger_type, self.checkpoint_trigger_value
        last_time, last_best = self._last_checkpoint
        now = time.perf_counter()
        due = False
        if kind == "epoch":
            due = self.iteration % max(int(value), 1) == 0
        elif kind == "time":
            due = now - last_time >= parse_duration(value)
        else:
            best = self.ctx.counters.get("best_mean_return")
            due = best is not None and best > last_best
            last_best = best if due else last_best
        if due:
            self._last_checkpoint = (now, last_best)
            self.ctx.request_checkpoint(f"{kind} trigger")

    async def teardown(self) -> None:
        """Finish async updates still running (no thread outlives the run) and apply them, so the final
        checkpoint holds their weights and counts."""
        pending, self.pending = self.pending, []
        for future in pending:
            stats = await future
            self.iteration += 1
            self.ctx.counters.add("iterations")
            self.ctx.log_metrics(dict(stats, iteration=self.iteration, staleness=0, policy_version=self.iteration))
            self._swap_weights()

    # ---- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Optimizer, schedule, counters and the minibatch generator. A checkpoint taken at a stop point (after
        an update) has no partial rollout to keep; one taken elsewhere resumes from the next rollout."""
        state: dict[str, Any] = {"iteration": self.iteration, "nan_updates": self.nan_updates,
                                 "generator": self.generator.get_state()}
        if self.optimizer is not None and self.schedule is not None and self.learner is not None:
            state["optimizer"] = self.optimizer.state_dict()
            state["schedule"] = self.schedule.state_dict()
            state["learner"] = self.learner.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict`` (the optimizer once the model has arrived)."""
        self.iteration = int(state["iteration"])
        self.nan_updates = int(state["nan_updates"])
        self.generator.set_state(state["generator"])
        self._restored = state


def _finite(value: float) -> float:
    return value if value == value and abs(value) != float("inf") else 0.0
