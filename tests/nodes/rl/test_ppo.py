"""Tests for the PPO update on small fixed rollouts."""
from __future__ import annotations

import math

import pytest
import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.gae import compute_gae
from dnne.nodes.rl.ppo import PPOConfig, PPOUpdate, clip_grad_norm
from dnne.nodes.rl.rollout import RolloutBuffer

T, N, OBS, ACT = 8, 4, 4, 2
STAT_KEYS = {
    "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "explained_variance",
    "epochs_run", "nan_skipped", "early_stopped", "minibatches", "rho_mean",
}  # fmt: skip


def setup(
    seed: int = 0, lr: float = 3e-3, space: str = "continuous", normalize_value: bool = False, **config
) -> tuple[ActorCritic, PPOUpdate, RolloutBuffer]:
    """A model, its PPO update and a filled rollout, all from one seed."""
    torch.manual_seed(seed)
    model = ActorCritic(OBS, ACT, (16, 16), action_space=space, normalize_value=normalize_value)
    if normalize_value:
        model.value_normalizer.update(torch.tensor([0.0, 1.0]))
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    cfg = PPOConfig(**{"epochs": 4, "minibatch_size": 8, "entropy_coef": 0.0, **config})
    update = PPOUpdate(model, optimizer, cfg, torch.Generator().manual_seed(seed))
    g = torch.Generator().manual_seed(seed + 100)
    discrete = space == "discrete"
    buffer = RolloutBuffer(T, N, (OBS,), () if discrete else (ACT,), torch.long if discrete else torch.float32)
    for _ in range(T):
        obs = torch.randn(N, OBS, generator=g)
        res = model.act(obs, generator=g)
        next_obs = torch.randn(N, OBS, generator=g)
        buffer.add(
            res.observation, res.action, res.log_prob, res.value, torch.randn(N, generator=g) * 2 + 1,
            torch.rand(N, generator=g) < 0.2, torch.rand(N, generator=g) < 0.1, model.value(next_obs),
        )  # fmt: skip
    return model, update, buffer


def flat_advantages(buffer: RolloutBuffer, cfg: PPOConfig) -> torch.Tensor:
    adv, _ = compute_gae(
        buffer.rewards, buffer.values, buffer.next_values, buffer.terminated, buffer.dones, cfg.gamma, cfg.lam
    )
    return adv.flatten()


