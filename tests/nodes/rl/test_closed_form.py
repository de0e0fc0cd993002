"""Tests for ``ClosedFormStep``: its loss and gradients against autograd's, its updates against torch's Adam."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dnne.nodes.flat_adam import FlatAdam
from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.closed_form import ClosedFormStep, _mean, normalized
from dnne.nodes.rl.ppo import PPOConfig, PPOUpdate, _normalized
from dnne.nodes.rl.ppo_loss import ppo_loss
from dnne.nodes.rl.rollout import RolloutBuffer

OBS, ACT, B = 5, 3, 64
NETWORKS = {
    "gaussian, own critic, tanh": dict(action_space="continuous", activation="tanh", shared_trunk=False),
    "gaussian, shared trunk, elu": dict(action_space="continuous", activation="elu", shared_trunk=True),
    "categorical, own critic, relu": dict(action_space="discrete", activation="relu", shared_trunk=False),
    "categorical, shared trunk, tanh": dict(action_space="discrete", activation="tanh", shared_trunk=True),
}


def network(seed: int = 0, hidden: tuple[int, ...] = (16, 16), **kwargs: object) -> ActorCritic:
    """A small actor-critic with weights moved off their initial values (a policy head that is not near zero)."""
    torch.manual_seed(seed)
    model = ActorCritic(OBS, ACT, hidden, init_log_std=-0.5, **kwargs)  # type: ignore[arg-type]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    return model


def minibatch(model: ActorCritic, seed: int = 1) -> dict[str, torch.Tensor]:
    """Inputs, actions and stored columns where both ratio bounds and both value-clip branches occur."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, OBS, generator=g)
    actions = torch.randint(0, ACT, (B,), generator=g) if model.discrete else torch.randn(B, ACT, generator=g)
    with torch.no_grad():
        log_prob, _, values = model.evaluate(x, actions)
    return {"x": x, "actions": actions, "advantages": _normalized(torch.randn(B, generator=g)),
            "old_log_prob": log_prob + torch.randn(B, generator=g) * 0.4,
            "old_values": values + torch.randn(B, generator=g) * 0.3, "returns": values + torch.randn(B, generator=g)}


def assert_gradients_close(ours: torch.Tensor, theirs: torch.Tensor, name: str) -> None:
    """Equal to float32 rounding: within 1e-5 of the largest entry (sums of large terms round alike large)."""
    torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5 * float(theirs.abs().max()) + 1e-7, msg=name)


def autograd_terms(model: ActorCritic, mb: dict[str, torch.Tensor], clip_value_loss: bool, entropy_coef: float):
    """``ppo_loss`` of the minibatch through autograd, and every parameter's gradient."""
    log_prob, entropy, values = model.evaluate(mb["x"], mb["actions"])
    terms = ppo_loss(log_prob, mb["old_log_prob"], mb["advantages"], values, mb["old_values"], mb["returns"], entropy,
                     0.2, 0.5, entropy_coef, clip_value_loss)
    model.zero_grad(set_to_none=True)
    terms.total.backward()
    return terms, {name: p.grad.clone() for name, p in model.named_parameters()}


