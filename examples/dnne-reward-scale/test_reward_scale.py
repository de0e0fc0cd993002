"""Tests of the example package, written the way a plugin author would (``dnne.runtime.testing``)."""
import torch

from dnne.runtime.testing import run_node_sync
from dnne_reward_scale import RewardScaleNode


def test_scales_and_clips() -> None:
    """Rewards are multiplied by scale, then clipped to +-clip."""
    out = run_node_sync(RewardScaleNode, {"rewards": [torch.tensor([1.0, -3.0, 0.5])]}, {"scale": 2.0, "clip": 4.0})
    assert torch.equal(out["scaled"][0], torch.tensor([2.0, -4.0, 1.0]))
