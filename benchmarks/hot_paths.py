"""The learner's gradient step and the in-process Gymnasium loop against the torch and Gymnasium code they replace.

Run: ``python benchmarks/hot_paths.py`` (about two minutes; ``--rounds`` sets the interleaved rounds). Torch on one
thread, CPU. Each round times both sides of every row back to back; the table gives the median over the rounds of
each side and of the per-round ratio (ours / theirs). Rows:

- **Adam step**: ``FlatAdam`` against ``EagerAdam(foreach=True)`` (torch's foreach Adam without the ``torch._dynamo``
  import, what the learner used before) on the HalfCheetah graph's actor-critic (separate actor and critic MLPs
  [64, 64], 13 tensors, 11,085 weights), gradients set, no backward. Nothing here imports ``torch._dynamo``, which
  would put torch's optimizer wrappers back on the baseline's path.
- **gradient clipping**: ``ppo.clip_grad_norm`` against ``torch.nn.utils.clip_grad_norm_`` on the same gradients.
- **PPO update**: one ``PPOUpdate.run`` of the HalfCheetah graph's shape (16 envs x 128 steps, 10 epochs of 16
  minibatches of 128, value clipping) through autograd with ``FlatAdam`` and ``clip_grad_norm``, against the same
  with ``EagerAdam`` and ``clip_grad_norm_``; both start from the same weights and must end with the same ones
  (checked).
- **PPO update in closed form against autograd**: the same update stepped by ``ClosedFormStep`` (the gradients
  written out, numpy) against autograd, both with ``FlatAdam``; the weights after one update from the same start must
  agree to float32 rounding (checked).
- **Gymnasium step, <Task>**: ``GymnasiumEnv.step`` of 16 envs stepped by ``GymEnvLoop`` against the same class over
  Gymnasium's same-step ``SyncVectorEnv``, the same random actions; the results must be equal (checked).
"""
from __future__ import annotations

import argparse
import copy
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch

from common import machine
from dnne.nodes.envs.gym_backend import GymnasiumEnv, same_step_vector_env
from dnne.nodes.eager_adam import EagerAdam
from dnne.nodes.flat_adam import FlatAdam
from dnne.nodes.rl import ppo
from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.ppo import PPOConfig, PPOUpdate
from dnne.nodes.rl.rollout import RolloutBuffer
from dnne.runtime.threads import use_threads

OBS, ACT, ENVS, HORIZON = 17, 6, 16, 128
TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5")


def timed(call: Callable[[], Any], repeats: int) -> float:
    """Microseconds per call of ``call`` over ``repeats`` calls."""
    start = time.perf_counter()
    for _ in range(repeats):
        call()
    return (time.perf_counter() - start) / repeats * 1e6


def actor_critic() -> ActorCritic:
    """The HalfCheetah graph's network, seeded."""
    torch.manual_seed(0)
    return ActorCritic(OBS, ACT, (64, 64), "tanh", "continuous", -1.0, True, True, shared_trunk=False, obs_clip=10.0)


def adam_pair() -> tuple[Callable[[], Any], Callable[[], Any]]:
    """One Adam step of each optimizer on its own copy of the network, gradients set once."""
    steps = []
    for optimizer in (FlatAdam, EagerAdam):
        parameters = list(actor_critic().parameters())
        for parameter in parameters:
            parameter.grad = torch.randn_like(parameter)
        steps.append(optimizer(parameters, lr=3e-4, eps=1e-5, foreach=True).step)
    return steps[0], steps[1]


def clip_pair() -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Each clipping function over the same gradients (already below the norm after the first call)."""
    parameters = list(actor_critic().parameters())
    for parameter in parameters:
        parameter.grad = torch.randn_like(parameter)
    grads = [p.grad for p in parameters]
    return (lambda: ppo.clip_grad_norm(grads, 0.5)), (lambda: torch.nn.utils.clip_grad_norm_(parameters, 0.5))


def rollout() -> RolloutBuffer:
    """A filled rollout of the HalfCheetah graph's shape, random but seeded."""
    generator = torch.Generator().manual_seed(1)
    buffer = RolloutBuffer(HORIZON, ENVS, (OBS,), (ACT,))
    for _ in range(HORIZON):
        buffer.add(torch.randn(ENVS, OBS, generator=generator), torch.randn(ENVS, ACT, generator=generator),
                   torch.randn(ENVS, generator=generator) - 3, torch.randn(ENVS, generator=generator),
                   torch.randn(ENVS, generator=generator), torch.rand(ENVS, generator=generator) < 0.01,
                   torch.zeros(ENVS, dtype=torch.bool), torch.randn(ENVS, generator=generator))
    return buffer


def update_pair() -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], bool]]:
    """One PPO update through autograd with ours and with torch's optimizer and clipping; and a check that their
    weights agree."""
    buffer = rollout()
    config = PPOConfig(epochs=10, minibatch_size=128, entropy_coef=0.0, clip_value_loss=True, closed_form=False)
    models, updates = [], []
    for optimizer in (FlatAdam, EagerAdam):
        model = actor_critic()
        models.append(model)
        updates.append(PPOUpdate(model, optimizer(model.parameters(), lr=3e-4, eps=1e-5, foreach=True), config,
                                 torch.Generator().manual_seed(2)))

    def theirs() -> None:
        ours_clip = ppo.clip_grad_norm
        ppo.clip_grad_norm = lambda grads, max_norm: torch.nn.utils.clip_grad_norm_(models[1].parameters(), max_norm)
        try:
            updates[1].run(buffer)
        finally:
            ppo.clip_grad_norm = ours_clip

    def same() -> bool:
        return all(torch.equal(a, b) for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))

    return (lambda: updates[0].run(buffer)), theirs, same


