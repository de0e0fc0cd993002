"""The PPO actor-critic: a shared encoder (MLP or CNN), an optional recurrent core (GRU or LSTM), a Gaussian or
categorical actor head, and a scalar critic head."""
from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from dnne.nodes.rl.categorical import CategoricalLogits
from dnne.nodes.rl.encoders import NATURE_CHANNELS, NATURE_KERNELS, NATURE_STRIDES, build_encoder, encode, linear
from dnne.nodes.rl.gaussian import DiagonalGaussian
from dnne.nodes.rl.normalizer import RunningMeanStd
from dnne.nodes.rl.recurrent import RECURRENT_KINDS, RecurrentCore
from dnne.nodes.rl.tensor_cache import TensorCache

ACTION_SPACES = ("continuous", "discrete")


def _init_linear(layer: nn.Linear, gain: float) -> nn.Linear:
    """Orthogonal weights with ``gain`` and zero bias, as CleanRL and SB3 initialise PPO networks."""
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


@dataclass(frozen=True)
class ActResult:
    """One batched action decision of ``ActorCritic.act``.

    Args:
        action: ``[B, action_dim]`` float (continuous) or ``[B]`` long (discrete).
        log_prob: log-probability of ``action`` under the current policy, ``[B]``.
        value: critic estimate in reward units (denormalized), ``[B]``.
        params: distribution parameters, ``{"mean", "std"}`` or ``{"logits"}``.
        observation: the network input (the normalized observation when input normalization is on).
        state: the recurrent state acted with, ``[B, state_size]`` (``None`` without a recurrent core).
        next_state: the recurrent core's state after this step (``None`` without a recurrent core).
    """

    action: torch.Tensor
    log_prob: torch.Tensor
    value: torch.Tensor
    params: dict[str, torch.Tensor]
    observation: torch.Tensor
    state: torch.Tensor | None = None
    next_state: torch.Tensor | None = None


