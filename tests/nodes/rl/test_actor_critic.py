"""Tests for the shared-trunk actor-critic."""
from __future__ import annotations

import copy
import math
import warnings

import pytest
import torch
from torch.distributions import Categorical, Normal

from dnne.nodes.rl.actor_critic import ActorCritic, ActResult
from dnne.nodes.rl.categorical import CategoricalLogits
from dnne.nodes.rl.gaussian import DiagonalGaussian

OBS, ACT, B = 8, 3, 32


def make(space: str, **kw) -> ActorCritic:
    torch.manual_seed(0)
    return ActorCritic(OBS, ACT, hidden_sizes=(64, 32), action_space=space, **kw)


def obs(seed: int = 1, scale: float = 1.0, shift: float = 0.0) -> torch.Tensor:
    return torch.randn(B, OBS, generator=torch.Generator().manual_seed(seed)) * scale + shift


class TestArchitecture:
    def test_shared_trunk_and_heads(self) -> None:
        """One trunk of Linear+activation per hidden size, then an actor head and a scalar critic head."""
        model = make("continuous")
        linears = [m for m in model.trunk if isinstance(m, torch.nn.Linear)]
        assert [(m.in_features, m.out_features) for m in linears] == [(OBS, 64), (64, 32)]
        assert isinstance(model.trunk[1], torch.nn.ELU)
        assert (model.actor_head.in_features, model.actor_head.out_features) == (32, ACT)
        assert (model.critic_head.in_features, model.critic_head.out_features) == (32, 1)
        assert model.log_std is not None and make("discrete").log_std is None

    def test_orthogonal_init_gains(self) -> None:
        """Hidden layers are orthogonal with gain sqrt(2), the policy head 0.01, the value head 1.0, biases 0."""
        model = make("continuous", init_log_std=-0.5)
        w0, w1 = model.trunk[0].weight, model.trunk[2].weight
        # (64, 8): orthonormal columns; (32, 64): orthonormal rows
        assert torch.allclose(w0.T @ w0, 2.0 * torch.eye(OBS), atol=1e-5)
        assert torch.allclose(w1 @ w1.T, 2.0 * torch.eye(32), atol=1e-5)
        wa = model.actor_head.weight
        assert torch.allclose(wa @ wa.T, 1e-4 * torch.eye(ACT), atol=1e-8)
        assert model.critic_head.weight.norm().item() == pytest.approx(1.0, abs=1e-5)
        for layer in (model.trunk[0], model.trunk[2], model.actor_head, model.critic_head):
            assert torch.count_nonzero(layer.bias) == 0
        assert torch.allclose(model.log_std, torch.full((ACT,), -0.5))

    def test_bad_action_space(self) -> None:
        """An unknown action space is rejected with the valid names."""
        with pytest.raises(ValueError, match="continuous"):
            ActorCritic(OBS, ACT, action_space="box")


class TestSeparateCritic:
    def test_value_gradients_leave_the_policy_alone(self) -> None:
        """With shared_trunk false the critic has its own MLP: a value loss puts no gradient on the actor's trunk,
        head or log std, and a policy loss none on the critic's trunk."""
        net = make("continuous", shared_trunk=False)
        assert net.critic_trunk is not None
        log_prob, _, value = net.evaluate(obs(), torch.zeros(B, ACT))
        value.square().mean().backward()
        assert all(p.grad is None for p in [*net.trunk.parameters(), *net.actor_head.parameters(), net.log_std])
        assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.critic_trunk.parameters())
        net.zero_grad(set_to_none=True)
        log_prob, _, _ = net.evaluate(obs(), torch.zeros(B, ACT))
        log_prob.mean().backward()
        assert all(p.grad is None for p in net.critic_trunk.parameters())

    def test_value_is_the_critic_trunk_then_head(self) -> None:
        """The value equals the critic head applied to the critic trunk's features (an independent forward pass)."""
        net = make("continuous", shared_trunk=False)
        x = obs()
        expected = net.critic_head(net.critic_trunk(x)).squeeze(-1)
        torch.testing.assert_close(net(x)[1], expected)

    def test_needs_a_plain_mlp(self) -> None:
        with pytest.raises(ValueError, match="shared_trunk false"):
            make("continuous", shared_trunk=False, recurrent="gru")

    def test_obs_clip(self) -> None:
        """Normalised inputs are clamped at obs_clip (10 here, 5 by default)."""
        wide, narrow = make("continuous", normalize_input=True, obs_clip=10.0), make("continuous", normalize_input=True)
        big = torch.full((1, OBS), 7.5)
        assert wide.normalize_obs(big).max().item() == pytest.approx(7.5, rel=1e-4)
        assert narrow.normalize_obs(big).max().item() == pytest.approx(5.0)


