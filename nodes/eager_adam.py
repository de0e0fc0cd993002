"""``EagerAdam``: ``torch.optim.Adam`` that does not import ``torch._dynamo`` in a process that never compiles.

torch's optimizers wrap ``add_param_group``, ``zero_grad``, ``state_dict``, ``load_state_dict`` and the Adam kernel
in ``torch._disable_dynamo`` (which imports ``torch._dynamo`` on its first call) and ``step`` in a wrapper that
imports it on every call to place graph breaks. Importing it costs about a second (sympy, fx) in every process that
trains, although nothing is being compiled. While ``torch._dynamo`` is not imported, no frame can be under
compilation, so "disable dynamo for this call" and "a graph break here" do nothing: ``EagerAdam`` calls the same
functions directly then, and goes through torch's own wrappers once something has imported ``torch._dynamo``.
What the step computes is torch's Adam, unchanged (same kernel, same state, same ``state_dict``).
"""
from __future__ import annotations

import inspect
import sys
from typing import Any, Callable

import torch
import torch._compile
import torch.optim.adam as adam_module
import torch.optim.optimizer as optimizer_module

DYNAMO = "torch._dynamo"
_DISABLED_CODE = torch._compile._disable_dynamo(lambda: None).__code__


def _eager_until_dynamo(fn: Callable[..., Any], recursive: bool) -> Callable[..., Any]:
    """``fn`` called directly while ``torch._dynamo`` is not imported, else through ``torch._dynamo.disable``."""
    disabled: list[Callable[..., Any]] = []

    def call(*args: Any, **kwargs: Any) -> Any:
        dynamo = sys.modules.get(DYNAMO)
        if dynamo is None:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(dynamo.disable(fn, recursive, wrapping=False))
        return disabled[0](*args, **kwargs)

    return call


def _shortcut(function: Any) -> None:
    """Give a ``torch._disable_dynamo`` wrapper the cached "disabled" callable it would build on its first call."""
    if getattr(function, "__code__", None) is not _DISABLED_CODE:
        return
    captured = inspect.getclosurevars(function).nonlocals
    fn = captured["fn"]
    if getattr(fn, "__dynamo_disable", None) is None:
        setattr(fn, "__dynamo_disable", _eager_until_dynamo(fn, captured["recursive"]))


def _install() -> None:
    for cls in (torch.optim.Optimizer, torch.optim.Adam):
        for attribute in vars(cls).values():
            _shortcut(attribute)
    for cell in adam_module.adam.__closure__ or ():
        _shortcut(cell.cell_contents)


_install()
_ADAM_STEP = inspect.unwrap(torch.optim.Adam.step)
_ADAM_STEP_WITH_BREAKS = optimizer_module._use_grad_for_differentiable(_ADAM_STEP)


class EagerAdam(torch.optim.Adam):
    """``torch.optim.Adam`` (same arguments, same computation and state) without importing ``torch._dynamo``."""

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step; grad mode as torch's wrapper sets it, without its graph breaks while nothing compiles."""
        if DYNAMO in sys.modules:
            return _ADAM_STEP_WITH_BREAKS(self, closure)
        grad_enabled = torch.is_grad_enabled()
        try:
            torch.set_grad_enabled(self.defaults["differentiable"])
            return _ADAM_STEP(self, closure)
        finally:
            torch.set_grad_enabled(grad_enabled)