class TestGradients:
    @pytest.mark.parametrize("name", list(NETWORKS))
    @pytest.mark.parametrize("clip_value_loss", [True, False])
    def test_loss_and_gradients_equal_autograd(self, name: str, clip_value_loss: bool) -> None:
        """Every loss term and every parameter's gradient agree with autograd's through ``ppo_loss``."""
        model = network(**NETWORKS[name])
        mb = minibatch(model)
        expected, grads = autograd_terms(model, mb, clip_value_loss, entropy_coef=0.01)
        stepper = ClosedFormStep.build(model, torch.optim.Adam(model.parameters()))
        assert stepper is not None
        stepper.begin()
        terms, gradients = stepper.loss(*(mb[k].numpy() for k in ("x", "actions", "advantages", "old_log_prob",
                                                                    "old_values", "returns")),
                                        0.2, 0.5, 0.01, clip_value_loss)
        with torch.no_grad():
            ratio = (model.evaluate(mb["x"], mb["actions"])[0] - mb["old_log_prob"]).exp()
        assert (ratio < 0.8).any() and (ratio > 1.2).any()  # both bounds of the clip are exercised
        for field in ("total", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction"):
            assert getattr(terms, field) == pytest.approx(float(getattr(expected, field).detach()), rel=1e-5,
                                                           abs=1e-6), field
        gradients()
        for (param_name, param), part in zip(model.named_parameters(), stepper._slices, strict=True):
            assert_gradients_close(torch.from_numpy(stepper.grads[part].reshape(param.shape)), grads[param_name],
                                   param_name)

    def test_no_hidden_layers(self) -> None:
        """Heads reading the input directly (``hidden_sizes=[]``) step too."""
        model = network(hidden=(), action_space="continuous", activation="tanh", shared_trunk=True)
        mb = minibatch(model)
        _, grads = autograd_terms(model, mb, True, 0.0)
        stepper = ClosedFormStep.build(model, torch.optim.Adam(model.parameters()))
        assert stepper is not None
        stepper.begin()
        stepper.loss(*(mb[k].numpy() for k in ("x", "actions", "advantages", "old_log_prob", "old_values",
                                               "returns")), 0.2, 0.5, 0.0, True)[1]()
        for (param_name, param), part in zip(model.named_parameters(), stepper._slices, strict=True):
            assert_gradients_close(torch.from_numpy(stepper.grads[part].reshape(param.shape)), grads[param_name],
                                   param_name)

    def test_normalized_equals_torch(self) -> None:
        """Minibatch advantage normalisation as ``ppo._normalized``; one sample is returned as it is."""
        x = torch.randn(37)
        np.testing.assert_allclose(normalized(x.numpy()), _normalized(x).numpy(), rtol=1e-5, atol=1e-6)
        one = np.array([3.0], dtype=np.float32)
        assert normalized(one) is one

    @pytest.mark.parametrize("dtype", [np.float32, np.float64])
    def test_mean_and_normalized_equal_numpys_own_bit_for_bit(self, dtype: type) -> None:
        """``_mean`` and ``normalized`` skip numpy's Python-level ``mean`` and ``std``: the same numbers, over
        sizes, scales and offsets where float32 rounding shows."""
        rng = np.random.default_rng(0)
        for size in (2, 3, 64, 127, 128, 1000, 2048):
            for scale in (1e-3, 1.0, 1e3):
                x = (rng.standard_normal(size) * scale + rng.uniform(-5, 5)).astype(dtype)
                assert _mean(x) == float(x.mean())
                expected = (x - x.mean()) / (x.std(ddof=1) + np.float32(1e-8))
                assert normalized(x).dtype == expected.dtype
                np.testing.assert_array_equal(normalized(x), expected)


def filled_rollout(model: ActorCritic, nan_at: tuple[int, int] | None = None) -> RolloutBuffer:
    """A 16-step rollout of 8 envs acted by ``model``, seeded; a NaN observation at ``nan_at`` (step, env)."""
    g = torch.Generator().manual_seed(7)
    T, N = 16, 8
    discrete = model.discrete
    buffer = RolloutBuffer(T, N, (OBS,), () if discrete else (ACT,), torch.long if discrete else torch.float32)
    for _ in range(T):
        res = model.act(torch.randn(N, OBS, generator=g), generator=g)
        buffer.add(res.observation, res.action, res.log_prob, res.value, torch.randn(N, generator=g),
                   torch.rand(N, generator=g) < 0.1, torch.rand(N, generator=g) < 0.05,
                   model.value(torch.randn(N, OBS, generator=g)))
    if nan_at is not None:
        buffer.observations[nan_at] = float("nan")
    return buffer


def updates(name: str, optimizer: type[torch.optim.Adam], **config: object) -> list[tuple[ActorCritic, PPOUpdate]]:
    """The same model, optimizer and update twice: closed form first, autograd second."""
    pairs = []
    for closed_form in (True, False):
        model = network(**NETWORKS[name], normalize_value=True)
        cfg = PPOConfig(epochs=4, minibatch_size=32, entropy_coef=0.01, clip_value_loss=True, closed_form=closed_form,
                        **config)  # type: ignore[arg-type]
        pairs.append((model, PPOUpdate(model, optimizer(model.parameters(), lr=1e-3, eps=1e-5), cfg,
                                       torch.Generator().manual_seed(3))))
    return pairs


class TestUpdate:
    @pytest.mark.parametrize("name", list(NETWORKS))
    @pytest.mark.parametrize("optimizer", [FlatAdam, torch.optim.Adam])
    def test_updates_equal_autograd_and_torch_adam(self, name: str, optimizer: type[torch.optim.Adam]) -> None:
        """Two updates in closed form leave the weights, Adam's moments and step counts, and the statistics that
        autograd with torch's (or FlatAdam's) step leaves."""
        pairs = updates(name, optimizer)
        stats = [[update.run(filled_rollout(model)) for _ in range(2)] for model, update in pairs]
        (ours, ours_update), (theirs, theirs_update) = pairs
        for a, b in zip(stats[0], stats[1], strict=True):
            assert a.keys() == b.keys()
            for key in a:
                assert a[key] == pytest.approx(b[key], rel=1e-4, abs=1e-5), key
        for (param_name, a), b in zip(ours.named_parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=param_name)
            state_a, state_b = ours_update.optimizer.state[a], theirs_update.optimizer.state[b]
            assert float(state_a["step"]) == float(state_b["step"]) == 32.0
            torch.testing.assert_close(state_a["exp_avg"], state_b["exp_avg"], rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(state_a["exp_avg_sq"], state_b["exp_avg_sq"], rtol=1e-4, atol=1e-9)

    def test_a_nan_observation_skips_only_its_minibatches(self) -> None:
        """A minibatch holding a non-finite input is skipped; the others step and the weights stay finite."""
        (model, update), _ = updates("gaussian, own critic, tanh", FlatAdam)
        stats = update.run(filled_rollout(model, nan_at=(5, 2)))
        assert stats["nan_skipped"] == 4  # the sample is in one minibatch of each of the 4 epochs
        assert stats["minibatches"] == 4 * (16 * 8 // 32) - 4
        assert all(torch.isfinite(p).all() for p in model.parameters())

    def test_target_kl_stops_at_the_same_minibatch(self) -> None:
        """A tiny ``target_kl`` stops both paths before the same minibatch."""
        pairs = updates("categorical, own critic, relu", FlatAdam, target_kl=1e-4)
        stats = [update.run(filled_rollout(model)) for model, update in pairs]
        assert stats[0]["early_stopped"] == stats[1]["early_stopped"] == 1
        assert stats[0]["minibatches"] == stats[1]["minibatches"]


class TestWhatItSteps:
    @pytest.mark.parametrize("kwargs", [
        dict(recurrent="gru"), dict(activation="gelu"), dict(encoder="cnn", image_shape=[1, 1, OBS], cnn_channels=[2], cnn_kernels=[1], cnn_strides=[1]),
    ], ids=["recurrent", "gelu", "cnn"])
    def test_networks_it_cannot_step_take_autograd(self, kwargs: dict[str, object]) -> None:
        """Recurrent cores, activations without a written-out derivative and CNNs are not stepped here."""
        model = ActorCritic(OBS, ACT, (16,), **kwargs)  # type: ignore[arg-type]
        assert ClosedFormStep.build(model, torch.optim.Adam(model.parameters())) is None

    def test_other_optimizers_hooks_and_partial_groups_take_autograd(self) -> None:
        """Only a plain Adam over exactly the model's parameters, none with a hook."""
        model = network(action_space="continuous", activation="tanh", shared_trunk=False)
        assert ClosedFormStep.build(model, torch.optim.SGD(model.parameters(), lr=0.1)) is None
        assert ClosedFormStep.build(model, torch.optim.Adam(model.parameters(), weight_decay=0.1)) is None
        assert ClosedFormStep.build(model, torch.optim.Adam(list(model.parameters())[1:])) is None
        assert ClosedFormStep.build(model, torch.optim.Adam(model.parameters())) is not None
        model.critic_head.bias.register_hook(lambda grad: grad)
        assert ClosedFormStep.build(model, torch.optim.Adam(model.parameters())) is None

    @pytest.mark.parametrize("change", ["frozen", "shared weight", "bias-less layer", "head of another class",
                                        "network hook", "optimizer hook", "adam subclass"])
    def test_what_it_would_step_otherwise_takes_autograd(self, change: str) -> None:
        """Frozen or shared parameters, layers it does not write out, and hooks autograd's path runs are refused."""
        model = network(action_space="continuous", activation="tanh", shared_trunk=False)
        optimizer_class: type[torch.optim.Adam] = torch.optim.Adam
        if change == "frozen":
            model.log_std.requires_grad_(False)
        elif change == "shared weight":
            model.critic_trunk[0] = model.trunk[0]
        elif change == "bias-less layer":
            model.trunk[2] = torch.nn.Linear(16, 16, bias=False)
        elif change == "head of another class":
            model.actor_head = torch.nn.Sequential(torch.nn.Linear(16, ACT))
        elif change == "network hook":
            model.register_forward_hook(lambda module, args, output: output)
        elif change == "adam subclass":
            class Adam(torch.optim.Adam):
                """A user's Adam, whose step may differ."""

            optimizer_class = Adam
        optimizer = optimizer_class(model.parameters())
        if change == "optimizer hook":
            optimizer.register_step_post_hook(lambda *args: None)
        assert ClosedFormStep.build(model, optimizer) is None

    def test_a_gradient_norm_past_float32_skips_the_step(self) -> None:
        """Gradients whose norm torch's float32 sum would make infinite are not applied (torch's NaN guard)."""
        model = network(action_space="continuous", activation="tanh", shared_trunk=False)
        stepper = ClosedFormStep.build(model, torch.optim.Adam(model.parameters()))
        assert stepper is not None
        stepper.begin()
        weights = stepper.weights.copy()
        stepper.grads.fill(1e18)
        assert not stepper.clip_and_apply(0.5, 1e-3, (0.9, 0.999), 1e-8)
        np.testing.assert_array_equal(stepper.weights, weights)
        stepper.grads.fill(1e-3)
        assert stepper.clip_and_apply(0.5, 1e-3, (0.9, 0.999), 1e-8)
        assert not np.array_equal(stepper.weights, weights)

    def test_building_creates_no_optimizer_state(self) -> None:
        """An update that applied no step leaves the optimizer without state, as torch's would."""
        model = network(action_space="continuous", activation="tanh", shared_trunk=False)
        optimizer = torch.optim.Adam(model.parameters())
        stepper = ClosedFormStep.build(model, optimizer)
        assert stepper is not None
        stepper.begin()
        stepper.end()
        assert not optimizer.state