class TestDistributions:
    def test_continuous_shapes_log_prob_entropy(self) -> None:
        """Continuous: shapes, and log_prob/entropy equal Normal's summed over action dims."""
        model = make("continuous", init_log_std=-0.3)
        x = obs()
        params, value = model(x)
        assert params["mean"].shape == params["std"].shape == (B, ACT) and value.shape == (B,)
        assert torch.allclose(params["std"], torch.full((B, ACT), math.exp(-0.3)))
        actions = torch.randn(B, ACT, generator=torch.Generator().manual_seed(2))
        log_prob, entropy, v = model.evaluate(x, actions)
        ref = Normal(params["mean"], params["std"])
        assert torch.allclose(log_prob, ref.log_prob(actions).sum(-1))
        assert torch.allclose(entropy, ref.entropy().sum(-1))
        assert torch.allclose(v, value)

    def test_discrete_shapes_log_prob_entropy(self) -> None:
        """Discrete: shapes, and log_prob/entropy equal Categorical's from the logits."""
        model = make("discrete")
        x = obs()
        params, value = model(x)
        assert params["logits"].shape == (B, ACT) and value.shape == (B,)
        actions = torch.randint(0, ACT, (B,), generator=torch.Generator().manual_seed(2))
        log_prob, entropy, _ = model.evaluate(x, actions)
        ref = Categorical(logits=params["logits"])
        assert torch.allclose(log_prob, ref.log_prob(actions))
        assert torch.allclose(entropy, ref.entropy())

    def test_evaluate_has_gradients(self) -> None:
        """evaluate keeps autograd so the loss reaches every parameter."""
        model = make("continuous")
        x = obs()
        log_prob, entropy, value = model.evaluate(x, torch.zeros(B, ACT))
        (log_prob.sum() + entropy.sum() + value.sum()).backward()
        assert all(p.grad is not None for p in model.parameters())


class TestAct:
    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    def test_shapes_and_log_prob(self, space: str) -> None:
        """act returns batched actions, their log-probs under the policy, values, params and the network input."""
        model = make(space)
        result = model.act(obs(), generator=torch.Generator().manual_seed(3))
        assert isinstance(result, ActResult)
        if space == "continuous":
            assert result.action.shape == (B, ACT) and result.action.dtype == torch.float32
        else:
            assert result.action.shape == (B,) and result.action.dtype == torch.long
        assert result.log_prob.shape == result.value.shape == (B,)
        assert not result.action.requires_grad and not result.log_prob.requires_grad
        assert torch.allclose(result.log_prob, model.distribution(result.params).log_prob(result.action))
        assert torch.allclose(result.value, model.value(result.observation))

    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    def test_seeded_generator_reproducible(self, space: str) -> None:
        """The same generator seed gives the same actions; another seed gives different ones."""
        model = make(space, init_log_std=1.0)
        a = model.act(obs(), generator=torch.Generator().manual_seed(7)).action
        b = model.act(obs(), generator=torch.Generator().manual_seed(7)).action
        c = model.act(obs(), generator=torch.Generator().manual_seed(8)).action
        assert torch.equal(a, b) and not torch.equal(a, c)

    def test_continuous_sample_statistics(self) -> None:
        """Sampled continuous actions have the policy's mean and std."""
        model = make("continuous", init_log_std=math.log(0.7))
        x = obs()[:1].expand(20000, OBS)
        result = model.act(x, generator=torch.Generator().manual_seed(4))
        mean = result.params["mean"][0]
        assert torch.allclose(result.action.mean(0), mean, atol=0.02)
        assert torch.allclose(result.action.std(0), torch.full((ACT,), 0.7), atol=0.02)

    def test_discrete_sample_frequencies(self) -> None:
        """Sampled discrete actions follow softmax(logits)."""
        model = make("discrete")
        with torch.no_grad():
            model.actor_head.bias.copy_(torch.tensor([1.0, 0.0, -1.0]))
        x = obs()[:1].expand(20000, OBS)
        result = model.act(x, generator=torch.Generator().manual_seed(4))
        freq = torch.bincount(result.action, minlength=ACT).float() / 20000
        assert torch.allclose(freq, result.params["logits"][0].softmax(-1), atol=0.015)

    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    def test_deterministic(self, space: str) -> None:
        """Deterministic acting takes the mean or the arg-max."""
        model = make(space)
        result = model.act(obs(), deterministic=True)
        key = "logits" if space == "discrete" else "mean"
        expected = result.params[key].argmax(-1) if space == "discrete" else result.params[key]
        assert torch.equal(result.action, expected)


    def test_log_probs_follow_the_log_std(self) -> None:
        """Acting reuses the Gaussian's terms of the log std between updates: after an optimizer step, a loaded
        state, another batch size, and in a deep copy whose counters climb back to the original's numbers, its
        log-probabilities still equal ``distribution(...).log_prob`` exactly."""
        net = ActorCritic(3, 2, (8,), "tanh", init_log_std=-0.5)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.5)
        generator = torch.Generator().manual_seed(0)

        def check(model: ActorCritic, batch: int) -> None:
            out = model.act(torch.randn(batch, 3, generator=generator), generator=generator)
            with torch.no_grad():
                expected = model.distribution(out.params).log_prob(out.action)
            assert torch.equal(out.log_prob, expected)

        check(net, 4)
        net.log_std.grad = torch.ones(2)
        optimizer.step()
        check(net, 4)
        net.load_state_dict({**net.state_dict(), "log_std": torch.tensor([0.3, -1.2])})
        check(net, 4)
        check(net, 7)
        twin = copy.deepcopy(net)
        with torch.no_grad():
            while twin.log_std._version < net.log_std._version:
                twin.log_std.add_(0.25)
        check(twin, 7)

    def test_a_subclass_s_own_distribution_is_used(self) -> None:
        """A subclass that computes its distribution otherwise acts with it, not with terms of the log std."""
        class Wider(ActorCritic):
            """Doubles the std it is given."""

            def distribution(self, params: dict[str, torch.Tensor]) -> DiagonalGaussian | CategoricalLogits:
                return DiagonalGaussian(params["mean"], 2 * params["std"])

        net = Wider(3, 2, (8,), "tanh", init_log_std=-0.5)
        out = net.act(torch.randn(4, 3), generator=torch.Generator().manual_seed(0))
        assert torch.equal(out.log_prob, DiagonalGaussian(out.params["mean"], 2 * out.params["std"]).log_prob(
            out.action))


