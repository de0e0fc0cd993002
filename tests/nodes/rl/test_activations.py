"""Tests for activation lookup by name."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from dnne.nodes.rl.activations import ACTIVATIONS, resolve_activation


class TestResolveActivation:
    def test_every_name_builds_a_module(self) -> None:
        """Every registered name builds a fresh module of its class."""
        for name, cls in ACTIVATIONS.items():
            module = resolve_activation(name)
            assert isinstance(module, cls)
            assert module is not resolve_activation(name)

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
