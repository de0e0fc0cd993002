"""``PolicyEvalNode``: evaluation during training on env instances of its own, and the best policy by evaluation
return kept in its state (``dnne play --best``)."""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import torch

from dnne.runtime.node import Node
from dnne.runtime.ports import Input, Param

from ..envs.action_transform import fit_action
from ..envs.base import BatchedEnv
from ..envs.registry import make_env
from ..envs.spaces import Box
from ..types import EnvHandle, ModelSpec, PolicyWeights
from .actor_critic import ActorCritic
from .evaluation import EvaluationResult, policy_actor, run_episodes


class PolicyEvalNode(Node):
    """Evaluates the learner's policy every ``every`` updates on ``episodes`` fresh episodes of its own env.

    Link a trainer's ``weights`` to ``weights``, the agent's ``model`` to ``model`` and the env node's
    ``env_handle`` to ``env_handle``. The node builds a second environment of the same task (``num_envs`` envs,
    reset with ``seed`` at every evaluation, so every version is judged on the same episodes) and a network of its
    own: the training envs, the agent and the run's random generators are never touched, so a run trains exactly as
    it would without this node. Each env runs a fixed quota of the episodes (``evaluation.quotas``), so envs whose
    episodes differ in length do not bias the mean toward the short ones.

    Every evaluation is a metrics row (``eval_return_mean``, ``eval_return_std``, ``eval_length_mean``,
    ``eval_episodes``, ``eval_policy_version``, ``eval_best_return``). The weights with the best mean return so far
    are kept in the node's state, so every checkpoint holds them and a resumed run keeps the best so far; a new best
    asks the run for a checkpoint, also kept as ``checkpoints/best.pt`` (recorded in ``summary.json`` as
    ``best_checkpoint``: its return, the policy version, and the run's ``iterations`` and ``env_steps`` then).
    ``dnne play GRAPH --checkpoint RUN --best`` acts with them. ``run.eval`` adds and wires this node
    (``run_eval``). A graceful stop (``max_steps``, Ctrl-C) that comes during an evaluation waits for it to finish
    and record its row (bounded by the run's stop-point grace).
    """

    category = "RL/PPO"
    training_only = True

    weights = Input("PolicyWeights", "every version of the policy (a trainer's weights output)")
    model = Input("Model", "the agent's architecture, to build the evaluation network")
    env_handle = Input("EnvHandle", "the training env: the evaluation builds another env of the same task")

    every = Param(int, 10, "evaluate every this many versions (updates): the first version at or past each "
                  "multiple", ge=1, le=1_000_000)
    episodes = Param(int, 10, "episodes per evaluation", ge=1, le=1_000_000)
    num_envs = Param(int, None, "envs of the evaluation env; default: one per episode (at most 64)", ge=1,
                     le=100_000, nullable=True)
    seed = Param(int, 0, "reset seed of every evaluation", ge=0, le=2**31 - 1)
    deterministic = Param(bool, True, "act with the mean / arg-max action; false samples (from a seeded generator)")
    action_mode = Param(str, "rescale", "how actions fit a box action space, as the action node does: rescale "
                        "[-1, 1] onto the box, or clip to it", choices=("rescale", "clip"))
    max_steps = Param(int, 100_000, "at most this many batched steps per evaluation (an env that never ends)",
                      ge=1, le=1 << 40)
    checkpoint_best = Param(bool, True, "ask the run for a checkpoint when an evaluation sets a new best, also kept "
                            "as checkpoints/best.pt")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.env: BatchedEnv | None = None
        self.network: ActorCritic | None = None
        self.best: dict[str, Any] | None = None
        self.evaluated = -1
        self.running: asyncio.Future[EvaluationResult] | None = None
        self.generator = torch.Generator()
        self.transform: Callable[[torch.Tensor], torch.Tensor] = _unchanged

    async def compute(self, weights: PolicyWeights, model: ModelSpec, env_handle: EnvHandle) -> None:
        """Evaluate ``weights`` when its version is due; record the row and keep a new best."""
        # Due once a version reaches the next multiple of ``every``: a "latest" link may skip the multiple itself.
        if weights.version // self.every <= self.evaluated // self.every:
            return
        if self.network is None:
            self._build(model, env_handle)
        assert self.network is not None and self.env is not None
        self.network.load_weights(weights.parameters)
        self.ctx.leave_stop_point()  # a graceful stop lets an evaluation under way finish and record its row
        self.running = asyncio.ensure_future(asyncio.to_thread(self._evaluate))
        try:
            result = await self.running
        finally:
            self.running = None
        self._record(weights, result)
        await self.ctx.stop_point()

    def _record(self, weights: PolicyWeights, result: EvaluationResult) -> None:
        """Log the evaluation's row; keep a new best (and ask for its checkpoint)."""
        if not result.returns:
            self.ctx.warn(f"no episode ended within max_steps={self.max_steps}; version {weights.version} is not "
                          "evaluated")
            return
        row = result.summary()
        if self.best is None or row["eval_return_mean"] > self.best["return"]:
            self.best = {"return": row["eval_return_mean"], "version": weights.version,
                         "parameters": {name: value.detach().to("cpu", copy=True)
                                        for name, value in weights.parameters.items()},
                         "agent": self._agent_id()}
            if self.checkpoint_best:
                counters = self.ctx.counters
                record = {"eval_return_mean": row["eval_return_mean"], "eval_return_std": row["eval_return_std"],
                          "policy_version": weights.version, "iterations": int(counters.get("iterations", 0) or 0),
                          "env_steps": int(counters.get("env_steps", 0) or 0)}
                self.ctx.request_checkpoint(f"new best evaluation return {row['eval_return_mean']:.6g}",
                                            keep_as="best", record=record)
        self.evaluated = weights.version
        self.ctx.log_metrics(dict(row, eval_policy_version=float(weights.version),
                                  eval_best_return=float(self.best["return"])))

    def _build(self, model: ModelSpec, env_handle: EnvHandle) -> None:
        recipe = env_handle.info.get("make")
        if recipe is None:
            raise ValueError(f"the env node {env_handle.info.get('node')!r} does not say how to build its env again; "
                             "evaluation needs an EnvNode's env_handle")
        count = self.num_envs if self.num_envs is not None else min(self.episodes, 64)
        # Building a network or an env may draw from the process-wide generator: the training must not see it.
        with torch.random.fork_rng(devices=[]):
            self.env = make_env(recipe["backend"], recipe["task"], count, recipe["device"], **recipe["options"])
            self.network = ActorCritic(**model.architecture).to(recipe["device"])
        self.network.eval()
        self.generator = torch.Generator(device=recipe["device"])
        space = self.env.action_space
        if isinstance(space, Box):
            self.transform = lambda action: fit_action(action, space.low, space.high, self.action_mode)

    def _evaluate(self) -> EvaluationResult:
        assert self.network is not None and self.env is not None
        self.generator.manual_seed(self.seed)
        actor = policy_actor(self.network, self.deterministic, self.generator, self.transform)
        return run_episodes(self.env, actor, self.episodes, self.seed, self.max_steps)

    def _agent_id(self) -> str | None:
        """The node that feeds ``model`` (in another process too): the agent the best weights belong to."""
        return self.ctx.producer("model")

    async def teardown(self) -> None:
        """Let a running evaluation finish (its thread uses the env), then close the env."""
        if self.running is not None:
            try:
                await asyncio.shield(self.running)
            except Exception:
                pass  # the failure is reported by the firing that awaited it
        if self.env is not None:
            self.env.close()
            self.env = None

    def state_dict(self) -> dict[str, Any]:
        """The best weights so far (their version, mean evaluation return and the agent they belong to) and the
        last version evaluated."""
        return {"best": self.best, "evaluated": self.evaluated}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the best so far (a resumed run only replaces it with a better one)."""
        self.best = state["best"]
        self.evaluated = int(state["evaluated"])


def _unchanged(action: torch.Tensor) -> torch.Tensor:
    """A discrete action as the env takes it."""
    return action
