"""``DiagonalGaussian`` against ``torch.distributions``: the same log-probabilities, entropies and gradients, bit for
bit."""
from __future__ import annotations

import torch
from torch.distributions import Independent, Normal

from dnne.nodes.rl.gaussian import DiagonalGaussian


def test_log_prob_entropy_and_their_gradients_equal_torch_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    mean = torch.randn(256, 6, generator=generator)
    log_std = torch.randn(6, generator=generator) * 0.5
    actions = torch.randn(256, 6, generator=generator) * 2
    results = []
    for build in (lambda m, s: Independent(Normal(m, s), 1), DiagonalGaussian):
        m, ls = mean.clone().requires_grad_(), log_std.clone().requires_grad_()
        distribution = build(m, ls.exp().expand_as(m))
        log_prob, entropy = distribution.log_prob(actions), distribution.entropy()
        (log_prob.square().mean() + entropy.mean()).backward()
        results.append((log_prob.detach(), entropy.detach(), m.grad, ls.grad))
    for ours, theirs in zip(results[1], results[0]):
        assert torch.equal(ours, theirs)
