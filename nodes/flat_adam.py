"""``FlatAdam``: torch's Adam, bit for bit, stepped as one flat tensor per parameter group.

On the CPU, torch's ``foreach`` Adam loops over the parameters in C++ for each of its list operations and builds its
per-step lists in Python, so a small network's step costs far more than its arithmetic (a 13-tensor actor-critic of
11k weights: 264 us). ``FlatAdam`` keeps each group's first and second moments in two flat buffers (the
per-parameter state tensors are views of them, so ``state_dict`` is torch's), copies the gradients into a third, and
runs Adam's element-wise arithmetic once over the buffers, in the order torch's ``_multi_tensor_adam`` runs it on each
tensor: the same operations on the same values, so the same bits. The parameters then move by one
``_foreach_addcdiv_``.

The flat path runs when a group is plain Adam (no AMSGrad, no maximize, no weight decay, float hyperparameters, not
differentiable, capturable or fused), every parameter is a contiguous CPU tensor with a dense gradient, all of one
dtype, and their step counts agree (on CUDA, torch's foreach kernels already fuse the list operations). Anything
else takes torch's own step (``EagerAdam``), which updates the same views in place; the flat buffers are rebuilt
after it and after ``load_state_dict``.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, Callable

import torch
import torch.optim.optimizer as optimizer_module
from torch import Tensor

from dnne.nodes.eager_adam import EagerAdam


@dataclass
class _FlatGroup:
    """One parameter group's flat buffers and the views into them that the steps reuse."""

    params: list[Tensor]
    steps: list[Tensor]
    exp_avg: Tensor
    exp_avg_sq: Tensor
    grad: Tensor
    denominator: Tensor
    exp_avg_views: list[Tensor]
    grad_views: list[Tensor]
    denominator_views: list[Tensor]
    data_ptrs: list[int]


class FlatAdam(EagerAdam):
    """``torch.optim.Adam`` (same arguments, same state, the same numbers) with each group stepped as one flat tensor.

    Args: as ``torch.optim.Adam``.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._flat: dict[int, _FlatGroup] = {}
        super().__init__(*args, **kwargs)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """As torch's; the flat buffers are rebuilt at the next step."""
        self._flat = {}
        super().add_param_group(param_group)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """As torch's; the flat buffers are rebuilt from the loaded state at the next step."""
        self._flat = {}
        super().load_state_dict(state_dict)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """As torch's; with ``set_to_none`` and no profiler running, without its profiler scope (half its time)."""
        if not set_to_none or torch.autograd._profiler_enabled():
            super().zero_grad(set_to_none)
            return
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None

    def step(self, closure: Callable[[], float] | None = None) -> float | None:  # type: ignore[override]
        """One Adam step; each group flat where it can be (see the module's docstring), else torch's step. Step
        hooks and the profiler's scope are torch's (``Optimizer.profile_hook_step``) when any is in use."""
        if torch.autograd._profiler_enabled() or has_step_hooks(self):
            return _HOOKED_STEP(self, closure)
        return self._step(closure)

    step.hooked = True  # type: ignore[attr-defined]  # torch wraps an optimizer's step in its hooks unless marked

    def _step(self, closure: Callable[[], float] | None) -> float | None:
        """The step itself, without hooks."""
        flat = None if closure is not None else self._flat_groups()
        if flat is None:
            self._flat = {}
            return _EAGER_STEP(self, closure)
        with torch.no_grad():
            for group, buffers in zip(self.param_groups, flat, strict=True):
                _flat_step(group, buffers)
        return None

    def _flat_groups(self) -> list[_FlatGroup] | None:
        """Every group's flat buffers, built where missing; ``None`` when some group cannot step flat now."""
        groups = []
        for index, group in enumerate(self.param_groups):
            buffers = self._flat.get(index)
            if buffers is None or any(p.grad is None or p.data_ptr() != ptr
                                      for p, ptr in zip(buffers.params, buffers.data_ptrs, strict=True)):
                buffers = self._build(group)
                if buffers is None:
                    return None
                self._flat[index] = buffers
            groups.append(buffers)
        return groups

    def _build(self, group: dict[str, Any]) -> _FlatGroup | None:
        """The group's flat buffers, with its state tensors turned into views of them (created as torch's
        ``Adam._init_group`` creates them where the group has not stepped yet); ``None`` if it cannot step flat."""
        params: list[Tensor] = group["params"]
        if not params or not is_plain_adam_group(group):
            return None
        first = params[0]
        if first.device.type != "cpu" or any(
                p.grad is None or p.grad.is_sparse or p.is_complex() or not p.is_contiguous()
                or p.device != first.device or p.dtype != first.dtype for p in params):
            return None
        states = [self.state[p] for p in params]
        if any(states) and not all({"step", "exp_avg", "exp_avg_sq"} <= state.keys() for state in states):
            return None
        for p, state in zip(params, states, strict=True):
            if not state:
                state["step"] = torch.tensor(0.0, dtype=torch.float32)
                state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        steps = [state["step"] for state in states]
        if any(step.device.type != "cpu" for step in steps) or len({float(step) for step in steps}) != 1:
            return None
        exp_avg = torch.cat([state["exp_avg"].reshape(-1) for state in states])
        exp_avg_sq = torch.cat([state["exp_avg_sq"].reshape(-1) for state in states])
        grad, denominator = torch.empty_like(exp_avg), torch.empty_like(exp_avg)
        sizes = [p.numel() for p in params]

        def views(flat: Tensor) -> list[Tensor]:
            return [part.view_as(p) for part, p in zip(flat.split(sizes), params, strict=True)]

        exp_avg_views, exp_avg_sq_views = views(exp_avg), views(exp_avg_sq)
        for state, avg, sq in zip(states, exp_avg_views, exp_avg_sq_views, strict=True):
            state["exp_avg"], state["exp_avg_sq"] = avg, sq
        return _FlatGroup(list(params), steps, exp_avg, exp_avg_sq, grad, denominator, exp_avg_views, views(grad),
                          views(denominator), [p.data_ptr() for p in params])


