"""``PPOTrainerNode``: collects transitions, computes GAE, runs clipped PPO updates, releases the env's trigger."""
from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import torch

from dnne.runtime.durations import parse_duration
from dnne.runtime.node import DnneLayout, Node
from dnne.runtime.ports import Input, Output, Param
from dnne.runtime.types import Token

from ..types import ActingRule, Dones, ModelSpec, PolicyOutput, PolicyWeights
from .learner import Learner
from .param_checks import trainer_problems
from .ppo import ADVANTAGE_NORMALIZATION, PPOConfig
from .reward_scaling import RewardScaler
from .schedules import SCHEDULES, LRSchedule, make_schedule
from .trajectory import Trajectory

MAX_NAN_UPDATES = 3


class PPOTrainerNode(Node):
    """The PPO learner: trajectory collection, GAE, clipped PPO updates.

    Builds its own network from the ``model`` message (architecture and initial weights) and publishes every
    version of it on ``weights`` (version 0 before the first transition), with the rule the agent acts by: in
    ``sync`` mode rollout ``r`` is acted on with version ``r`` exactly; in ``async`` mode with version
    ``r - max_staleness`` or newer. Takes in one transition per firing (the ``PolicyOutput`` for observation
    ``k`` with the reward, dones and next observation that followed) and sends one ``training_complete`` per
    transition, so the step node can step again. At a horizon end in ``sync`` mode the trigger waits for the
    update; in ``async`` mode the update runs in the learner's worker thread while acting goes on. With several env
    groups (fan-in), each keeps its own trajectory; an update uses every group's horizon.
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
    policy_outputs = Input("PolicyOutput", "the agent's decisions (or several agents', each serving some of the "
                           "groups: link the others' weights from this node's 'weights')", fan_in=True,
                           aliases=("policy_output",))
    rewards = Input("Tensor", "rewards that followed", offset=1, fan_in=True, aliases=("reward",))
    dones = Input("Dones", "episode ends that followed, with final observations", offset=1, fan_in=True,
                  aliases=("done",))
    model = Input("Model", "the agent's architecture and initial weights", reply_on="weights")

    training_complete = Output("Trigger", "one per transition taken in; after the update at a horizon end (sync)",
                               offset=1)
    loss_info = Output("Dict", "policy_loss, value_loss, entropy, approx_kl, clip_fraction, explained_variance, "
                               "learning_rate, iteration, update_time_s, lag_mean, lag_max, lag_<k>, ...")
    loss = Output("Tensor", "the total loss of the last update (DNNE's output)")
    weights = Output("PolicyWeights", "every version of the policy, for the agent (linked back on its own)")

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
    mode = Param(str, "sync", "sync (exact on-policy) or async (acting goes on while the learner updates)",
                 choices=("sync", "async"))
    max_staleness = Param(int, 1, "async: versions the acting policy may lag behind the learner", ge=1, le=100)
    lead = Param(int, 0, "async: env steps acting may run ahead of this trainer's collection (the trigger becomes "
                 "a credit: one unstamped token per transition plus this many at the start, as Sample Factory's "
                 "rollout workers fill buffers ahead of the learner); clamped to what the links can hold and below "
                 "horizon_length", ge=0,
                 le=10_000)
    vtrace_rho_clip = Param(float, 1.0, "async: truncate the importance weights of stale transitions (lag > 0) at "
                            "this (V-trace's rho-bar) and clip their PPO ratio around the update's starting policy "
                            "(decoupled PPO); null: plain GAE, ratio against the acting policy", gt=0.0, le=1e6,
                            nullable=True)
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
    reward_scaling = Param(bool, False, "divide rewards by the running std of each env's discounted return (gamma's; "
                           "CleanRL's and SB3's reward normalisation) before GAE; the logged returns stay raw")
    reward_clip = Param(float, 10.0, "reward_scaling: clip scaled rewards to [-reward_clip, reward_clip]; null: off",
                        gt=0.0, le=1e6, nullable=True)
    checkpoint_enabled = Param(bool, False, "DNNE: ask the run for checkpoints on the trigger below")
    checkpoint_trigger_type = Param(str, "epoch", "epoch (every N updates), time (every duration), best_metric",
                                    choices=("epoch", "time", "best_metric"))
    checkpoint_trigger_value = Param(str, "10", "N updates, or a duration such as 1h30m")
    device = Param(str, None, "the learner's device (cpu, cuda, cuda:1); default: the run's device", nullable=True)
    seq_length = Param(int, 16, "recurrent agents: steps per sequence chunk (truncated BPTT); minibatch_size // "
                       "seq_length chunks per minibatch", ge=1, le=1_000_000)

    @classmethod
    def check_params(cls, params: dict[str, Any], trusted: dict[str, Any]) -> list[tuple[str, str | None, str]]:
        """Checks of the params together, run by validation (``param_checks``)."""
        return trainer_problems(params, trusted.get("run"))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.learner: Learner | None = None
        self.schedule: LRSchedule | None = None
        self.rule = ActingRule()
        self.max_lag = 0
        self.trajectories: dict[str | None, Trajectory] = {}
        self.reward_scalers: dict[str | None, RewardScaler] = {}
        self.held: list[tuple[int | None, str | None]] = []
        self.backlog: dict[str | None, list[tuple[PolicyOutput, torch.Tensor, Dones, torch.Tensor]]] = {}
        self.lead_size = 0
        self.granted: dict[str | None, int] = {}
        self.iteration = 0
        self.nan_updates = 0
        self.pending: list[asyncio.Future[tuple[dict[str, float], dict[str, torch.Tensor]]]] = []
        self.executor: ThreadPoolExecutor | None = None
        self.submitted: list[Future[Any]] = []  # updates handed to the learner's thread, until they end
        self.generator = torch.Generator()
        self.generator.manual_seed(self.ctx.seed)
        self.learner_device = torch.device("cpu")
        self._last_checkpoint = (time.perf_counter(), float("-inf"))
        self._restored: dict[str, Any] | None = None

    async def setup(self) -> None:
        """Choose the learner's device; in sync mode, a graceful stop waits for the end of the current update (an
        exact-resume point)."""
        device = torch.device(self.device or self.ctx.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            self.ctx.warn(f"device {device} is not available here; the learner runs on the cpu")
            device = torch.device("cpu")
        self.learner_device = device
        if self.mode == "sync":
            self.ctx.use_stop_points()

    async def start(self) -> None:
        """Build the learner from the model message and publish its weights (the version acting starts with)."""
        assert self.io is not None
        configs = await self.io.config_values()
        if configs is None:
            return
        self._start_learning(configs["model"])
        assert self.learner is not None
        await self._publish(self.learner.weights())

    # ---- collection ---------------------------------------------------------------------------------------
    async def compute(self, states: torch.Tensor, policy_outputs: PolicyOutput, rewards: torch.Tensor,
                      dones: Dones, model: ModelSpec) -> Mapping[str, Any] | None:
        """Store one transition; at a horizon end update (or hold the trigger until every group is full)."""
        if self.pending:
            await self._publish_finished()
        source = self.source
        trajectory = self.trajectories.get(source)
        if trajectory is None:
            trajectory = self._new_trajectory(source, policy_outputs)
        if self.reward_scaling:
            rewards = self._reward_scaler(source, rewards)(rewards, dones.as_tensor())
        if self.reward_scale != 1.0:  # the trajectory stores a copy either way
            rewards = rewards * self.reward_scale
        step = (policy_outputs, rewards, dones, states)
        if trajectory.full:
            # Acting ran ahead on its lead while the other groups fill: the step opens this group's next rollout.
            self.backlog.setdefault(source, []).append(step)
            return None
        trajectory.add(*step)
        if not trajectory.full:
            if self.lead_size:
                await self._credit(source)
                return None
            return {"training_complete": Token("transition")}
        self.held.append((self.stamp, source))
        if len(self.trajectories) < self._groups() or not all(t.full for t in self.trajectories.values()):
            return None
        await self._horizon_end()
        return None

    async def _credit(self, source: str | None) -> None:
        """Async with a lead: one unstamped trigger for the transition taken in, and one more while the lead is
        not yet handed out, so acting runs ``lead`` steps ahead of collection."""
        await self.emit("training_complete", Token("transition"), None, source)
        await self._lead_more(source)

    async def _lead_more(self, source: str | None) -> None:
        """One extra trigger to ``source``'s step node while its lead is not all handed out (the lead is not kept
        in checkpoints: the tokens in the links are not either, so a resumed run hands it out again)."""
        granted = self.granted.get(source, 0)
        if granted < self.lead_size:
            self.granted[source] = granted + 1
            await self.emit("training_complete", Token("start"), None, source)

    def _lead(self) -> int:
        """``lead``, clamped so that the extra triggers never block this node and the step node at once: the
        trigger links and the links into this node together hold more than the tokens in the loop."""
        assert self.io is not None
        if not self.lead:
            return 0
        triggers = min((channel.capacity for channel, _ in self.io.subscribers["training_complete"]), default=1)
        inputs = min((link.channel.capacity for slot in self.io.streaming for link in slot.links), default=1)
        room = triggers + inputs - 1
        if self.lead > room:
            self.ctx.warn(f"lead {self.lead} is more than the links hold (capacity {triggers} on training_complete, "
                          f"{inputs} into the trainer): acting leads by {room}")
        horizon = self.horizon_length - 1
        if min(self.lead, room) > horizon:
            self.ctx.warn(f"lead {self.lead} is not below horizon_length {self.horizon_length}: acting leads by "
                          f"{horizon}")
        return min(self.lead, room, horizon)

    def _groups(self) -> int:
        assert self.io is not None
        return max(len(self.io.slots["states"].links), 1)

    def _new_trajectory(self, source: str | None, first: PolicyOutput) -> Trajectory:
        """``source``'s trajectory, made on its first transition (sized by ``first``)."""
        trajectory = Trajectory(self.horizon_length, first, self.learner_device)
        self.trajectories[source] = trajectory
        num_envs = trajectory.num_envs
        rollout = self.horizon_length * num_envs * self._groups()
        if self.minibatch_size > rollout and len(self.trajectories) == 1:
            self.ctx.warn(f"minibatch_size {self.minibatch_size} is larger than the rollout "
                          f"({self.horizon_length} steps x {num_envs} envs); clamped to {rollout}")
        return trajectory

    def _reward_scaler(self, source: str | None, rewards: torch.Tensor) -> RewardScaler:
        scaler = self.reward_scalers.get(source)
        if scaler is None:
            scaler = RewardScaler(rewards.numel(), self.gamma, self.reward_clip)
            restored = (self._restored or {}).get("reward_scalers", {})
            if source in restored:
                scaler.load_state_dict(restored[source])
            self.reward_scalers[source] = scaler
        return scaler

    def _start_learning(self, spec: ModelSpec) -> None:
        if self.learning_rate is not None and self.learning_rate != spec.learning_rate:
            self.ctx.warn(f"learning_rate {self.learning_rate} differs from the agent's {spec.learning_rate}; "
                          "the trainer's is used")
        lr = self.learning_rate if self.learning_rate is not None else spec.learning_rate
        config = PPOConfig(self.epochs, self.minibatch_size, self.clip_param, self.value_coef, self.entropy_coef,
                           self.max_grad_norm, self.clip_value_loss, self.normalize_advantage, self.target_kl,
                           self.gamma, self.lam, self.vtrace_rho_clip, self.seq_length)
        self.learner = Learner(spec, self.normalize_value, self.learner_device, lr, config, self.generator)
        self.schedule = make_schedule(self.lr_schedule, lr, self._total_updates(), self.kl_threshold)
        restored = self._restored
        if restored is not None and "optimizer" in restored:
            self.learner.load_state_dict(restored)
            self.schedule.load_state_dict(restored["schedule"])
        self.learner.version = self.iteration
        max_lag = 0 if self.mode == "sync" else self.max_staleness
        if max_lag > 1 and self.learner.network.recurrent:
            # A recurrent policy's stored states come from the acting weights; the further those lag, the further
            # the learner's rebuilt sequences drift from what was acted on.
            self.ctx.warn(f"max_staleness {max_lag} with a recurrent agent: kept at 1")
            max_lag = 1
        self.max_lag = max_lag
        if self.lead and self.mode == "sync":
            self.ctx.warn(f"lead {self.lead} is for async mode; in sync mode acting waits for every update")
        self.lead_size = self._lead() if self.mode == "async" else 0
        self.rule = ActingRule(self.iteration, self.horizon_length, max_lag)
        self.executor = ThreadPoolExecutor(1, thread_name_prefix=f"dnne-learner-{self.id}")

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
        if self.mode == "sync":
            self.ctx.leave_stop_point()  # a stop reached by another trainer meanwhile waits for this update
            stats, weights = await self._train(list(self.trajectories.values()))
            self._reset_trajectories()
            await self._after_update(stats)
            await self.ctx.stop_point()  # nothing is in flight here but the held triggers, which resume as primed
            await self._publish(weights)
            await self._release("update")
            return
        rollout = [t.copy() for t in self.trajectories.values()]
        self._reset_trajectories()  # collection goes on beside the update, on copies
        while len(self.pending) >= self.max_lag:
            await self._finish(self.pending.pop(0))
        self.pending.append(self._submit(rollout))
        await self._release("update")
        await self._take_backlog()

    async def _take_backlog(self) -> None:
        """Start the new rollouts with the steps that arrived while their groups waited for the others, crediting
        each as it is taken (the lead is below the horizon, so they never fill a rollout)."""
        backlog, self.backlog = self.backlog, {}
        for source, steps in backlog.items():
            for step in steps:
                self.trajectories[source].add(*step)
                await self._credit(source)

    def _submit(self, rollout: list[Trajectory]) -> asyncio.Future[tuple[dict[str, float], dict[str, torch.Tensor]]]:
        """Queue an update on the learner's thread: updates run one after another, beside the event loop."""
        assert self.learner is not None and self.executor is not None
        work = self.executor.submit(self.learner.train, rollout, self.rule.max_lag)
        self.submitted = [update for update in self.submitted if not update.done()] + [work]
        return asyncio.wrap_future(work)

    def _updating(self) -> bool:
        """Whether an update is queued or running on the learner's thread: its executor future is done only once
        the thread has returned from it, or when it was cancelled before it started (unlike the asyncio future
        the loop awaits, which a cancelled await marks done while the thread still runs)."""
        return any(not update.done() for update in self.submitted)

    async def _train(self, rollout: list[Trajectory]) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
        future = self._submit(rollout)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            await asyncio.wait([future])  # never leave a thread writing the weights behind a stop
            raise

    async def _finish(self, future: asyncio.Future[tuple[dict[str, float], dict[str, torch.Tensor]]]) -> None:
        stats, weights = await future
        await self._after_update(stats)
        await self._publish(weights)

    async def _publish_finished(self) -> None:
        """Publish the async updates that have finished, so acting picks up each version as soon as it exists."""
        while self.pending and self.pending[0].done():
            await self._finish(self.pending.pop(0))

    async def _publish(self, weights: dict[str, torch.Tensor]) -> None:
        await self.emit("weights", PolicyWeights(self.iteration, weights, self.rule))

    async def _after_update(self, stats: dict[str, float]) -> None:
        assert self.learner is not None and self.schedule is not None
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
        for group in self.learner.optimizer.param_groups:
            group["lr"] = lr
        info = dict(stats, learning_rate=lr, iteration=self.iteration, policy_version=self.iteration)
        self.ctx.counters.add("iterations")
        self.ctx.log_metrics(info)
        total = stats["policy_loss"] + self.value_coef * stats["value_loss"] - self.entropy_coef * stats["entropy"]
        await self.emit("loss_info", info)
        await self.emit("loss", torch.tensor(total))
        self._maybe_checkpoint()

    def _reset_trajectories(self) -> None:
        for trajectory in self.trajectories.values():
            trajectory.reset()

    def _progress(self) -> float | None:
        """How far the run is, for the linear schedule: updates over ``max_iterations``, else env steps over
        ``max_steps``. In sync mode the env steps are the run's counter (acting waits for the update, so it holds
        exactly the steps trained on); in async mode acting goes on during the update and the counter at its end
        depends on timing, so the steps are those of the rollouts trained on (updates x rollout size), which makes
        the learning rate of every update the same from run to run."""
        if self.lr_schedule != "linear":
            return None
        settings = self.ctx.settings
        if settings.get("max_iterations"):
            return self.iteration / settings["max_iterations"]
        if self.mode == "async":
            rollout = self.horizon_length * sum(t.num_envs for t in self.trajectories.values())
            return min(self.iteration * rollout / settings["max_steps"], 1.0)
        return min(self.ctx.counters.get("env_steps", 0) / settings["max_steps"], 1.0)

    async def _release(self, reason: str) -> None:
        held, self.held = self.held, []
        for stamp, source in held:
            await self.emit("training_complete", Token(reason), None if stamp is None or self.lead_size else stamp + 1,
                            source)
            await self._lead_more(source)

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
        """Finish the updates still running (no thread outlives the run) and apply them, so the final checkpoint
        holds their weights and counts."""
        pending, self.pending = self.pending, []
        for future in pending:
            stats, _ = await future
            self.iteration += 1
            self.ctx.counters.add("iterations")
            self.ctx.log_metrics(dict(stats, iteration=self.iteration, policy_version=self.iteration))
        if self.executor is not None:
            self.executor.shutdown(wait=True)
            self.executor = None

    # ---- checkpoints --------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """The learner (network and statistics, optimizer), schedule, counters, the minibatch generator and each env
        group's reward scaler (running returns and their statistics). A
        checkpoint taken at a stop point (after an update) has no partial rollout to keep; one taken elsewhere
        resumes from the next rollout. While an update runs, the learner's part is copied on the learner's thread,
        between updates, so the update never tears it; with none running (a sync trainer's iteration ends) it is
        copied here, without the two thread switches (0.1-0.2 ms an iteration of the main graph)."""
        state: dict[str, Any] = {"iteration": self.iteration, "nan_updates": self.nan_updates,
                                 "generator": self.generator.get_state()}
        if self.learner is not None and self.schedule is not None:
            learner = self.learner
            if self.executor is not None and self._updating():
                state.update(self.executor.submit(learner.state_dict).result())
            else:
                state.update(learner.state_dict())
            state["schedule"] = self.schedule.state_dict()
        if self.reward_scalers:
            state["reward_scalers"] = {source: scaler.state_dict() for source, scaler in self.reward_scalers.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict`` (the learner once the model has arrived)."""
        self.iteration = int(state["iteration"])
        self.nan_updates = int(state["nan_updates"])
        self.generator.set_state(state["generator"])
        self._restored = state


def _finite(value: float) -> float:
    return value if value == value and abs(value) != float("inf") else 0.0
