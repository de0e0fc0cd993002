"""``CategoricalLogits`` against ``torch.distributions.Categorical``: the same log-probabilities, entropies and
gradients, bit for bit."""
from __future__ import annotations

import torch
from torch.distributions import Categorical

from dnne.nodes.rl.categorical import CategoricalLogits


def test_log_prob_entropy_and_their_gradients_equal_torch_distributions() -> None:
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(256, 6, generator=generator) * 3
    logits[0, 2] = -torch.inf  # a masked action: entropy clamps its log-probability
    actions = torch.randint(0, 6, (256,), generator=generator)
    actions[0] = 1
    results = []
    for build in (lambda l: Categorical(logits=l), CategoricalLogits):
        leaf = logits.clone().requires_grad_()
        distribution = build(leaf)
        log_prob, entropy = distribution.log_prob(actions), distribution.entropy()
        (log_prob.square().mean() + entropy.mean()).backward()
        results.append((log_prob.detach(), entropy.detach(), leaf.grad))
    for ours, theirs in zip(results[1], results[0]):
        assert torch.equal(ours, theirs)


def test_a_batch_of_sequences_keeps_its_shape() -> None:
    logits = torch.randn(5, 3, 4)
    actions = torch.randint(0, 4, (5, 3))
    ours, theirs = CategoricalLogits(logits), Categorical(logits=logits)
    assert torch.equal(ours.log_prob(actions), theirs.log_prob(actions))
    assert torch.equal(ours.entropy(), theirs.entropy())
