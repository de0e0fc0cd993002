"""``ClosedFormStep``: PPO minibatch steps of a small MLP actor-critic on the CPU, with the gradients written out.

A minibatch step of the networks PPO trains on proprioceptive tasks (MLPs of [64, 64]) does little arithmetic, and
torch's cost per operation (dispatch, building and running autograd's graph, one Python call per tensor in the
optimizer) is most of its time: 1.23 ms a step of 128 samples for the locomotion graphs' actor-critic on this
project's 2-core machine, 0.91 ms of it the forward pass, the loss and the backward pass. This module computes the
same loss as ``ppo_loss`` and its gradients by the chain rule written out by hand, through the heads and the MLPs,
with torch's rules where ``min``, ``max`` and ``clamp`` meet a tie or a bound; then the gradient clip and Adam's
update with torch's arithmetic, all on numpy arrays, whose operations cost a fraction of torch's on arrays this
small. The numbers agree with autograd's and torch's Adam to float32 rounding, not bit for bit
(``tests/nodes/rl/test_closed_form.py``).

``ClosedFormStep.build`` takes a model and optimizer it can step and gives ``None`` for anything else, which then
takes autograd (``PPOUpdate`` also keeps autograd for sequence minibatches): a network on another device or dtype,
a recurrent core or a CNN, layers without a bias or of other classes, an activation other than tanh, ReLU or ELU,
frozen or shared parameters, hooks on the parameters, on the network or on the optimizer's step, an optimizer other
than torch's plain Adam (or ``EagerAdam``, ``FlatAdam``) over exactly the model's parameters. The weights and Adam's
moments are copied into flat arrays when an update begins and written back when it ends (also when it fails), so
between updates the model and the optimizer hold what torch's own step would have left; the learning rate and
Adam's other settings are read once, when the update begins.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.modules.module as module_hooks
from torch import nn

from dnne.nodes.eager_adam import EagerAdam
from dnne.nodes.flat_adam import FlatAdam, has_step_hooks, is_plain_adam_group
from dnne.nodes.rl.actor_critic import ActorCritic

_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))
_FLOAT32_MAX = float(np.finfo(np.float32).max)

# activation: (forward in place on the pre-activation, d loss/d pre-activation from d loss/d output and the output)
_Activation = tuple[Callable[[np.ndarray], None], Callable[[np.ndarray, np.ndarray], None]]


def _tanh_forward(z: np.ndarray) -> None:
    np.tanh(z, out=z)


def _tanh_backward(d: np.ndarray, h: np.ndarray) -> None:
    d *= 1.0 - h * h


def _relu_forward(z: np.ndarray) -> None:
    np.maximum(z, 0.0, out=z)


def _relu_backward(d: np.ndarray, h: np.ndarray) -> None:
    d *= h > 0.0


def _elu_forward(z: np.ndarray) -> None:
    np.copyto(z, np.expm1(np.minimum(z, 0.0)), where=z <= 0.0)


def _elu_backward(d: np.ndarray, h: np.ndarray) -> None:
    d *= np.where(h > 0.0, 1.0, h + 1.0)


# torch's Adam and this project's two forms of it (the same step); a subclass may step otherwise
_ADAMS = (torch.optim.Adam, EagerAdam, FlatAdam)

_ACTIVATIONS: dict[type[nn.Module], _Activation] = {
    nn.Tanh: (_tanh_forward, _tanh_backward),
    nn.ReLU: (_relu_forward, _relu_backward),
}


def _activation(module: nn.Module) -> _Activation | None:
    """The forward and backward of ``module``, or ``None`` when this module cannot step it."""
    if type(module) is nn.ELU and module.alpha == 1.0:
        return _elu_forward, _elu_backward
    return _ACTIVATIONS.get(type(module))


def _linear_layers(model: ActorCritic) -> list[nn.Linear] | None:
    """The linear layers of the trunks and heads, or ``None`` unless each trunk is linear layers with a bias, each
    followed by an activation this module can step, and each head one linear layer with a bias."""
    layers: list[nn.Linear] = []
    for trunk in (model.trunk, model.critic_trunk):
        if trunk is None:
            continue
        if type(trunk) is not nn.Sequential or len(trunk) % 2:
            return None
        for index, module in enumerate(trunk):
            if type(module) is not nn.Linear if index % 2 == 0 else _activation(module) is None:
                return None
        layers += trunk[::2]
    layers += [model.actor_head, model.critic_head]
    if any(type(layer) is not nn.Linear or layer.bias is None for layer in layers):
        return None
    return layers


@dataclass
class _Layer:
    """One linear layer: numpy views of its weight and bias in the flat weights and gradients, and its activation
    (``None``: a head, no activation)."""

    weight: np.ndarray
    bias: np.ndarray
    weight_grad: np.ndarray
    bias_grad: np.ndarray
    activation: _Activation | None


@dataclass
class StepTerms:
    """A minibatch's loss terms as floats (``ppo_loss``'s ``LossTerms`` without the autograd total)."""

    total: float
    policy_loss: float
    value_loss: float
    entropy: float
    approx_kl: float
    clip_fraction: float


class ClosedFormStep:
    """Steps one ``ActorCritic`` and its Adam optimizer over numpy copies of their state; build with ``build``.

    Args:
        model: the network (an MLP trunk, the critic's own MLP or none, the heads).
        optimizer: a plain Adam over exactly ``model``'s parameters, one group.
        params: the optimizer group's parameters, in its order (the order of the flat arrays).
    """

    def __init__(self, model: ActorCritic, optimizer: torch.optim.Adam, params: list[nn.Parameter]) -> None:
        self.optimizer = optimizer
        self.params = params
        self.discrete = model.discrete
        sizes = [p.numel() for p in params]
        self.weights = np.empty(sum(sizes), dtype=np.float32)
        self.grads = np.zeros_like(self.weights)
        self.exp_avg = np.zeros_like(self.weights)
        self.exp_avg_sq = np.zeros_like(self.weights)
        self._scratch = np.empty_like(self.weights)
        offsets = np.cumsum([0, *sizes])
        views = {id(p): (self.weights[a:b].reshape(p.shape), self.grads[a:b].reshape(p.shape))
                 for p, a, b in zip(params, offsets[:-1], offsets[1:], strict=True)}
        self._slices = [slice(a, b) for a, b in zip(offsets[:-1], offsets[1:], strict=True)]

        def layers(modules: list[nn.Module]) -> list[_Layer]:
            out: list[_Layer] = []
            for module in modules:
                if type(module) is nn.Linear:
                    (w, gw), (b, gb) = views[id(module.weight)], views[id(module.bias)]
                    out.append(_Layer(w, b, gw, gb, None))
                else:
                    out[-1].activation = _activation(module)
            return out

        self.trunk = layers(list(model.trunk))
        self.critic_trunk = None if model.critic_trunk is None else layers(list(model.critic_trunk))
        self.actor_head = layers([model.actor_head])[0]
        self.critic_head = layers([model.critic_head])[0]
        if model.log_std is not None:
            self.log_std, self.log_std_grad = views[id(model.log_std)]
        self.step_count = 0.0

    @classmethod
    def build(cls, model: nn.Module, optimizer: torch.optim.Optimizer) -> ClosedFormStep | None:
        """A stepper for ``model`` and ``optimizer``, or ``None`` when they need autograd (see the module's
        docstring)."""
        if type(model) is not ActorCritic or model.core is not None or type(optimizer) not in _ADAMS:
            return None
        if (model._forward_hooks or model._forward_pre_hooks or has_step_hooks(optimizer)
                or module_hooks._global_forward_hooks or module_hooks._global_forward_pre_hooks
                or len(optimizer.param_groups) != 1):
            return None
        group = optimizer.param_groups[0]
        params: list[nn.Parameter] = group["params"]
        layers = _linear_layers(model)
        if layers is None:
            return None
        used = [p for layer in layers for p in (layer.weight, layer.bias)]
        if model.log_std is not None:
            used.append(model.log_std)
        # every parameter in exactly one place: a weight two layers shared would get one layer's gradient only
        ids = [id(p) for p in used]
        if len(set(ids)) != len(ids) or set(ids) != {id(p) for p in params} or len(params) != len(ids):
            return None
        if not is_plain_adam_group(group):
            return None
        if any(not p.requires_grad or p.device.type != "cpu" or p.dtype != torch.float32 or not p.is_contiguous()
               or p.is_sparse or p._backward_hooks or p._post_accumulate_grad_hooks for p in params):
            return None
        states = [optimizer.state.get(p, {}) for p in params]  # the state is a defaultdict: look, do not create
        if any(states) and not all({"step", "exp_avg", "exp_avg_sq"} <= state.keys() for state in states):
            return None
        if any(states) and len({float(state["step"]) for state in states}) != 1:
            return None
        return cls(model, optimizer, params)

    def begin(self) -> None:
        """Copy the weights and Adam's moments and step count in."""
        states = [self.optimizer.state.get(p, {}) for p in self.params]
        self.step_count = float(states[0]["step"]) if states[0] else 0.0
        self.exp_avg.fill(0.0)
        self.exp_avg_sq.fill(0.0)
        for p, part, state in zip(self.params, self._slices, states, strict=True):
            self.weights[part] = p.detach().numpy().reshape(-1)
            if state:
                self.exp_avg[part] = state["exp_avg"].numpy().reshape(-1)
                self.exp_avg_sq[part] = state["exp_avg_sq"].numpy().reshape(-1)

    def end(self) -> None:
        """Write the weights and Adam's state back (its state is created, as torch's step creates it, only when a
        step was applied)."""
        if self.step_count == 0.0:
            return
        with torch.no_grad():
            for p, part in zip(self.params, self._slices, strict=True):
                p.copy_(torch.from_numpy(self.weights[part].reshape(p.shape)))  # through torch: bumps p's version
                state = self.optimizer.state[p]
                if not state:
                    state["step"] = torch.tensor(0.0, dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["step"].fill_(self.step_count)
                state["exp_avg"].numpy()[...] = self.exp_avg[part].reshape(p.shape)
                state["exp_avg_sq"].numpy()[...] = self.exp_avg_sq[part].reshape(p.shape)

    # --- one minibatch ------------------------------------------------------------------------------------------

    def loss(self, x: np.ndarray, actions: np.ndarray, advantages: np.ndarray, old_log_prob: np.ndarray,
             old_values: np.ndarray, returns: np.ndarray, clip_param: float, value_coef: float,
             entropy_coef: float, clip_value_loss: bool) -> tuple[StepTerms, Callable[[], None]]:
        """The loss terms of a minibatch (``ppo_loss``'s, for the network inputs ``x``), and a function that then
        writes the loss's gradients into ``self.grads``."""
        batch = x.shape[0]
        actor_inputs = self._forward(self.trunk, x)
        features = actor_inputs[-1]
        critic_inputs = [features] if self.critic_trunk is None else self._forward(self.critic_trunk, x)
        out = features @ self.actor_head.weight.T
        out += self.actor_head.bias
        values = (critic_inputs[-1] @ self.critic_head.weight.T)[:, 0]
        values += self.critic_head.bias[0]

        # --- the policy's log-probabilities and entropy, and d(-entropy_coef * mean entropy)/d(head output)
        if self.discrete:
            shifted = out - out.max(axis=1, keepdims=True)
            log_pmf = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
            pmf = np.exp(log_pmf)
            rows = np.arange(batch)
            chosen = actions.astype(np.int64)
            log_prob = log_pmf[rows, chosen]
            entropies = -(log_pmf * pmf).sum(axis=1)
            entropy = _mean(entropies)
        else:
            inv_var = np.exp(-2.0 * self.log_std)
            diff = actions - out
            scaled = diff * diff * inv_var
            log_prob = scaled.sum(axis=1) * -0.5 - (float(self.log_std.sum()) + out.shape[1] * _LOG_SQRT_2PI)
            entropy = float((0.5 + 0.5 * math.log(2 * math.pi) + self.log_std).sum())

        # --- policy loss: -mean(min(r A, clip(r) A)); d/d log_prob is -A r / B where the unclipped term is the min
        log_ratio = log_prob - old_log_prob
        ratio = np.exp(log_ratio)
        surrogate = ratio * advantages
        clipped_surrogate = np.clip(ratio, 1.0 - clip_param, 1.0 + clip_param) * advantages
        policy_loss = -_mean(np.minimum(surrogate, clipped_surrogate))

        # --- value loss, optionally the pessimistic max of the clipped and unclipped squared errors
        error = values - returns
        unclipped = error * error
        if clip_value_loss:
            moved = values - old_values
            clipped_values = old_values + np.clip(moved, -clip_param, clip_param)
            clipped_error = clipped_values - returns
            clipped = clipped_error * clipped_error
            value_loss = 0.5 * _mean(np.maximum(unclipped, clipped))
        else:
            value_loss = 0.5 * _mean(unclipped)

        total = policy_loss + value_coef * value_loss - entropy_coef * entropy
        clipped_ratios = np.abs(ratio - 1.0) > clip_param
        terms = StepTerms(total, policy_loss, value_loss, entropy, _mean((ratio - 1.0) - log_ratio),
                          np.count_nonzero(clipped_ratios) / clipped_ratios.size)

        def gradients() -> None:
            d_log_prob = np.where(surrogate <= clipped_surrogate, advantages, 0.0).astype(np.float32)
            d_log_prob *= ratio
            d_log_prob *= -1.0 / batch
            if self.discrete:
                d_out = -pmf * d_log_prob[:, None]
                d_out[rows, chosen] += d_log_prob
                if entropy_coef:
                    d_out += (entropy_coef / batch) * pmf * (log_pmf + entropies[:, None])
            else:
                d_out = diff * inv_var
                d_out *= d_log_prob[:, None]
                d_scaled = scaled - 1.0
                d_scaled *= d_log_prob[:, None]
                np.subtract(d_scaled.sum(axis=0), entropy_coef, out=self.log_std_grad)
            if clip_value_loss:
                tie = np.where(unclipped == clipped, 0.5, 0.0)
                inside = (moved >= -clip_param) & (moved <= clip_param)
                d_values = (np.where(unclipped > clipped, 1.0, tie) * error
                            + np.where(clipped > unclipped, 1.0, tie) * inside * clipped_error)
            else:
                d_values = error
            d_values = (d_values * (value_coef / batch)).astype(np.float32)[:, None]
            d_features = self._head_backward(self.actor_head, features, d_out)
            d_critic = self._head_backward(self.critic_head, critic_inputs[-1], d_values)
            if self.critic_trunk is None:
                d_features += d_critic
            else:
                self._backward(self.critic_trunk, critic_inputs, d_critic)
            self._backward(self.trunk, actor_inputs, d_features)

        return terms, gradients

    def clip_and_apply(self, max_norm: float, lr: float, betas: tuple[float, float], eps: float) -> bool:
        """Clip the gradients to ``max_norm`` (their norm as ``clip_grad_norm``) and take Adam's step; ``False``
        (and nothing applied) when the gradient norm is not finite."""
        grads = self.grads
        wide = grads.astype(np.float64)
        squares = float(np.dot(wide, wide))
        # torch sums the squares in float32: past its range the norm is inf there, and the step is skipped
        if not squares <= _FLOAT32_MAX:
            return False
        norm = math.sqrt(squares)
        grads *= np.float32(min(max_norm / (norm + 1e-6), 1.0))
        beta1, beta2 = betas
        self.step_count += 1.0
        # torch's _multi_tensor_adam without weight decay: lerp the first moment, then the second, then the step
        m, v, scratch = self.exp_avg, self.exp_avg_sq, self._scratch
        np.subtract(grads, m, out=scratch)
        scratch *= np.float32(1 - beta1)
        m += scratch
        v *= np.float32(beta2)
        np.multiply(grads, grads, out=scratch)
        scratch *= np.float32(1 - beta2)
        v += scratch
        bias_correction1 = 1 - beta1**self.step_count
        bias_correction2 = 1 - beta2**self.step_count
        np.sqrt(v, out=scratch)
        scratch /= np.float32(bias_correction2**0.5)
        scratch += np.float32(eps)
        np.divide(m, scratch, out=scratch)
        scratch *= np.float32(-lr / bias_correction1)
        self.weights += scratch
        return True

    # --- the network --------------------------------------------------------------------------------------------

    @staticmethod
    def _forward(layers: list[_Layer], x: np.ndarray) -> list[np.ndarray]:
        """The input and every layer's output."""
        outputs = [x]
        for layer in layers:
            z = outputs[-1] @ layer.weight.T
            z += layer.bias
            assert layer.activation is not None
            layer.activation[0](z)
            outputs.append(z)
        return outputs

    @staticmethod
    def _head_backward(head: _Layer, inputs: np.ndarray, d_out: np.ndarray) -> np.ndarray:
        """Write a head's gradients; return d loss/d its inputs."""
        np.matmul(d_out.T, inputs, out=head.weight_grad)
        np.add.reduce(d_out, axis=0, out=head.bias_grad)
        return d_out @ head.weight

    @staticmethod
    def _backward(layers: list[_Layer], outputs: list[np.ndarray], d: np.ndarray) -> None:
        """Write the gradients of ``layers`` from d loss/d their last output ``d`` (overwritten)."""
        for index in range(len(layers) - 1, -1, -1):
            layer = layers[index]
            assert layer.activation is not None
            layer.activation[1](d, outputs[index + 1])
            np.matmul(d.T, outputs[index], out=layer.weight_grad)
            np.add.reduce(d, axis=0, out=layer.bias_grad)
            if index:
                d = d @ layer.weight


def normalized(x: np.ndarray) -> np.ndarray:
    """``ppo._normalized`` on numpy: zero mean, unit std (unbiased) plus 1e-8; a single sample is left as is.

    The numbers of ``(x - x.mean()) / (x.std(ddof=1) + 1e-8)`` for a float32 or float64 ``x``, without numpy's
    Python-level ``mean`` and ``var`` (a third of their time here is their argument handling)."""
    if x.size <= 1:
        return x
    centred = x - _scalar_mean(x)
    std = np.sqrt(x.dtype.type(float(np.add.reduce(centred * centred, axis=None)) / (x.size - 1)))
    return centred / (std + np.float32(1e-8))


def _scalar_mean(x: np.ndarray) -> np.generic:
    """``x.mean()`` for a float32 or float64 ``x``, as numpy computes it (the sum in ``x``'s dtype, divided in
    float64, rounded back to ``x``'s dtype), without its Python-level argument handling."""
    return x.dtype.type(float(np.add.reduce(x, axis=None)) / x.size)


def _mean(x: np.ndarray) -> float:
    """``float(x.mean())`` for a float32 or float64 ``x`` (``_scalar_mean``)."""
    return float(_scalar_mean(x))
