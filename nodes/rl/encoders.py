"""Encoders: what turns an observation into features for a policy's core and heads (an MLP, or a Nature CNN)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from dnne.nodes.rl.activations import resolve_activation

ENCODERS = ("mlp", "cnn")
NATURE_CHANNELS = (32, 64, 64)
NATURE_KERNELS = (8, 4, 3)
NATURE_STRIDES = (4, 2, 1)


def init_layer(layer: nn.Linear | nn.Conv2d, gain: float) -> nn.Linear | nn.Conv2d:
    """Orthogonal weights with ``gain`` and zero bias, as CleanRL and SB3 initialise PPO networks."""
    nn.init.orthogonal_(layer.weight, gain)
    assert layer.bias is not None
    nn.init.zeros_(layer.bias)
    return layer


def mlp(width: int, hidden_sizes: Sequence[int], activation: str) -> tuple[nn.Sequential, int]:
    """Linear layers of ``hidden_sizes`` each followed by ``activation``; the module and its output width."""
    layers: list[nn.Module] = []
    for size in hidden_sizes:
        layers += [init_layer(nn.Linear(width, size), math.sqrt(2)), resolve_activation(activation)]
        width = size
    return nn.Sequential(*layers), width


def encode(encoder: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``encoder(x)``, an ``mlp``'s layers run without ``nn.Module``'s call machinery (the same operations and
    numbers; no module hooks, which nothing here registers): the call machinery was about a fifth of a small
    policy's acting step (cProfile)."""
    if type(encoder) is not nn.Sequential:
        return encoder(x)
    for layer in encoder:
        x = F.linear(x, layer.weight, layer.bias) if type(layer) is nn.Linear else layer.forward(x)
    return x


def linear(layer: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """``layer(x)`` without ``nn.Module``'s call machinery (``encode``)."""
    return F.linear(x, layer.weight, layer.bias)


def image_shape_for(obs_dim: int, image_shape: Sequence[int] | None) -> tuple[int, int, int]:
    """The ``(C, H, W)`` a flat observation of ``obs_dim`` is read as: ``image_shape`` when given (it must hold
    ``obs_dim`` values), else one square channel (the spec's ``input_size=84*84``)."""
    if image_shape is not None:
        shape = tuple(int(s) for s in image_shape)
        if len(shape) != 3 or math.prod(shape) != obs_dim:
            raise ValueError(f"image_shape {list(shape)} must be [channels, height, width] holding the observation's "
                             f"{obs_dim} values")
        return shape  # type: ignore[return-value]
    side = math.isqrt(obs_dim)
    if side * side != obs_dim:
        raise ValueError(f"the observation's {obs_dim} values are not one square image: set image_shape "
                         "[channels, height, width]")
    return (1, side, side)


class ConvEncoder(nn.Module):
    """Convolutions (each followed by ``activation``), flattened, then an MLP: the Nature-CNN encoder with its
    defaults (32 8x8/4, 64 4x4/2, 64 3x3/1, then ``hidden_sizes=[512]``, ReLU).

    Reads ``[B, C, H, W]`` images or ``[B, C * H * W]`` flat rows of them; the input is already scaled (the agent
    maps uint8 pixels to [0, 1]).

    Args:
        image_shape: ``(C, H, W)`` of one observation.
        channels: output channels of each convolution.
        kernels: kernel size of each convolution.
        strides: stride of each convolution.
        hidden_sizes: widths of the MLP after the convolutions.
        activation: activation name.
    """

    def __init__(self, image_shape: Sequence[int], channels: Sequence[int], kernels: Sequence[int],
                 strides: Sequence[int], hidden_sizes: Sequence[int], activation: str) -> None:
        super().__init__()
        if not (len(channels) == len(kernels) == len(strides)) or not channels:
            raise ValueError(f"cnn_channels, cnn_kernels and cnn_strides must be non-empty and of one length, got "
                             f"{list(channels)}, {list(kernels)}, {list(strides)}")
        self.image_shape = tuple(int(s) for s in image_shape)
        layers: list[nn.Module] = []
        depth, height, width = self.image_shape
        for out, kernel, stride in zip(channels, kernels, strides):
            height, width = (height - kernel) // stride + 1, (width - kernel) // stride + 1
            if height < 1 or width < 1:
                raise ValueError(f"the convolutions shrink the {self.image_shape[1]}x{self.image_shape[2]} image to "
                                 "nothing: use smaller cnn_kernels or cnn_strides")
            layers += [init_layer(nn.Conv2d(depth, out, kernel, stride), math.sqrt(2)),
                       resolve_activation(activation)]
            depth = out
        self.convs = nn.Sequential(*layers, nn.Flatten())
        self.head, self.out_width = mlp(depth * height * width, hidden_sizes, activation)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Features ``[B, out_width]`` of images ``[B, C, H, W]`` or flat rows ``[B, C * H * W]``."""
        return self.head(self.convs(x.reshape(x.shape[0], *self.image_shape)))


def build_encoder(kind: str, obs_dim: int, hidden_sizes: Sequence[int], activation: str,
                  image_shape: Sequence[int] | None = None, cnn_channels: Sequence[int] = NATURE_CHANNELS,
                  cnn_kernels: Sequence[int] = NATURE_KERNELS,
                  cnn_strides: Sequence[int] = NATURE_STRIDES) -> tuple[nn.Module, int]:
    """The encoder ``kind`` (``mlp`` or ``cnn``) for observations of ``obs_dim`` values, and its output width."""
    if kind == "mlp":
        return mlp(obs_dim, hidden_sizes, activation)
    if kind == "cnn":
        encoder = ConvEncoder(image_shape_for(obs_dim, image_shape), cnn_channels, cnn_kernels, cnn_strides,
                              hidden_sizes, activation)
        return encoder, encoder.out_width
    raise ValueError(f"encoder must be one of {ENCODERS}, got {kind!r}")
