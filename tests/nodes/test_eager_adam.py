"""``EagerAdam`` computes what ``torch.optim.Adam`` computes, bit for bit, without importing ``torch._dynamo``."""
from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import torch

from dnne.nodes.eager_adam import EagerAdam


def _model(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(4, 64), torch.nn.Tanh(), torch.nn.Linear(64, 3))


def _train(optimizer_class: type[torch.optim.Optimizer], steps: int) -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    """A few steps with grad clipping and a changing learning rate, the way the PPO update drives Adam."""
    model = _model(0)
    optimizer = optimizer_class(model.parameters(), lr=1e-3, eps=1e-5)
    data = torch.Generator().manual_seed(1)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-3 * (1 - step / steps)
        optimizer.zero_grad(set_to_none=True)
        inputs = torch.randn(32, 4, generator=data)
        loss = model(inputs).pow(2).mean()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
    return model, optimizer


class TestEagerAdam:
    def test_steps_are_bit_identical_to_torch_adam(self) -> None:
        """Parameters and moments after 25 steps equal torch.optim.Adam's exactly (torch.equal, not allclose)."""
        ours, our_optimizer = _train(EagerAdam, 25)
        theirs, their_optimizer = _train(torch.optim.Adam, 25)
        for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(mine, reference)
        for mine, reference in zip(our_optimizer.state.values(), their_optimizer.state.values(), strict=True):
            assert mine.keys() == reference.keys()
            for key in mine:
                assert torch.equal(mine[key], reference[key])

    def test_state_dict_loads_into_torch_adam(self) -> None:
        """A state dict saved by EagerAdam restores a torch.optim.Adam that then steps identically."""
        model, optimizer = _train(EagerAdam, 5)
        clone = _model(0)
        clone.load_state_dict(model.state_dict())
        reference = torch.optim.Adam(clone.parameters(), lr=1e-3, eps=1e-5)
        reference.load_state_dict(copy.deepcopy(optimizer.state_dict()))
        for module, opt in ((model, optimizer), (clone, reference)):
            opt.zero_grad(set_to_none=True)
            module(torch.ones(2, 4)).sum().backward()
            opt.step()
        for mine, theirs in zip(model.parameters(), clone.parameters(), strict=True):
            assert torch.equal(mine, theirs)

    @pytest.mark.parametrize("optimizer", ["eager_adam.EagerAdam", "flat_adam.FlatAdam"])
    def test_training_does_not_import_dynamo(self, optimizer: str) -> None:
        """In a fresh process, construction, steps, zero_grad and a state-dict round trip leave torch._dynamo
        unloaded (EagerAdam, and FlatAdam, its flat-buffer subclass)."""
        module, name = optimizer.split(".")
        script = (
            "import sys, torch\n"
            f"from dnne.nodes.{module} import {name}\n"
            "model = torch.nn.Linear(4, 2)\n"
            f"opt = {name}(model.parameters(), lr=1e-3, foreach=True)\n"
            "for _ in range(3):\n"
            "    opt.zero_grad(set_to_none=True)\n"
            "    model(torch.randn(5, 4)).sum().backward()\n"
            "    opt.step()\n"
            "opt.load_state_dict(opt.state_dict())\n"
            "print('torch._dynamo' in sys.modules)\n"
        )
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "False"

    def test_defers_to_torch_once_dynamo_is_imported(self) -> None:
        """With torch._dynamo imported, steps go through torch's own wrappers and still equal torch.optim.Adam's."""
        import torch._dynamo  # noqa: F401  (the condition under test)

        ours, _ = _train(EagerAdam, 5)
        theirs, _ = _train(torch.optim.Adam, 5)
        for mine, reference in zip(ours.parameters(), theirs.parameters(), strict=True):
            assert torch.equal(mine, reference)