def has_step_hooks(optimizer: torch.optim.Optimizer) -> bool:
    """Whether a hook (the optimizer's own or a global one) runs around ``optimizer``'s step."""
    return bool(optimizer._optimizer_step_pre_hooks or optimizer._optimizer_step_post_hooks
                or optimizer_module._global_optimizer_pre_hooks or optimizer_module._global_optimizer_post_hooks)


def is_plain_adam_group(group: dict[str, Any]) -> bool:
    """Whether an Adam parameter group is plain Adam: no AMSGrad, maximize or weight decay, not differentiable,
    capturable or fused, float hyperparameters."""
    return not (group["amsgrad"] or group["maximize"] or group["weight_decay"] != 0 or group["differentiable"]
                or group["capturable"] or group["fused"]
                or any(isinstance(value, Tensor) for value in (group["lr"], *group["betas"])))


_EAGER_STEP = inspect.unwrap(EagerAdam.step)  # without torch's hooks, which wrap it once an EagerAdam exists
_HOOKED_STEP = optimizer_module.Optimizer.profile_hook_step(FlatAdam._step)


def _flat_step(group: dict[str, Any], flat: _FlatGroup) -> None:
    """``_multi_tensor_adam``'s non-capturable arithmetic, without weight decay, over one group's flat buffers."""
    beta1, beta2 = group["betas"]
    lr, eps = group["lr"], group["eps"]
    torch._foreach_add_(flat.steps, torch.tensor(1.0), alpha=1.0)
    torch._foreach_copy_(flat.grad_views, [p.grad for p in flat.params])
    flat.exp_avg.lerp_(flat.grad, 1 - beta1)
    flat.exp_avg_sq.mul_(beta2)
    flat.exp_avg_sq.addcmul_(flat.grad, flat.grad, value=1 - beta2)
    step = flat.steps[0].item()
    bias_correction1 = 1 - beta1**step
    bias_correction2 = 1 - beta2**step
    step_size = (lr / bias_correction1) * -1
    torch.sqrt(flat.exp_avg_sq, out=flat.denominator)
    flat.denominator.div_(bias_correction2**0.5)
    flat.denominator.add_(eps)
    torch._foreach_addcdiv_(flat.params, flat.exp_avg_views, flat.denominator_views, step_size)