class ActorCritic(nn.Module):
    """Actor-critic with a shared trunk (encoder, then an optional recurrent core), for continuous (Gaussian) or
    discrete (categorical) actions.

    With ``normalize_value`` the critic head predicts values in the value normalizer's space (rl_games style);
    ``act`` and ``value`` return denormalized values, ``forward`` and ``evaluate`` the critic's own space.

    Args:
        obs_dim: size of a flat observation.
        action_dim: action dimensions (continuous) or number of actions (discrete).
        hidden_sizes: widths of the shared trunk's hidden layers; empty means the heads read the input directly.
        activation: activation name, see ``dnne.nodes.rl.activations.ACTIVATIONS``.
        action_space: ``"continuous"`` or ``"discrete"``.
        init_log_std: initial value of the state-independent log standard deviation (continuous only).
        normalize_input: keep running observation statistics and normalize the network input with them.
        normalize_value: keep running return statistics; the critic learns normalized values.
        encoder: ``"mlp"`` (``hidden_sizes``) or ``"cnn"`` (convolutions, then ``hidden_sizes``), see
            ``dnne.nodes.rl.encoders``.
        image_shape: ``[C, H, W]`` of a CNN's observation; default: one square channel.
        cnn_channels: a CNN's output channels per convolution (Nature CNN by default).
        cnn_kernels: a CNN's kernel sizes.
        cnn_strides: a CNN's strides.
        recurrent: ``"none"``, ``"gru"`` or ``"lstm"``: a recurrent core between the encoder and the heads.
        recurrent_size: the core's width.
        recurrent_layers: the core's stacked layers.
        shared_trunk: actor and critic share the encoder (rl_games); ``False`` gives the critic its own MLP of
            ``hidden_sizes`` (CleanRL, SB3's MuJoCo default), so value gradients do not move the policy's features.
        obs_clip: normalised observations are clamped to ``[-obs_clip, obs_clip]`` (5 as rl_games, 10 as CleanRL
            and SB3); ``None``: no clipping.
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        hidden_sizes: Sequence[int] = (64, 64),
        activation: str = "elu",
        action_space: str = "continuous",
        init_log_std: float = 0.0,
        normalize_input: bool = False,
        normalize_value: bool = False,
        encoder: str = "mlp",
        image_shape: Sequence[int] | None = None,
        cnn_channels: Sequence[int] = NATURE_CHANNELS,
        cnn_kernels: Sequence[int] = NATURE_KERNELS,
        cnn_strides: Sequence[int] = NATURE_STRIDES,
        recurrent: str = "none",
        recurrent_size: int = 64,
        recurrent_layers: int = 1,
        shared_trunk: bool = True,
        obs_clip: float | None = 5.0,
    ) -> None:
        super().__init__()
        if action_space not in ACTION_SPACES:
            raise ValueError(f"action_space must be one of {ACTION_SPACES}, got {action_space!r}")
        if recurrent not in RECURRENT_KINDS:
            raise ValueError(f"recurrent must be one of {RECURRENT_KINDS}, got {recurrent!r}")
        if not shared_trunk and (encoder != "mlp" or recurrent != "none"):
            raise ValueError("shared_trunk false needs the mlp encoder without a recurrent core")
        self.architecture = {
            "obs_dim": obs_dim, "action_dim": action_dim, "hidden_sizes": list(hidden_sizes), "activation": activation,
            "action_space": action_space, "init_log_std": float(init_log_std), "normalize_input": normalize_input,
            "normalize_value": normalize_value, "encoder": encoder,
            "image_shape": None if image_shape is None else list(image_shape), "cnn_channels": list(cnn_channels),
            "cnn_kernels": list(cnn_kernels), "cnn_strides": list(cnn_strides), "recurrent": recurrent,
            "recurrent_size": recurrent_size, "recurrent_layers": recurrent_layers, "shared_trunk": shared_trunk,
            "obs_clip": obs_clip,
        }
        self.obs_dim = obs_dim
        self.action_dim = action_dim
        self.action_space = action_space
        self.discrete = action_space == "discrete"

        self.trunk, width = build_encoder(encoder, obs_dim, hidden_sizes, activation, image_shape, cnn_channels,
                                          cnn_kernels, cnn_strides)
        self.critic_trunk = None if shared_trunk else build_encoder(encoder, obs_dim, hidden_sizes, activation)[0]
        self.core = None if recurrent == "none" else RecurrentCore(recurrent, width, recurrent_size, recurrent_layers)
        if self.core is not None:
            width = recurrent_size
        # A small policy-head gain starts the policy near uniform / zero-mean, so early updates are not dominated
        # by an arbitrary initial preference (Andrychowicz et al. 2021).
        self.actor_head = _init_linear(nn.Linear(width, action_dim), 0.01)
        self.critic_head = _init_linear(nn.Linear(width, 1), 1.0)
        self.log_std = None if self.discrete else nn.Parameter(torch.full((action_dim,), float(init_log_std)))

        self.obs_normalizer = RunningMeanStd((obs_dim,), clip=obs_clip) if normalize_input else None
        # Value targets are never clipped: clipping returns would bias the critic on rare large returns.
        self.value_normalizer = RunningMeanStd((), clip=None) if normalize_value else None
        self._acting_terms: TensorCache[tuple[torch.Tensor, torch.Tensor]] = TensorCache()

    # --- normalization ------------------------------------------------------------------------------------------

    def normalize_obs(self, obs: torch.Tensor) -> torch.Tensor:
        """Return the network input for raw observations (identity when input normalization is off)."""
        return obs if self.obs_normalizer is None else self.obs_normalizer.normalize(obs)

    def update_obs_stats(self, obs: torch.Tensor) -> None:
        """Merge raw observations into the input statistics (no-op when input normalization is off)."""
        if self.obs_normalizer is not None:
            self.obs_normalizer.update(obs)

    def normalize_value(self, value: torch.Tensor) -> torch.Tensor:
        """Map values in reward units to the critic's space (identity when value normalization is off)."""
        return value if self.value_normalizer is None else self.value_normalizer.normalize(value)

    def denormalize_value(self, value: torch.Tensor) -> torch.Tensor:
        """Map critic-space values to reward units (identity when value normalization is off)."""
        return value if self.value_normalizer is None else self.value_normalizer.denormalize(value)

    def load_weights(self, parameters: dict[str, torch.Tensor]) -> None:
        """Load a ``state_dict`` that may hold value-normaliser statistics this network was built without (a
        learner normalises values, its actors need the statistics to report values in reward units)."""
        if self.value_normalizer is None and "value_normalizer.mean" in parameters:
            self.value_normalizer = RunningMeanStd((), clip=None).to(self.critic_head.weight.device)
        self.load_state_dict(parameters)

    # --- network ------------------------------------------------------------------------------------------------

    @property
    def recurrent(self) -> bool:
        """Whether the network has a recurrent core (and so a state per env)."""
        return self.core is not None

    @property
    def state_size(self) -> int:
        """Size of one env's recurrent state (0 without a core)."""
        return 0 if self.core is None else self.core.state_size

    def initial_state(self, batch: int) -> torch.Tensor:
        """The state that starts an episode, ``[batch, state_size]`` (zeros; ``[batch, 0]`` without a core)."""
        return torch.zeros(batch, self.state_size, device=self.critic_head.weight.device)

    def _heads(self, features: torch.Tensor, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The actor head on ``features``; the critic head on them too, or on its own trunk's features of ``x``."""
        critic_features = features if self.critic_trunk is None else encode(self.critic_trunk, x)
        value = linear(self.critic_head, critic_features).squeeze(-1)
        out = linear(self.actor_head, features)
        if self.discrete:
            return {"logits": out}, value
        assert self.log_std is not None
        return {"mean": out, "std": self.log_std.exp().expand_as(out)}, value

    def forward(self, x: torch.Tensor) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """Compute distribution parameters and the critic-space value of a network without a recurrent core.

        Args:
            x: network input (already normalized), ``[B, obs_dim]``.

        Returns:
            ``({"mean", "std"} or {"logits"}, value [B])``.
        """
        if self.core is not None:
            raise RuntimeError("a recurrent network needs its state: call step(x, state)")
        return self._heads(encode(self.trunk, x), x)

    def step(
        self, x: torch.Tensor, state: torch.Tensor | None
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor, torch.Tensor | None]:
        """One step: distribution parameters, critic-space value and the core's next state.

        Args:
            x: network input (already normalized), ``[B, obs_dim]``.
            state: the recurrent state ``[B, state_size]`` to act with (ignored and ``None`` without a core).
        """
        features = encode(self.trunk, x)
        if self.core is None:
            return (*self._heads(features, x), None)
        assert state is not None
        features, next_state = self.core.step(features, state)
        return (*self._heads(features, x), next_state)

    def distribution(self, params: dict[str, torch.Tensor]) -> DiagonalGaussian | CategoricalLogits:
        """Build the action distribution: a diagonal Gaussian summed over action dims, or a categorical."""
        if self.discrete:
            return CategoricalLogits(params["logits"])
        return DiagonalGaussian(params["mean"], params["std"])

    @torch.no_grad()
    def act(
        self, obs: torch.Tensor, deterministic: bool = False, generator: torch.Generator | None = None,
        state: torch.Tensor | None = None,
    ) -> ActResult:
        """Choose actions for raw observations, without autograd.

        Args:
            obs: raw observations ``[B, obs_dim]`` (normalized here; the statistics are not updated).
            deterministic: take the mean (continuous) or arg-max (discrete) action instead of sampling.
            generator: random source for sampling, so a seeded rollout is reproducible.
            state: the recurrent state to act with, ``[B, state_size]``; a recurrent network needs it.

        Returns:
            The action, its log-probability, the denormalized value, the distribution parameters, the network
            input, and the recurrent state acted with and after the step.
        """
        x = self.normalize_obs(obs)
        params, value, next_state = self.step(x, state)
        # torch.distributions' sample() takes no generator, so sampling is done by hand.
        if self.discrete:
            logits = params["logits"]
            if deterministic:
                action = logits.argmax(dim=-1)
            else:
                action = torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(-1)
        else:
            mean, std = params["mean"], params["std"]
            if deterministic:
                action = mean
            else:
                noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
                action = mean + std * noise
        log_prob = self._acting_distribution(params).log_prob(action)
        return ActResult(action, log_prob, self.denormalize_value(value), params, x,
                         None if self.core is None else state, next_state)

    def _acting_distribution(self, params: dict[str, torch.Tensor]) -> DiagonalGaussian | CategoricalLogits:
        """``distribution(params)`` for acting: a Gaussian reuses the terms that depend on the log std alone while
        the log std (changed through torch, which bumps its version counter) and the batch's shape stay as they
        were (they change once an update)."""
        if self.discrete or not self._std_of_log_std:
            return self.distribution(params)
        assert self.log_std is not None
        mean, std = params["mean"], params["std"]
        terms = self._acting_terms.get((self.log_std,), lambda: DiagonalGaussian(mean, std).terms(), std.shape,
                                       std.dtype, std.device)
        return DiagonalGaussian(mean, std, terms)

    @property
    def _std_of_log_std(self) -> bool:
        """Whether acting's std is this class's ``exp(log_std)`` (a subclass with its own heads or distribution may
        compute it otherwise)."""
        return type(self)._heads is ActorCritic._heads and type(self).distribution is ActorCritic.distribution

    def evaluate(
        self, x: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-evaluate stored actions with autograd, for the PPO loss.

        Args:
            x: network input (normalized), ``[B, obs_dim]``.
            actions: ``[B, action_dim]`` float or ``[B]`` long.

        Returns:
            ``(log_prob [B], entropy [B], value [B])``, the value in the critic's own space.
        """
        params, value = self(x)
        dist = self.distribution(params)
        return dist.log_prob(actions), dist.entropy(), value

    def evaluate_sequences(
        self, x: torch.Tensor, actions: torch.Tensor, state: torch.Tensor, starts: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Re-evaluate stored sequences with autograd through the recurrent core (truncated BPTT).

        Args:
            x: network inputs (normalized), ``[L, B, obs_dim]``.
            actions: ``[L, B, action_dim]`` float or ``[L, B]`` long.
            state: each sequence's state before its first step, ``[B, state_size]``.
            starts: ``[L, B]`` bool, step ``t`` begins an episode (its state is zeroed first).

        Returns:
            ``(log_prob [L, B], entropy [L, B], value [L, B])``, the value in the critic's own space.
        """
        assert self.core is not None
        length, batch = x.shape[:2]
        features = encode(self.trunk, x.flatten(0, 1))
        features = self.core.unroll(features.reshape(length, batch, -1), state, starts)
        params, value = self._heads(features.flatten(0, 1), x.flatten(0, 1))
        dist = self.distribution(params)
        shape = (length, batch)
        return dist.log_prob(actions.flatten(0, 1)).reshape(shape), dist.entropy().reshape(shape), value.reshape(shape)

    @torch.no_grad()
    def value(self, x: torch.Tensor, state: torch.Tensor | None = None) -> torch.Tensor:
        """Return the denormalized value of network inputs ``[B, obs_dim]`` (with the recurrent state ``state``
        when the network has a core), without autograd (for bootstrapping)."""
        return self.denormalize_value(self.step(x, state)[1])

    @torch.no_grad()
    def next_state(self, x: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """The core's state after one step on network inputs ``x`` from ``state`` (a recurrent network only)."""
        assert self.core is not None
        return self.core.step(encode(self.trunk, x), state)[1]

    def deployable(self) -> nn.Module:
        """Return a traceable snapshot mapping raw observations (and, with a recurrent core, the state) to
        deterministic actions (and the next state)."""
        return PolicyModule(self) if self.core is None else RecurrentPolicyModule(self)


class PolicyModule(nn.Module):
    """A frozen copy of an ``ActorCritic``'s acting path: raw observation -> deterministic action.

    The trunk, actor head and observation statistics are copied at construction, so later training does not change
    an exported policy. ``torch.jit.script`` and ``torch.jit.trace`` both work on it.

    Args:
        model: the actor-critic to snapshot.
    """

    def __init__(self, model: ActorCritic) -> None:
        super().__init__()
        self.trunk = copy.deepcopy(model.trunk)
        self.actor_head = copy.deepcopy(model.actor_head)
        self.discrete = model.discrete
        norm = model.obs_normalizer
        ref = model.actor_head.weight
        if norm is None:
            mean = torch.zeros(model.obs_dim)
            inv_std = torch.ones(model.obs_dim)
            clip = math.inf
        else:
            mean = norm.mean.float()
            inv_std = torch.rsqrt(norm.var + norm.epsilon).float()
            clip = math.inf if norm.clip is None else float(norm.clip)
        # Plain buffers instead of an optional submodule keep the module free of branches TorchScript dislikes.
        self.register_buffer("obs_mean", mean.to(ref.device, ref.dtype).clone())
        self.register_buffer("obs_inv_std", inv_std.to(ref.device, ref.dtype).clone())
        self.clip = clip
        self.requires_grad_(False)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """Map raw observations ``[B, obs_dim]`` to mean (float) or arg-max (long) actions."""
        x = ((obs - self.obs_mean) * self.obs_inv_std).clamp(-self.clip, self.clip)
        out = self.actor_head(self.trunk(x))
        if self.discrete:
            return out.argmax(dim=-1)
        return out


class RecurrentPolicyModule(PolicyModule):
    """A frozen copy of a recurrent ``ActorCritic``'s acting path: ``(raw observation, state) -> (deterministic
    action, next state)``. The caller keeps the state per env: zeros (``[B, state_size]``) at an episode's start.

    Args:
        model: the actor-critic to snapshot (it has a recurrent core).
    """

    def __init__(self, model: ActorCritic) -> None:
        super().__init__(model)
        assert model.core is not None
        self.core = copy.deepcopy(model.core).requires_grad_(False)

    def forward(self, obs: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        """Map raw observations ``[B, obs_dim]`` and states ``[B, state_size]`` to actions and next states."""
        x = ((obs - self.obs_mean) * self.obs_inv_std).clamp(-self.clip, self.clip)
        features, next_state = self.core.step(self.trunk(x), state)
        out = self.actor_head(features)
        if self.discrete:
            return out.argmax(dim=-1), next_state
        return out, next_state