class TestNormalization:
    def test_input_normalizer_applied_and_not_updated_by_act(self) -> None:
        """With normalize_input the network sees normalized observations; act does not move the statistics."""
        model = make("continuous", normalize_input=True)
        raw = obs(scale=5.0, shift=3.0)
        assert torch.equal(model.normalize_obs(raw), model.obs_normalizer.normalize(raw))
        model.update_obs_stats(raw)
        count = model.obs_normalizer.count.item()
        result = model.act(raw)
        assert model.obs_normalizer.count.item() == count
        expected = ((raw - raw.mean(0)) / (raw.var(0, unbiased=False) + 1e-5).sqrt()).clamp(-5, 5)
        assert torch.allclose(result.observation, expected, atol=1e-5)
        assert torch.allclose(result.params["mean"], model(expected)[0]["mean"], atol=1e-5)

    def test_without_normalizers_obs_passes_through(self) -> None:
        """Without normalize_input the observation is fed as is and update_obs_stats is a no-op."""
        model = make("continuous")
        raw = obs(scale=5.0)
        model.update_obs_stats(raw)
        assert model.obs_normalizer is None and model.value_normalizer is None
        assert torch.equal(model.act(raw).observation, raw)

    def test_value_normalizer_denormalizes_act_and_value(self) -> None:
        """With normalize_value, forward gives critic-space values and act/value give denormalized ones."""
        model = make("continuous", normalize_value=True)
        model.value_normalizer.update(torch.tensor([10.0, 30.0, 50.0]))
        x = obs()
        critic_value = model(x)[1]
        expected = critic_value * math.sqrt(model.value_normalizer.var.item() + 1e-5) + 30.0
        assert torch.allclose(model.act(x).value, expected, atol=1e-4)
        assert torch.allclose(model.value(x), expected, atol=1e-4)
        assert torch.allclose(model.normalize_value(model.denormalize_value(critic_value)), critic_value, atol=1e-5)

    def test_normalizers_in_state_dict(self) -> None:
        """Normalizer statistics are saved and restored with the model."""
        model = make("continuous", normalize_input=True, normalize_value=True)
        model.update_obs_stats(obs(scale=3.0))
        clone = make("continuous", normalize_input=True, normalize_value=True)
        clone.load_state_dict(model.state_dict())
        assert torch.equal(clone.obs_normalizer.mean, model.obs_normalizer.mean)


class TestDeployable:
    @pytest.mark.parametrize("space", ["continuous", "discrete"])
    @pytest.mark.parametrize("normalize_input", [False, True])
    def test_scripted_matches_deterministic_act(self, space: str, normalize_input: bool) -> None:
        """The scripted and traced policy map raw observations to act(deterministic=True)'s actions."""
        model = make(space, normalize_input=normalize_input)
        model.update_obs_stats(obs(seed=9, scale=4.0, shift=2.0))
        raw = obs(seed=10, scale=4.0, shift=2.0)
        expected = model.act(raw, deterministic=True).action
        policy = model.deployable()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # TorchScript is deprecated in recent torch; it still works
            scripted = torch.jit.script(policy)
            traced = torch.jit.trace(policy, raw)
        for module in (policy, scripted, traced):
            out = module(raw)
            if space == "discrete":
                assert torch.equal(out, expected)
            else:
                assert torch.allclose(out, expected, atol=1e-6)

    def test_snapshot_independent_of_training(self) -> None:
        """Changing the model after export does not change the exported policy."""
        model = make("continuous")
        policy = model.deployable()
        raw = obs()
        before = policy(raw).clone()
        with torch.no_grad():
            model.actor_head.bias.add_(1.0)
        assert torch.equal(policy(raw), before)
