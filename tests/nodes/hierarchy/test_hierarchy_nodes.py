"""The hierarchy nodes alone, against plain-Python computations: high-level windows, subgoals, concat, reward."""
from __future__ import annotations

import math

import pytest
import torch

from dnne.nodes.hierarchy.concat import SubgoalConcatNode
from dnne.nodes.hierarchy.high_level import HighLevelStepNode
from dnne.nodes.hierarchy.reward import SubgoalRewardNode
from dnne.nodes.hierarchy.subgoal import SubgoalNode
from dnne.nodes.types import Dones
from dnne.runtime.testing import run_node_sync


def env_stream(steps: int, num_envs: int, seed: int, ends: dict[tuple[int, int], str]):
    """Observations 0..steps, and rewards / dones after each step; ``ends[(k, env)]`` ends env's episode at step k
    (``"terminated"`` or ``"truncated"``)."""
    generator = torch.Generator().manual_seed(seed)
    observations = [torch.randn((num_envs, 3), generator=generator) for _ in range(steps + 1)]
    rewards = [torch.randn(num_envs, generator=generator) for _ in range(steps)]
    dones = []
    for k in range(1, steps + 1):
        terminated = torch.tensor([ends.get((k, e)) == "terminated" for e in range(num_envs)])
        truncated = torch.tensor([ends.get((k, e)) == "truncated" for e in range(num_envs)])
        final = observations[k].clone()
        final[terminated | truncated] = 100.0 + k  # the pre-reset observation differs from the reset one
        dones.append(Dones(terminated, truncated, final))
    return observations, rewards, dones


