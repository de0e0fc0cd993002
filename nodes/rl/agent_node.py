"""``PPOAgentNode``: the actor-critic that samples actions; a policy server for one or several env groups."""
from __future__ import annotations

from typing import Any

import torch

from dnne.runtime.channel import Channel
from dnne.runtime.io import Firing
from dnne.runtime.node import DnneLayout, Node
from dnne.runtime.ports import Input, Output, Param

from ..envs.spaces import Box, Discrete
from ..types import ModelSpec, PolicyOutput, PolicyWeights
from . import deploy
from .activations import ACTIVATIONS
from .actor_critic import ActorCritic
from .encoders import ENCODERS, NATURE_CHANNELS, NATURE_KERNELS, NATURE_STRIDES
from .param_checks import agent_problems, agent_wiring_problems
from .recurrent import RECURRENT_KINDS


class PPOAgentNode(Node):
    """Actor-critic network that outputs actions, values and log-probs for PPO.

    Shared backbone of ``hidden_sizes``, a Gaussian (learnable state-independent log-std) or categorical actor
    head, a critic head, orthogonal initialisation. Sizes come from the env's spaces when ``input_size`` /
    ``output_size`` are omitted. Serves several env groups through its fan-in ``observations`` input: the
    observations waiting are batched into one forward pass and each output goes back to its source.

    The network's architecture and initial weights leave on ``model``; with ``weights`` linked (a trainer linked to
    ``model`` answers there on its own) the agent acts only with weights received there, the newest it holds, and
    only on observations their acting rule allows (``ActingRule``). Unlinked (play), it acts with its own weights.

    With a recurrent core (``recurrent`` gru or lstm) the agent keeps a state per env and source, zeroes it where
    the step node's ``dones`` say an episode ended, and sends the state each observation was acted with in its
    policy output (the learner rebuilds its sequences from them). ``encoder`` cnn reads image observations.
    """

    category = "RL/PPO"
    # run() serves batches but stamps each policy output with its observation's stamp, as compute() would: static
    # offset checks may follow stamps through it (runtime.validate).
    stamps_as_declared = True
    dnne = DnneLayout(
        inputs=("observations",),
        outputs=("policy_output", "model"),
        widgets=("hidden_sizes", "activation", "action_space", "output_size", "learning_rate", "deterministic",
                 "init_log_std"),
    )

    observations = Input("Tensor", "observations [num_envs, obs_dim] (or images [num_envs, C, H, W]; uint8 pixels "
                         "are scaled to [0, 1])", fan_in=True)
    # Read message by message by the agent itself (config=True keeps it out of the observation join): the first
    # observation of a stream has no dones before it.
    dones = Input("Dones", "episode ends after each step (a recurrent agent zeroes its state there)", optional=True,
                  fan_in=True, config=True)
    weights = Input("PolicyWeights", "the learner's newest weights (linked back from the node taking 'model')",
                    optional=True, config=True, reply_to="model")
    policy_output = Output("PolicyOutput", "action, value, log_prob, action_params, observation, version")
    model = Output("Model", "the network's architecture and initial weights, for the learner")

    input_size = Param(int, None, "observation size; default: from the env", ge=1, le=1 << 20, nullable=True)
    output_size = Param(int, None, "action size (number of actions if discrete); default: from the env",
                        ge=1, le=1 << 20, nullable=True, aliases=("action_dim",))
    hidden_sizes = Param(list, [64, 64], "hidden layer widths, e.g. [64, 64] or \"64,64\"", ge=1, le=65536)
    activation = Param(str, "elu", "activation function", choices=tuple(ACTIVATIONS))
    learning_rate = Param(float, 3e-4, "learning rate (the trainer's wins when it sets one)", gt=0.0, le=1.0)
    action_space = Param(str, None, "continuous (Gaussian) or discrete (categorical); default: from the env's "
                         "action space (continuous without an env)", choices=("continuous", "discrete"), nullable=True)
    deterministic = Param(bool, False, "act with the mean / arg-max action (for play)")
    init_log_std = Param(float, 0.0, "initial log standard deviation of continuous actions", ge=-20.0, le=5.0)
    normalize_input = Param(bool, None, "running observation normalisation (statistics kept by the learner); "
                            "default: on for continuous actions", nullable=True)
    device = Param(str, None, "cpu or cuda; default: the env's device", nullable=True)
    encoder = Param(str, "mlp", "mlp, or cnn (convolutions, then hidden_sizes) for image observations",
                    choices=ENCODERS)
    image_shape = Param(list, None, "cnn: [channels, height, width] of an observation; default: one square channel",
                        ge=1, le=65536, nullable=True)
    cnn_channels = Param(list, list(NATURE_CHANNELS), "cnn: output channels of each convolution", ge=1, le=4096)
    cnn_kernels = Param(list, list(NATURE_KERNELS), "cnn: kernel size of each convolution", ge=1, le=256)
    cnn_strides = Param(list, list(NATURE_STRIDES), "cnn: stride of each convolution", ge=1, le=256)
    recurrent = Param(str, "none", "recurrent core after the encoder: none, gru or lstm", choices=RECURRENT_KINDS)
    recurrent_size = Param(int, 64, "width of the recurrent core", ge=1, le=65536)
    recurrent_layers = Param(int, 1, "stacked layers of the recurrent core", ge=1, le=64)
    shared_trunk = Param(bool, True, "actor and critic share the encoder; false: the critic has its own MLP of "
                         "hidden_sizes (CleanRL, SB3 on MuJoCo)")
    obs_clip = Param(float, 5.0, "normalize_input: clip normalised observations to [-obs_clip, obs_clip]; null: off",
                     gt=0.0, le=1e6, nullable=True)

    @classmethod
    def check_params(cls, params: dict[str, Any], trusted: dict[str, Any]) -> list[tuple[str, str | None, str]]:
        """Checks of the params together, run by validation (``param_checks``)."""
        return agent_problems(params)

    @classmethod
    def check_wiring(cls, params: dict[str, Any], wiring: Any) -> list[tuple[str, str | None, str]]:
        """Checks against the links and the env's spaces, run by validation (``param_checks``)."""
        return agent_wiring_problems(params, wiring)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.network: ActorCritic | None = None
        self.held: PolicyWeights | None = None
        self.version = 0
        self.generator: torch.Generator | None = None
        self.forward_passes = 0
        self.states: dict[str | None, torch.Tensor] = {}
        self.dones_seen: dict[str | None, int] = {}
        self.served: set[str | None] = set()
        self.waiting: list[Firing] = []
        """Observations received that the weights held may not act on yet (or whose dones are still to come)."""
        self._gated = False
        """Whether ``weights`` is linked (set up in ``setup``): acting then waits for the learner's weights."""
        self._parked_holding = False
        """Whether its loop's current wait began with observations held (``waiting``)."""
        self._reset_by_dones = False
        """Whether ``dones`` is linked (set up in ``setup``)."""
        self._device = torch.device("cpu")
        """Where the network lives (set up in ``setup``)."""

    async def setup(self) -> None:
        """Size the network from the env's spaces, checking any sizes given."""
        obs_space = self.upstream("observation_space", "observations")
        act_space = self.upstream("action_space", "observations")
        if self.action_space is None:
            self.action_space = "discrete" if isinstance(act_space, Discrete) else "continuous"
        input_size = self._size("input_size", self.input_size, obs_space.dim if isinstance(obs_space, Box) else None)
        output_size = self._size("output_size", self.output_size, _action_size(act_space, self.action_space))
        if act_space is not None and isinstance(act_space, Discrete) != (self.action_space == "discrete"):
            kind = "discrete" if isinstance(act_space, Discrete) else "continuous"
            raise ValueError(f"action_space is {self.action_space!r} but the env's action space is {kind}: "
                             f"set action_space to {kind!r}")
        self._gated = self.linked("weights")
        self._reset_by_dones = self.linked("dones")
        if self.deterministic and self.ctx.mode == "train":
            self.ctx.warn("deterministic=true while training: actions are not explored")
        self.acts_deterministically = self.deterministic or (
            self.ctx.mode == "play" and not self.ctx.settings.get("stochastic"))
        normalize = self.normalize_input if self.normalize_input is not None else self.action_space == "continuous"
        if self.recurrent != "none" and not self.linked("dones"):
            raise ValueError(f"recurrent is {self.recurrent!r} but 'dones' is not linked: link the step node's dones "
                             "to this agent's dones, so its state is reset where an episode ends")
        device = torch.device(self.device or self.upstream("env_device", "observations") or self.ctx.device)
        # Initial weights come from the node's own seed; the process-wide generator is left as it was.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.ctx.seed)
            self.network = ActorCritic(
                input_size, output_size, self.hidden_sizes, self.activation, self.action_space, self.init_log_std,
                normalize_input=normalize, encoder=self.encoder, image_shape=self.image_shape,
                cnn_channels=self.cnn_channels, cnn_kernels=self.cnn_kernels, cnn_strides=self.cnn_strides,
                recurrent=self.recurrent, recurrent_size=self.recurrent_size,
                recurrent_layers=self.recurrent_layers, shared_trunk=self.shared_trunk,
                obs_clip=self.obs_clip).to(device)
        self.generator = torch.Generator(device=device)
        self.generator.manual_seed(self.ctx.seed)
        self._device = self.network.critic_head.weight.device

    def _size(self, name: str, given: int | None, from_env: int | None) -> int:
        if given is not None and from_env is not None and given != from_env:
            raise ValueError(f"{name} is {given} but the env says {from_env}: remove {name} or make it {from_env}")
        size = given if given is not None else from_env
        if size is None:
            raise ValueError(f"{name} is not set and no env upstream of 'observations' declares it")
        return size

    async def start(self) -> None:
        """Send the network's architecture and initial weights to the learner."""
        assert self.network is not None
        weights = {name: tensor.detach().clone() for name, tensor in self.network.state_dict().items()}
        await self.emit("model", ModelSpec(dict(self.network.architecture), weights, self.learning_rate))

    async def run(self) -> None:
        """Act on every observation batch; batches waiting from several sources share one forward pass.

        An observation waits until the agent holds weights that may act on it; the others waiting (other env
        groups) are served meanwhile, so one group at its horizon end never blocks the rest. While the agent waits
        for input, a producer may run ``fire_ready`` in its own task (``dnne.runtime.firing.fire_fused``).
        """
        await self.start()
        assert self.io is not None
        io = self.io
        weight_channels: tuple[Channel, ...] = tuple(link.channel for link in io.slots["weights"].links)
        dones_channels: tuple[Channel, ...] = tuple(link.channel for link in io.slots["dones"].links)
        while True:
            if await self.fire_ready():
                continue
            if io.ended() and (not self.waiting or io.slots["weights"].exhausted()):
                return
            self._parked_holding = bool(self.waiting)
            await io.wait_idle(io.missing() + ((weight_channels + dones_channels) if self.waiting else ()))

    async def fire_ready(self) -> bool:
        """Take the newest weights and the dones received, then act on every observation batch waiting that the
        weights held may act on; whether it acted."""
        assert self.io is not None
        io = self.io
        if self._gated:
            self.take_weights(io.newest("weights"))
        if self._reset_by_dones:
            self.take_dones()
        self.waiting += io.ready()
        servable: list[Firing] = []
        waiting: list[Firing] = []
        for firing in self.waiting:
            (servable if self.may_act(firing.stamp) and self.state_ready(firing) else waiting).append(firing)
        self.waiting = waiting
        if bool(waiting) != self._parked_holding:
            # Fired by a producer while its own loop waits: that wait names other channels than it now waits on
            # (the weights' and dones' with observations held, or not): its loop wakes and waits again, naming them.
            io.inbox.notify()
        if not servable:
            return False
        self.firings += len(servable)
        await self.serve(servable)
        return True

    def take_weights(self, weights: PolicyWeights | None) -> None:
        """Act with ``weights`` from now on (nothing changes when they are the ones held)."""
        if weights is None or weights is self.held:
            return
        assert self.network is not None
        self.network.load_weights(weights.parameters)
        self.held, self.version = weights, weights.version

    def take_dones(self) -> None:
        """Zero the recurrent state of every env whose episode ended in the dones received so far."""
        assert self.io is not None
        for link in self.io.slots["dones"].links:
            channel = link.channel
            while len(channel):
                message = channel.get_nowait()
                source = message.source if message.source is not None else link.upstream
                ended = link.convert(message.value).as_tensor()
                state = self.states.get(source)
                if state is not None:
                    self.states[source] = state * (~ended).to(state.device, state.dtype)[:, None]
                if message.stamp is not None:
                    self.dones_seen[source] = message.stamp

    def state_ready(self, firing: Firing) -> bool:
        """Whether the state of ``firing``'s envs is up to date: the dones of the step that led to its observation
        have been applied (not needed for a stream's first observation, or without a recurrent core)."""
        if self.recurrent == "none" or not firing.stamp or firing.source not in self.served:
            return True
        return self.dones_seen.get(firing.source, -1) >= firing.stamp

    def may_act(self, stamp: int | None) -> bool:
        """Whether the weights held may act on observation ``stamp``: always when ``weights`` is unlinked, never
        before the first weights arrive when it is linked."""
        if not self._gated:
            return True
        return self.held is not None and self.held.may_act(stamp)

    async def serve(self, firings: list[Firing]) -> None:
        """One forward pass over the observations of ``firings``; each output goes back to its source."""
        observations = [f.values["observations"] for f in firings]
        self.forward_passes += 1
        if len(firings) == 1:
            firing = firings[0]
            await self.emit("policy_output", self.act(observations[0], firing.source), firing.stamp, firing.source)
            return
        sizes = [obs.shape[0] for obs in observations]
        recurrent = self.recurrent != "none"
        state = torch.cat([self._state(f.source, n) for f, n in zip(firings, sizes)]) if recurrent else None
        outputs, next_state = self._act(torch.cat(observations), state)
        start = 0
        for firing, size in zip(firings, sizes):
            end = start + size
            if next_state is not None:
                self.states[firing.source] = next_state[start:end]
            self.served.add(firing.source)
            await self.emit("policy_output", _slice(outputs, start, end), firing.stamp, firing.source)
            start = end

    def act(self, observations: torch.Tensor, source: str | None = None) -> PolicyOutput:
        """One forward pass with the weights held: sample (or take the mean) action; a recurrent agent acts with
        and then advances the state of ``source``'s envs."""
        state = self._state(source, observations.shape[0]) if self.recurrent != "none" else None
        output, next_state = self._act(observations, state)
        if next_state is not None:
            self.states[source] = next_state
        self.served.add(source)
        return output

    def _state(self, source: str | None, num_envs: int) -> torch.Tensor:
        assert self.network is not None
        state = self.states.get(source)
        if state is None or state.shape[0] != num_envs:
            state = self.states[source] = self.network.initial_state(num_envs)
        return state

    def _act(self, observations: torch.Tensor,
             state: torch.Tensor | None) -> tuple[PolicyOutput, torch.Tensor | None]:
        assert self.network is not None
        network = self.network
        pixels = observations.dtype == torch.uint8
        observations = observations.to(self._device, torch.float32)
        if pixels:
            observations = observations / 255.0
        result = network.act(observations, deterministic=self.acts_deterministically, generator=self.generator,
                             state=state)
        output = PolicyOutput(result.action, result.value, result.log_prob, result.params, result.observation,
                              self.version, result.state)
        return output, result.next_state

    def deployable(self) -> tuple[torch.nn.Module, Any, dict[str, Any]]:
        """The policy for deployment (raw observations -> deterministic actions, normalisation included; a recurrent
        policy takes and returns its state: ``(obs, state) -> (action, next_state)``), an example input and the
        spaces (``deploy.deployable``)."""
        assert self.network is not None
        return deploy.deployable(self.network, self.upstream("observation_space", "observations"),
                                 self.upstream("action_space", "observations"))

    def state_dict(self) -> dict[str, Any]:
        """The weights held (normaliser statistics included), their version, the sampling generator and, for a
        recurrent agent, each source's state."""
        assert self.network is not None and self.generator is not None
        state: dict[str, Any] = {"model": self.network.state_dict(), "version": self.version,
                                 "generator": self.generator.get_state()}
        if self.recurrent != "none":
            state["recurrent_states"] = {source: value.clone() for source, value in self.states.items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore ``state_dict`` (play acts with these weights; training waits for the learner's)."""
        assert self.network is not None and self.generator is not None
        self.network.load_weights(state["model"])
        self.version = int(state["version"])
        self.generator.set_state(state["generator"])
        self.states = {source: value.to(self._device) for source, value in state.get("recurrent_states", {}).items()}


def _action_size(space: Any, action_space: str) -> int | None:
    if isinstance(space, Discrete):
        return space.n
    if isinstance(space, Box):
        return space.dim
    return None


def _slice(out: PolicyOutput, start: int, end: int) -> PolicyOutput:
    return PolicyOutput(out.action[start:end], out.value[start:end], out.log_prob[start:end],
                        {k: v[start:end] for k, v in out.action_params.items()}, out.observation[start:end],
                        out.version, None if out.state is None else out.state[start:end])
