"""``RunningEpisodes``: the returns and lengths of the episodes that end, with and without the caller's hint."""
from __future__ import annotations

import torch

from dnne.nodes.envs.base import RunningEpisodes


def test_the_hint_that_no_episode_ended_changes_no_number() -> None:
    """Counters told ``any_done`` (true or false, as it is) give what counters told nothing give, step by step."""
    generator = torch.Generator().manual_seed(3)
    hinted, plain = RunningEpisodes(4, torch.device("cpu"), torch.float32), RunningEpisodes(4, torch.device("cpu"),
                                                                                             torch.float32)
    ended = 0
    for _ in range(60):
        rewards = torch.randn(4, generator=generator)
        done = torch.rand(4, generator=generator) < 0.1
        got = hinted.update(rewards, done, any_done=bool(done.any()))
        expected = plain.update(rewards, done)
        for a, b in zip(got, expected, strict=True):
            assert torch.equal(a, b) and a.dtype == b.dtype
        assert torch.equal(hinted.returns, plain.returns) and torch.equal(hinted.lengths, plain.lengths)
        ended += len(expected[0])
    assert ended >= 5