def expected_windows(observations, rewards, dones, interval: int):
    """Per high-level step: (reward sum up to the first episode end, terminated, truncated, final observation)."""
    num_envs = rewards[0].shape[0]
    out = []
    for j in range(len(rewards) // interval):
        sums, term, trunc, finals = [], [], [], []
        for e in range(num_envs):
            total, t, tr, final = 0.0, False, False, observations[(j + 1) * interval][e]
            for k in range(j * interval + 1, (j + 1) * interval + 1):  # rewards after env steps k - 1 -> k
                total += rewards[k - 1][e].item()
                d = dones[k - 1]
                if d.terminated[e] or d.truncated[e]:
                    t, tr, final = bool(d.terminated[e]), bool(d.truncated[e]), d.final_observations[e]
                    break
            sums.append(total)
            term.append(t)
            trunc.append(tr)
            finals.append(final)
        out.append((sums, term, trunc, torch.stack(finals)))
    return out


class TestHighLevelStepNode:
    def test_windows_sum_rewards_and_stop_at_episode_ends(self) -> None:
        """Every ``interval`` env steps: the high-level observation, the rewards summed over the window (only up to
        an episode end inside it), its flags and final observation; ends on a window's last step count too."""
        interval, steps = 4, 12
        ends = {(2, 0): "terminated", (3, 0): "truncated", (4, 1): "truncated", (7, 2): "terminated",
                (9, 1): "truncated", (12, 0): "terminated"}
        observations, rewards, dones = env_stream(steps, 3, seed=0, ends=ends)
        out = run_node_sync(HighLevelStepNode, {"observations": observations, "rewards": rewards, "dones": dones},
                            {"interval": interval})
        assert len(out["high_observations"]) == steps // interval + 1
        for j, sent in enumerate(out["high_observations"]):
            assert torch.equal(sent, observations[j * interval])
        assert [torch.equal(a, b) for a, b in zip(out["next_observations"], out["high_observations"][1:])] == [
            True] * 3
        expected = expected_windows(observations, rewards, dones, interval)
        assert len(out["high_rewards"]) == len(out["high_dones"]) == len(expected) == 3
        for (sums, term, trunc, finals), got_rewards, got_dones in zip(expected, out["high_rewards"],
                                                                         out["high_dones"]):
            assert got_rewards.tolist() == pytest.approx(sums, abs=1e-6)
            assert got_dones.terminated.tolist() == term
            assert got_dones.truncated.tolist() == trunc
            assert torch.equal(got_dones.final_observations, finals)
        # spot checks of the independent computation itself
        assert out["high_rewards"][0][0].item() == pytest.approx(rewards[0][0].item() + rewards[1][0].item())
        assert out["high_dones"][0].terminated.tolist() == [True, False, False]
        assert out["high_dones"][0].truncated.tolist() == [False, True, False]

    def test_an_incomplete_window_is_not_sent(self) -> None:
        """No window is emitted before it is complete: 7 steps of interval 4 give one transition."""
        observations, rewards, dones = env_stream(7, 2, seed=1, ends={})
        out = run_node_sync(HighLevelStepNode, {"observations": observations, "rewards": rewards, "dones": dones},
                            {"interval": 4})
        assert len(out["high_observations"]) == 2 and len(out["high_rewards"]) == 1
        torch.testing.assert_close(out["high_rewards"][0], sum(rewards[:4]))


class TestSubgoalNode:
    def test_relative_targets_are_held_for_interval_steps(self) -> None:
        """Decision j aims at position(obs j * interval) + scale * clamp(a); it is held until the next decision;
        ``relative`` is target - position of each observation; ``limit`` clamps the target."""
        interval, steps = 3, 9
        generator = torch.Generator().manual_seed(2)
        observations = [torch.randn((4, 5), generator=generator) * 3 for _ in range(steps)]
        decisions = [torch.randn((4, 2), generator=generator) * 2 for _ in range(steps // interval)]
        params = {"interval": interval, "scale": 1.5, "limit": 4.0, "position_indices": [1, 3]}
        out = run_node_sync(SubgoalNode, {"subgoals": decisions, "observations": observations}, params)
        assert len(out["targets"]) == len(out["relative"]) == steps
        for k in range(steps):
            j = k // interval
            decided_at = observations[j * interval]
            for e in range(4):
                for d, index in enumerate((1, 3)):
                    a = min(max(decisions[j][e, d].item(), -1.0), 1.0)
                    target = min(max(decided_at[e, index].item() + 1.5 * a, -4.0), 4.0)
                    assert out["targets"][k][e, d].item() == pytest.approx(target, abs=1e-6)
                    assert out["relative"][k][e, d].item() == pytest.approx(
                        target - observations[k][e, index].item(), abs=1e-6)

    def test_absolute_mode(self) -> None:
        """``absolute`` aims at scale * clamp(a), whatever the position."""
        observations = [torch.full((2, 2), 7.0), torch.full((2, 2), -7.0)]
        decision = torch.tensor([[0.5, -3.0], [1.0, 0.0]])
        out = run_node_sync(SubgoalNode, {"subgoals": [decision], "observations": observations},
                            {"interval": 2, "mode": "absolute", "scale": 2.0})
        expected = torch.tensor([[1.0, -2.0], [2.0, 0.0]])
        assert all(torch.equal(t, expected) for t in out["targets"])
        assert torch.equal(out["relative"][1], expected + 7.0)

    def test_needs_an_interval(self) -> None:
        """Without an interval and no high level upstream to declare one, the node fails with a clear message."""
        with pytest.raises(RuntimeError, match="interval is not set"):
            run_node_sync(SubgoalNode, {"subgoals": [torch.zeros(1, 2)], "observations": [torch.zeros(1, 2)]})


def test_concat_appends_the_subgoal() -> None:
    """``conditioned`` is obs ++ subgoal along the last dimension, for each observation."""
    observations = [torch.arange(6.0).reshape(2, 3), torch.ones(2, 3)]
    subgoals = [torch.tensor([[9.0, 8.0], [7.0, 6.0]]), torch.zeros(2, 2)]
    out = run_node_sync(SubgoalConcatNode, {"observations": observations, "subgoals": subgoals})
    assert out["conditioned"][0].tolist() == [[0, 1, 2, 9, 8], [3, 4, 5, 7, 6]]
    assert out["conditioned"][1].tolist() == [[1, 1, 1, 0, 0], [1, 1, 1, 0, 0]]


class TestSubgoalRewardNode:
    def test_reward_states_and_low_level_episode_ends(self) -> None:
        """reward = -||p' - t|| / distance_scale (+ bonus within the radius); states = o' ++ (t - p'); env ends
        pass through with their final observation; the last step of each subgoal is truncated."""
        interval, steps, n = 3, 7, 4
        generator = torch.Generator().manual_seed(4)
        targets = [torch.randn((n, 2), generator=generator) for _ in range(steps)]
        next_obs = [torch.randn((n, 3), generator=generator) for _ in range(steps)]
        ends = {(1, 0): "terminated", (2, 1): "truncated", (5, 2): "terminated"}  # step index k -> after k
        dones = []
        for k in range(steps):
            terminated = torch.tensor([ends.get((k, e)) == "terminated" for e in range(n)])
            truncated = torch.tensor([ends.get((k, e)) == "truncated" for e in range(n)])
            dones.append(Dones(terminated, truncated, next_obs[k]))
        # the success bonus goes to env 3 at step 0, placed exactly on its target
        next_obs[0][3, :2] = targets[0][3]
        params = {"interval": interval, "distance_scale": 2.0, "success_radius": 0.1, "success_bonus": 0.5}
        out = run_node_sync(SubgoalRewardNode, {"targets": targets, "next_observations": next_obs,
                                                "dones": dones}, params)
        for k in range(steps):
            for e in range(n):
                dx = targets[k][e, 0].item() - next_obs[k][e, 0].item()
                dy = targets[k][e, 1].item() - next_obs[k][e, 1].item()
                distance = math.hypot(dx, dy)
                reward = -distance / 2.0 + (0.5 if distance <= 0.1 else 0.0)
                assert out["rewards"][k][e].item() == pytest.approx(reward, abs=1e-6)
                assert out["states"][k][e].tolist() == pytest.approx([*next_obs[k][e].tolist(), dx, dy], abs=1e-6)
                env_end = ends.get((k, e))
                boundary = (k + 1) % interval == 0
                assert bool(out["low_dones"][k].terminated[e]) == (env_end == "terminated")
                assert bool(out["low_dones"][k].truncated[e]) == (
                    env_end == "truncated" or (boundary and env_end != "terminated"))
            assert torch.equal(out["low_dones"][k].final_observations, out["states"][k])
        assert out["rewards"][0][3].item() == pytest.approx(0.5)