class TestUpdate:
    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    def test_positive_advantage_actions_become_more_likely(self, space: str) -> None:
        """One update on one repeated state raises log-probs of positive-advantage actions, lowers negative ones."""
        torch.manual_seed(0)
        model = ActorCritic(OBS, ACT, (16, 16), action_space=space)
        cfg = PPOConfig(epochs=2, minibatch_size=16, normalize_advantage="none", value_coef=0.0, entropy_coef=0.0)
        update = PPOUpdate(model, torch.optim.Adam(model.parameters(), lr=1e-2), cfg, torch.Generator().manual_seed(0))
        obs = torch.ones(N, OBS)
        if space == "discrete":
            buffer = RolloutBuffer(T, N, (OBS,), (), torch.long)
            actions = torch.arange(T * N).reshape(T, N) % ACT
            rewards = torch.where(actions == 0, 1.0, -1.0)  # with values 0 and gamma cut, advantage = reward
        else:
            buffer = RolloutBuffer(T, N, (OBS,), (ACT,))
            actions = torch.randn(T, N, ACT, generator=torch.Generator().manual_seed(1))
            rewards = actions.sum(-1)  # advantage grows along +1: the mean should move there
        log_probs = model.distribution(model(obs)[0]).log_prob(actions).detach()
        zeros, ended = torch.zeros(N), torch.ones(N, dtype=torch.bool)
        for t in range(T):
            buffer.add(obs, actions[t], log_probs[t], zeros, rewards[t], ended, ~ended, zeros)
        stats = update.run(buffer)
        change = model.distribution(model(obs)[0]).log_prob(actions).detach() - log_probs
        assert change[rewards > 0].mean() > 0 and change[rewards < 0].mean() < 0
        assert set(stats) == STAT_KEYS
        assert stats["epochs_run"] == 2 and stats["minibatches"] == 4 and stats["early_stopped"] == 0

    def test_surrogate_improves_on_random_rollout(self) -> None:
        """A small update on a random rollout raises the surrogate mean(ratio * A) above its start value mean(A)."""
        model, update, buffer = setup(lr=1e-3, normalize_advantage="none", epochs=1, minibatch_size=T * N)
        adv = flat_advantages(buffer, update.config)
        data = buffer.flatten()
        update.run(buffer)
        new_log_probs = model.evaluate(data["observations"], data["actions"])[0].detach()
        assert ((new_log_probs - data["log_probs"]).exp() * adv).mean() > adv.mean()

    def test_zero_lr_loss_terms_match_hand_computation(self) -> None:
        """With a frozen model and one full-batch minibatch the stats are the loss on normalized value targets."""
        model, update, buffer = setup(lr=0.0, normalize_value=True, epochs=1, minibatch_size=T * N)
        data = buffer.flatten()
        _, returns = compute_gae(
            buffer.rewards, buffer.values, buffer.next_values, buffer.terminated, buffer.dones, 0.99, 0.95
        )
        returns = returns.flatten()
        stats = update.run(buffer)
        # rl_games: the value statistics absorb the new returns before the critic's targets are normalized
        assert model.value_normalizer.count.item() == 2 + T * N
        mean, var = model.value_normalizer.mean.item(), model.value_normalizer.var.item()
        targets = (returns - mean) / math.sqrt(var + 1e-5)
        critic = model(data["observations"])[1].detach()
        assert stats["value_loss"] == pytest.approx(0.5 * (critic - targets).square().mean().item(), rel=1e-5)
        assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6) and stats["clip_fraction"] == 0.0
        # ratio 1: the surrogate is minus the mean normalized advantage, i.e. 0
        assert stats["policy_loss"] == pytest.approx(0.0, abs=1e-6)
        ev = 1 - (returns - data["values"]).var() / returns.var()
        assert stats["explained_variance"] == pytest.approx(ev.item(), rel=1e-5)

    def test_stale_steps_are_clipped_around_the_update_s_starting_policy(self) -> None:
        """Decoupled PPO: for steps acted by a stale policy (lag > 0, V-trace on) a full-batch step's ratio is the
        model's over itself at the update's start, 1, not over the acting policy; steps marked on-policy keep the
        acting policy's log-probs as the anchor."""
        for lag, clipped in ((1, 0.0), (0, 1.0)):
            _, update, buffer = setup(lr=0.0, epochs=1, minibatch_size=T * N, vtrace_rho_clip=1.0)
            buffer.log_probs[:T] -= 0.5  # another policy acted: pi / mu = e^0.5, past 1 + clip_param everywhere
            stats = update.run(buffer, torch.full((T, N), lag, dtype=torch.long))
            assert stats["clip_fraction"] == clipped
            if lag:
                assert stats["approx_kl"] == pytest.approx(0.0, abs=1e-6)
                assert stats["rho_mean"] == 1.0  # e^0.5 truncated at rho-bar 1

    @pytest.mark.parametrize("normalize_value, clip_value_loss", [(False, False), (True, False), (False, True)])
    def test_v_trace_targets_use_the_model_s_own_values(self, normalize_value: bool, clip_value_loss: bool) -> None:
        """With V-trace on, a stale rollout's targets are built on the model's values of the stored observations
        (denormalised), not the stale critic's: at pi = mu they are GAE's over the model's values (next values
        across an episode end stay the stored ones), whatever the rollout's stored values; value clipping and
        explained variance are taken around those values too."""
        model, update, buffer = setup(lr=0.0, epochs=1, minibatch_size=T * N, vtrace_rho_clip=1.0,
                                      normalize_value=normalize_value, clip_value_loss=clip_value_loss)
        with torch.no_grad():
            own = model.value(buffer.observations.flatten(0, 1)).reshape(T, N)
            critic = model(buffer.observations.flatten(0, 1))[1].reshape(T, N)  # the critic's own space
        following = torch.cat([own[1:], buffer.next_values[-1:]])
        next_values = torch.where(buffer.dones, buffer.next_values, following)
        _, returns = compute_gae(buffer.rewards, own, next_values, buffer.terminated, buffer.dones,
                                 update.config.gamma, update.config.lam)
        buffer.values[:T] += 100.0  # a critic many updates old
        stats = update.run(buffer, torch.full((T, N), 1, dtype=torch.long))
        targets = model.normalize_value(returns)  # with the statistics the update refreshed
        assert stats["value_loss"] == pytest.approx(0.5 * (critic - targets).square().mean().item(), rel=1e-4)
        ev = 1 - (returns - own).var() / returns.var()
        assert stats["explained_variance"] == pytest.approx(ev.item(), rel=1e-4)

    def test_v_trace_on_a_one_step_rollout(self) -> None:
        """A stale rollout of one step: the next value is the stored one, the update runs and stays finite."""
        model, update, _ = setup(lr=0.0, epochs=1, minibatch_size=N, vtrace_rho_clip=1.0)
        buffer = RolloutBuffer(1, N, (OBS,), (ACT,), torch.float32)
        obs = torch.randn(N, OBS, generator=torch.Generator().manual_seed(3))
        res = model.act(obs)
        buffer.add(res.observation, res.action, res.log_prob, res.value + 5.0, torch.ones(N),
                   torch.zeros(N, dtype=torch.bool), torch.zeros(N, dtype=torch.bool), torch.zeros(N))
        stats = update.run(buffer, torch.ones(1, N, dtype=torch.long))
        expected = 0.5 * (1.0 - res.value).square().mean().item()  # target: reward 1 + gamma * 0, around V = own
        assert stats["value_loss"] == pytest.approx(expected, rel=1e-4)

    def test_advantage_normalization_modes(self) -> None:
        """At ratio 1 the policy loss is -mean(A) unnormalized, and 0 when normalized per batch or minibatch."""
        for mode, expected in [("none", None), ("batch", 0.0), ("minibatch", 0.0)]:
            _, update, buffer = setup(lr=0.0, epochs=1, minibatch_size=T * N, normalize_advantage=mode)
            if expected is None:
                expected = -flat_advantages(buffer, update.config).mean().item()
            assert update.run(buffer)["policy_loss"] == pytest.approx(expected, abs=1e-5), mode

    def test_clip_value_loss_runs(self) -> None:
        """The clipped value loss gives finite stats."""
        _, update, buffer = setup(clip_value_loss=True)
        stats = update.run(buffer)
        assert all(math.isfinite(stats[k]) for k in ("value_loss", "policy_loss"))


