"""Tests for learning-rate schedules."""
from __future__ import annotations

import pytest

from dnne.nodes.rl.schedules import LRSchedule, make_schedule


class TestConstant:
    def test_never_changes(self) -> None:
        """The constant schedule returns the base rate whatever the KL or progress."""
        s = make_schedule("constant", 3e-4)
        assert [s.step(kl, p) for kl, p in [(0.0, 0.1), (1.0, 0.5), (1e-9, 1.0)]] == [3e-4] * 3


class TestLinear:
    def test_decays_with_progress(self) -> None:
        """Linear gives base * (1 - progress), floored at 0."""
        s = make_schedule("linear", 1e-3)
        assert s.step(0.0, 0.25) == pytest.approx(7.5e-4)
        assert s.step(0.0, 1.0) == 0.0
        assert s.step(0.0, 1.5) == 0.0

    def test_counts_updates_without_progress(self) -> None:
        """Without progress the schedule decays over total_updates; the last update reaches 0."""
        s = make_schedule("linear", 1e-3, total_updates=4)
        assert [s.step(0.0) for _ in range(4)] == pytest.approx([7.5e-4, 5e-4, 2.5e-4, 0.0])

    def test_min_lr_floor(self) -> None:
        """A min_lr floors the decay."""
        s = LRSchedule("linear", 1e-3, total_updates=2, min_lr=1e-5)
        s.step(0.0)
        assert s.step(0.0) == 1e-5

    def test_needs_progress_or_total(self) -> None:
        """Linear with neither total_updates nor progress raises."""
        with pytest.raises(ValueError, match="total_updates"):
            make_schedule("linear", 1e-3).step(0.0)


class TestAdaptive:
    def test_rl_games_rule(self) -> None:
        """KL above 2x threshold divides by 1.5, below half multiplies by 1.5, in between keeps the rate."""
        s = make_schedule("adaptive", 1e-3, kl_threshold=0.01)
        assert s.step(0.03, 0.0) == pytest.approx(1e-3 / 1.5)
        assert s.step(0.01, 0.0) == pytest.approx(1e-3 / 1.5)
        assert s.step(0.001, 0.0) == pytest.approx(1e-3)

    def test_bounds(self) -> None:
        """The adaptive rate stays within [1e-6, 1e-2]."""
        s = make_schedule("adaptive", 1e-3, kl_threshold=0.01)
        for _ in range(50):
            lr = s.step(1.0, 0.0)
        assert lr == 1e-6
        for _ in range(50):
            lr = s.step(0.0, 0.0)
        assert lr == 1e-2


class TestStateDict:
    def test_round_trip(self) -> None:
        """A restored schedule continues exactly where the saved one was."""
        a = make_schedule("adaptive", 1e-3, kl_threshold=0.01)
        a.step(0.05, 0.0)
        b = make_schedule("adaptive", 1e-3, kl_threshold=0.01)
        b.load_state_dict(a.state_dict())
        assert b.lr == a.lr and b.updates == a.updates
        assert b.step(0.05, 0.0) == a.step(0.05, 0.0)

    def test_kind_mismatch_and_unknown_name(self) -> None:
        """Loading another kind's state, or an unknown name, raises."""
        with pytest.raises(ValueError, match="adaptive"):
            make_schedule("linear", 1e-3, 10).load_state_dict(make_schedule("adaptive", 1e-3).state_dict())
        with pytest.raises(ValueError, match="constant, linear, adaptive"):
            make_schedule("cosine", 1e-3)