def closed_form_pair() -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], bool]]:
    """One PPO update in closed form and one through autograd (both with ``FlatAdam``), the same minibatches; and a
    check that their weights agree to float32 rounding after the first, warm-up update."""
    buffer = rollout()
    models, updates = [], []
    for closed_form in (True, False):
        model = actor_critic()
        models.append(model)
        config = PPOConfig(epochs=10, minibatch_size=128, entropy_coef=0.0, clip_value_loss=True,
                           closed_form=closed_form)
        updates.append(PPOUpdate(model, FlatAdam(model.parameters(), lr=3e-4, eps=1e-5, foreach=True), config,
                                 torch.Generator().manual_seed(2)))
    first = [(copy.deepcopy(model.state_dict()), copy.deepcopy(update.optimizer.state_dict()))
             for model, update in zip(models, updates, strict=True)]

    def same() -> bool:
        for model, update, (weights, moments) in zip(models, updates, first, strict=True):
            model.load_state_dict(weights)
            update.optimizer.load_state_dict(moments)
            update.generator.manual_seed(2)
            update.run(buffer)
        return all(torch.allclose(a, b, rtol=1e-4, atol=1e-6)
                   for a, b in zip(models[0].parameters(), models[1].parameters(), strict=True))

    return (lambda: updates[0].run(buffer)), (lambda: updates[1].run(buffer)), same


def env_pair(task: str) -> tuple[Callable[[], Any], Callable[[], Any], Callable[[], bool]]:
    """One batched step of 16 envs through ``GymEnvLoop`` and through ``SyncVectorEnv``, the same actions; and a
    check that the last results agree."""
    ours, theirs = GymnasiumEnv(task, ENVS), GymnasiumEnv(task, ENVS)
    theirs._env = same_step_vector_env(task, ENVS, "sync", {})
    ours.reset(seed=0)
    theirs.reset(seed=0)
    generator = torch.Generator().manual_seed(0)
    actions = [torch.rand(ENVS, ours.action_space.dim, generator=generator) * 2 - 1 for _ in range(4096)]
    cursor = {"ours": 0, "theirs": 0}
    last: dict[str, Any] = {}

    def stepper(name: str, env: GymnasiumEnv) -> Callable[[], None]:
        def step() -> None:
            last[name] = env.step(actions[cursor[name] % len(actions)])
            cursor[name] += 1
        return step

    def same() -> bool:
        return cursor["ours"] == cursor["theirs"] and all(
            torch.equal(getattr(last["ours"], field), getattr(last["theirs"], field))
            for field in ("observations", "rewards", "terminated", "truncated", "final_observations"))

    return stepper("ours", ours), stepper("theirs", theirs), same


def main() -> None:
    """Time every row's two sides, interleaved, and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    use_threads(1)  # as a run does: torch and numpy's BLAS
    print(f"machine: {machine()}\n")
    rows: list[tuple[str, str, Callable[[], Any], Callable[[], Any], int, Callable[[], bool] | None]] = []
    rows.append(("Adam step", "us a step", *adam_pair(), 2000, None))
    rows.append(("gradient clipping", "us a call", *clip_pair(), 2000, None))
    ours, theirs, same = update_pair()
    rows.append(("PPO update (160 gradient steps)", "ms an update", ours, theirs, 2, same))
    ours, theirs, same = closed_form_pair()
    rows.append(("PPO update in closed form against autograd", "ms an update", ours, theirs, 2, same))
    for task in TASKS:
        ours, theirs, same = env_pair(task)
        rows.append((f"Gymnasium step, {task} x {ENVS}", "us an env step", ours, theirs, 200, same))
    for _, _, ours, theirs, _, _ in rows:  # first calls: the optimizers' lazy state
        ours()
        theirs()
    times: dict[str, tuple[list[float], list[float]]] = {name: ([], []) for name, *_ in rows}
    for _ in range(args.rounds):
        for name, unit, ours, theirs, repeats, _ in rows:
            scale = 1e-3 if unit.startswith("ms") else (1 / ENVS if "env step" in unit else 1.0)
            times[name][0].append(timed(ours, repeats) * scale)
            times[name][1].append(timed(theirs, repeats) * scale)
    print("| row | unit | ours | torch's / Gymnasium's | ours / theirs (median of rounds) | same result |")
    print("|---|---|---:|---:|---:|---|")
    for name, unit, *_, same in rows:
        mine, reference = times[name]
        ratio = statistics.median(a / b for a, b in zip(mine, reference, strict=True))
        check = "-" if same is None else ("yes" if same() else "NO")
        print(f"| {name} | {unit} | {statistics.median(mine):,.1f} | {statistics.median(reference):,.1f} | "
              f"{ratio:.2f} | {check} |")


if __name__ == "__main__":
    main()
