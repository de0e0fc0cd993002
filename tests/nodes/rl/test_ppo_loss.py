"""Tests for the clipped PPO loss against numbers computed independently with numpy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dnne.nodes.rl.ppo_loss import ppo_loss

NEW_LP = np.array([-1.0, -0.5, -2.0, -0.1])
OLD_LP = np.array([-1.2, -0.5, -1.5, -0.6])
ADV = np.array([1.0, -2.0, 0.5, -1.0])
NEW_V = np.array([0.5, 1.5, -0.3, 2.0])
OLD_V = np.array([0.1, 1.4, 0.5, 1.0])
RET = np.array([1.0, 1.0, 0.0, 1.5])
ENT = np.array([1.2, 1.0, 0.8, 1.1])
CLIP, VC, EC = 0.2, 0.5, 0.01


def _t(a: np.ndarray) -> torch.Tensor:
    return torch.tensor(a, dtype=torch.float64)


def reference(clip_value_loss: bool) -> dict[str, float]:
    """The PPO formulas written out element by element with numpy."""
    ratio = np.exp(NEW_LP - OLD_LP)  # [1.2214, 1.0, 0.6065, 1.6487]
    pg = -np.mean([min(r * a, min(max(r, 1 - CLIP), 1 + CLIP) * a) for r, a in zip(ratio, ADV)])
    if clip_value_loss:
        vclip = OLD_V + np.clip(NEW_V - OLD_V, -CLIP, CLIP)
        vl = 0.5 * np.mean(np.maximum((NEW_V - RET) ** 2, (vclip - RET) ** 2))
    else:
        vl = 0.5 * np.mean((NEW_V - RET) ** 2)
    ent = ENT.mean()
    return {
        "total": pg + VC * vl - EC * ent,
        "policy_loss": pg,
        "value_loss": vl,
        "entropy": ent,
        "approx_kl": np.mean((ratio - 1) - np.log(ratio)),
        "clip_fraction": np.mean(np.abs(ratio - 1) > CLIP),
    }


class TestPPOLoss:
    @pytest.mark.parametrize("clip_value_loss", [False, True])
    def test_matches_hand_formula(self, clip_value_loss: bool) -> None:
        """Every loss term equals the numpy computation of the same formula."""
        terms = ppo_loss(
            _t(NEW_LP), _t(OLD_LP), _t(ADV), _t(NEW_V), _t(OLD_V), _t(RET), _t(ENT), CLIP, VC, EC, clip_value_loss
        )
        for name, expected in reference(clip_value_loss).items():
            assert getattr(terms, name).item() == pytest.approx(expected, rel=1e-12), name

    def test_written_out_numbers(self) -> None:
        """Spot values worked by hand: clip fraction 3/4 (ratios 1.22, 0.61, 1.65 leave [0.8, 1.2])."""
        terms = ppo_loss(_t(NEW_LP), _t(OLD_LP), _t(ADV), _t(NEW_V), _t(OLD_V), _t(RET), _t(ENT), CLIP, VC, EC, False)
        assert terms.clip_fraction.item() == pytest.approx(0.75)
        # value loss: 0.5 * mean(0.25, 0.25, 0.09, 0.25) = 0.105
        assert terms.value_loss.item() == pytest.approx(0.105)
        # policy: -mean(min(1.2214, 1.2), min(-2, -2), min(0.3033, 0.4), min(-1.6487, -1.2))
        #       = -mean(1.2, -2, 0.5 * e^-0.5, -e^0.5)
        assert terms.policy_loss.item() == pytest.approx(-(1.2 - 2.0 + 0.5 * np.exp(-0.5) - np.exp(0.5)) / 4)

    def test_identical_policies_give_zero_kl_and_gradient_flows(self) -> None:
        """Equal log-probs give ratio 1, zero KL and clip fraction; the total backpropagates to the new log-probs."""
        new_lp = _t(OLD_LP).requires_grad_(True)
        terms = ppo_loss(new_lp, _t(OLD_LP), _t(ADV), _t(NEW_V), _t(OLD_V), _t(RET), _t(ENT), CLIP, VC, EC, False)
        assert terms.approx_kl.item() == 0.0 and terms.clip_fraction.item() == 0.0
        terms.total.backward()
        assert torch.allclose(new_lp.grad, -_t(ADV) / 4)
