"""An independent player of evaluation episodes, written out by hand, for tests that check evaluation returns."""
from __future__ import annotations

import torch

from dnne.nodes.envs.registry import make_env
from dnne.nodes.rl.actor_critic import ActorCritic


def greedy_return(parameters: dict[str, torch.Tensor], normalize_input: bool, seed: int, episodes: int) -> float:
    """The mean return of ``episodes`` arg-max episodes of one Cartpole env reset with ``seed``, played by the
    [64, 64] tanh discrete network holding ``parameters``."""
    network = ActorCritic(4, 2, hidden_sizes=[64, 64], activation="tanh", action_space="discrete",
                          normalize_input=normalize_input)
    network.load_weights(parameters)
    env = make_env("torch", "Cartpole", 1, "cpu")
    observations = env.reset(seed=seed)
    returns, total = [], 0.0
    while len(returns) < episodes:
        with torch.no_grad():
            action = network.act(observations, deterministic=True).action
        result = env.step(action)
        total += float(result.rewards[0])
        if bool(result.terminated[0] or result.truncated[0]):
            returns.append(total)
            total = 0.0
        observations = result.observations
    return sum(returns) / len(returns)
