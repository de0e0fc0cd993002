"""Tests for activation lookup by name."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dnne.nodes.rl.activations import ACTIVATIONS, resolve_activation


class TestResolveActivation:
    @pytest.mark.parametrize("name, reference", [
        ("elu", torch.nn.functional.elu), ("relu", torch.relu), ("tanh", torch.tanh),
        ("selu", torch.nn.functional.selu), ("gelu", torch.nn.functional.gelu), ("silu", torch.nn.functional.silu),
        ("swish", torch.nn.functional.silu), ("leaky_relu", torch.nn.functional.leaky_relu),
        ("softplus", torch.nn.functional.softplus), ("sigmoid", torch.sigmoid), ("identity", lambda x: x),
        ("none", lambda x: x),
    ])
    def test_every_name_computes_its_function(self, name, reference) -> None:
        """Each name builds a fresh module that computes the function of that name (checked against torch's own
        functional form, not against the lookup table)."""
        x = torch.linspace(-3, 3, 13)
        module = resolve_activation(name)
        assert torch.allclose(module(x), reference(x))
        assert module is not resolve_activation(name)

    def test_every_registered_name_is_checked(self) -> None:
        """The list above covers every registered name, so a new entry needs a reference."""
        assert set(ACTIVATIONS) == {"elu", "relu", "tanh", "selu", "gelu", "silu", "swish", "leaky_relu", "softplus",
                                    "sigmoid", "identity", "none"}

    def test_aliases_and_case(self) -> None:
        """swish is SiLU, none is Identity, and names are case-insensitive."""
        assert isinstance(resolve_activation("swish"), nn.SiLU)
        assert isinstance(resolve_activation("none"), nn.Identity)
        assert isinstance(resolve_activation("ELU"), nn.ELU)
        x = torch.linspace(-2, 2, 9)
        assert torch.allclose(resolve_activation("elu")(x), torch.nn.functional.elu(x))

    def test_unknown_name_lists_valid_names(self) -> None:
        """An unknown name raises ValueError naming the valid choices."""
        with pytest.raises(ValueError, match="valid names: .*elu.*relu"):
            resolve_activation("reluu")
