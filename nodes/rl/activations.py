"""Activation functions chosen by name, so configs and node params can say ``"elu"`` instead of a class."""
from __future__ import annotations

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "elu": nn.ELU,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "selu": nn.SELU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "swish": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "sigmoid": nn.Sigmoid,
    "identity": nn.Identity,
    "none": nn.Identity,
}


def resolve_activation(name: str) -> nn.Module:
    """Build a fresh activation module from its name.

    Args:
        name: one of the keys of ``ACTIVATIONS`` (case-insensitive).

    Returns:
        A new instance of the activation module.

    Raises:
        ValueError: the name is not known; the message lists the valid names.
    """
    key = name.strip().lower()
    if key not in ACTIVATIONS:
        valid = ", ".join(sorted(ACTIVATIONS))
        raise ValueError(f"unknown activation {name!r}; valid names: {valid}")
    return ACTIVATIONS[key]()
