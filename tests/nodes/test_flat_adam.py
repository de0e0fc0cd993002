"""``FlatAdam`` computes what ``torch.optim.Adam`` (foreach) computes, bit for bit, and keeps torch's state format."""
from __future__ import annotations

import copy

import torch

from dnne.nodes.flat_adam import FlatAdam
from dnne.nodes.rl.actor_critic import ActorCritic


def _model(seed: int) -> ActorCritic:
    """The shape the learner trains: separate actor and critic MLPs and a log std, 13 tensors."""
    torch.manual_seed(seed)
    return ActorCritic(5, 3, (32, 32), "tanh", shared_trunk=False, init_log_std=-1.0)


def _train(optimizer: torch.optim.Optimizer, model: ActorCritic, steps: int, seed: int = 1,
           frozen: tuple[torch.nn.Parameter, ...] = ()) -> None:
    """PPO-like steps: grad clipping, a decaying learning rate; ``frozen`` parameters get no gradient."""
    data = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for group in optimizer.param_groups:
            group["lr"] = 1e-2 * (1 - step / (2 * steps))
        optimizer.zero_grad(set_to_none=True)
        inputs, actions = torch.randn(64, 5, generator=data), torch.randn(64, 3, generator=data)
        log_prob, entropy, value = model.evaluate(inputs, actions)
        (-(log_prob.exp().clamp(0.8, 1.2) * value.detach()).mean() + (value - 1).square().mean()
         - 0.01 * entropy.mean()).backward()
        for parameter in frozen:
            parameter.grad = None
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()


def _assert_same(ours: tuple[ActorCritic, torch.optim.Optimizer], theirs: tuple[ActorCritic, torch.optim.Optimizer]
                 ) -> None:
    for mine, reference in zip(ours[0].parameters(), theirs[0].parameters(), strict=True):
        assert torch.equal(mine, reference)
    for mine, reference in zip(ours[1].state.values(), theirs[1].state.values(), strict=True):
        assert mine.keys() == reference.keys()
        for key in mine:
            assert torch.equal(mine[key], reference[key])


def _pair() -> tuple[tuple[ActorCritic, FlatAdam], tuple[ActorCritic, torch.optim.Adam]]:
    ours, theirs = _model(0), _model(0)
    return ((ours, FlatAdam(ours.parameters(), lr=1e-2, eps=1e-5, foreach=True)),
            (theirs, torch.optim.Adam(theirs.parameters(), lr=1e-2, eps=1e-5, foreach=True)))


class TestFlatAdam:
    def test_steps_are_bit_identical_to_torch_adam(self) -> None:
        """Parameters and moments after 60 steps equal torch's foreach Adam's exactly (torch.equal)."""
        ours, theirs = _pair()
        _train(ours[1], ours[0], 60)
        _train(theirs[1], theirs[0], 60)
        _assert_same(ours, theirs)

    def test_the_state_is_torchs_and_round_trips_both_ways(self) -> None:
        """FlatAdam's state dict restores a torch Adam, and a torch Adam's restores a FlatAdam; all four go on
        stepping identically."""
        ours, theirs = _pair()
        _train(ours[1], ours[0], 5)
        _train(theirs[1], theirs[0], 5)
        crossed_torch = _model(0)
        crossed_torch.load_state_dict(ours[0].state_dict())
        into_torch = torch.optim.Adam(crossed_torch.parameters(), lr=1e-2, eps=1e-5, foreach=True)
        into_torch.load_state_dict(copy.deepcopy(ours[1].state_dict()))
        crossed_flat = _model(0)
        crossed_flat.load_state_dict(theirs[0].state_dict())
        into_flat = FlatAdam(crossed_flat.parameters(), lr=1e-2, eps=1e-5, foreach=True)
        into_flat.load_state_dict(copy.deepcopy(theirs[1].state_dict()))
        for model, optimizer in (ours, theirs, (crossed_torch, into_torch), (crossed_flat, into_flat)):
            _train(optimizer, model, 5, seed=2)
        _assert_same(ours, theirs)
        _assert_same((crossed_torch, into_torch), theirs)
        _assert_same((crossed_flat, into_flat), theirs)

    def test_a_parameter_without_a_gradient_takes_torchs_step_with_the_same_numbers(self) -> None:
        """Steps where the log std gets no gradient (torch skips it, so its step count falls behind and every later
        step is torch's own, on the flat buffers' views) equal torch's."""
        ours, theirs = _pair()
        for model, optimizer in (ours, theirs):
            _train(optimizer, model, 3)
            _train(optimizer, model, 3, seed=3, frozen=(model.log_std,))
            _train(optimizer, model, 3, seed=4)
        _assert_same(ours, theirs)

    def test_step_hooks_run(self) -> None:
        """Registered step pre- and post-hooks are called around each step, as on torch's optimizers."""
        model, optimizer = _pair()[0]
        calls: list[str] = []
        optimizer.register_step_pre_hook(lambda *_: calls.append("pre"))
        optimizer.register_step_post_hook(lambda *_: calls.append("post"))
        _train(optimizer, model, 2)
        assert calls == ["pre", "post", "pre", "post"]