class TestKLEarlyStop:
    def test_tiny_target_kl_stops_early(self) -> None:
        """A tiny target_kl stops the update before all epochs; without it every epoch runs."""
        _, free, buffer = setup(lr=3e-2, epochs=8)
        full = free.run(buffer)
        assert full["epochs_run"] == 8 and full["early_stopped"] == 0 and full["minibatches"] == 8 * (T * N // 8)
        _, capped, buffer = setup(lr=3e-2, epochs=8, target_kl=1e-4)
        stopped = capped.run(buffer)
        assert stopped["early_stopped"] == 1
        assert stopped["epochs_run"] < 8 and stopped["minibatches"] < full["minibatches"]


class TestNaNGuard:
    def test_nan_rewards_skip_every_step(self) -> None:
        """NaN rewards make every minibatch skipped and leave the parameters and value statistics unchanged."""
        model, update, buffer = setup(normalize_value=True)
        buffer.rewards.fill_(float("nan"))
        before = {k: v.clone() for k, v in model.state_dict().items()}
        stats = update.run(buffer)
        assert stats["nan_skipped"] == update.config.epochs * (T * N // 8)
        assert stats["minibatches"] == 0 and math.isnan(stats["policy_loss"])
        for k, v in model.state_dict().items():
            assert torch.equal(v, before[k]), k
        assert not update.optimizer.state  # Adam never stepped: its moments are not poisoned either

    def test_one_nan_reward_skips_only_tainted_minibatches(self) -> None:
        """A single NaN reward skips the minibatches its advantages reach; the rest still step, weights stay finite."""
        model, update, buffer = setup(normalize_value=True)
        buffer.rewards[3, 1] = float("nan")
        stats_before = model.value_normalizer.count.item()
        stats = update.run(buffer)
        assert 0 < stats["nan_skipped"] < update.config.epochs * (T * N // 8)
        assert stats["minibatches"] + stats["nan_skipped"] == update.config.epochs * (T * N // 8)
        assert all(torch.isfinite(v).all() for v in model.state_dict().values())
        assert model.value_normalizer.count.item() == stats_before  # non-finite returns never reach the statistics

    def test_nan_gradient_skips_only_that_step(self) -> None:
        """A non-finite gradient in one minibatch skips that step; the others still apply."""
        model, update, buffer = setup()
        calls = {"n": 0}

        def poison(grad: torch.Tensor) -> torch.Tensor:
            calls["n"] += 1
            return grad * float("nan") if calls["n"] == 2 else grad

        model.critic_head.bias.register_hook(poison)
        stats = update.run(buffer)
        assert stats["nan_skipped"] == 1
        assert stats["minibatches"] == update.config.epochs * (T * N // 8) - 1
        assert all(torch.isfinite(p).all() for p in model.parameters())


class TestDeterminism:
    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    def test_same_seed_same_update(self, space: str) -> None:
        """The same seed gives identical stats and identical weights."""
        model_a, update_a, buffer_a = setup(seed=5, space=space)
        model_b, update_b, buffer_b = setup(seed=5, space=space)
        assert update_a.run(buffer_a) == update_b.run(buffer_b)
        for (k, a), b in zip(model_a.state_dict().items(), model_b.state_dict().values()):
            assert torch.equal(a, b), k


class TestConfig:
    def test_rejects_unknown_advantage_mode(self) -> None:
        """An unknown normalize_advantage mode is rejected with the valid names."""
        with pytest.raises(ValueError, match="minibatch"):
            PPOConfig(normalize_advantage="global")


class TestClipGradNorm:
    def test_equals_torchs_clip_grad_norm_bit_for_bit(self) -> None:
        """The returned norm and the scaled gradients equal torch.nn.utils.clip_grad_norm_'s, clipped or not."""
        generator = torch.Generator().manual_seed(0)
        for max_norm in (0.5, 1e6, float("inf")):
            grads = [torch.randn(shape, generator=generator) * 3 for shape in ((64, 17), (64,), (64, 64), (6,), (1,))]
            params = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
            for param, grad in zip(params, grads, strict=True):
                param.grad = grad.clone()
            expected = torch.nn.utils.clip_grad_norm_(params, max_norm)
            ours = [g.clone() for g in grads]
            assert torch.equal(clip_grad_norm(ours, max_norm), expected)
            for mine, param in zip(ours, params, strict=True):
                assert torch.equal(mine, param.grad)
