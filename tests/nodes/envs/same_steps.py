"""A check shared by the env-loop tests: one step of ours against one step of Gymnasium's same-step vector env."""
from __future__ import annotations

from typing import Any

import numpy as np


def assert_same_step(mine: tuple[Any, ...], reference: tuple[Any, ...], num_envs: int) -> int:
    """Observations, rewards, both flags and the final observations of one step are equal, dtypes included; returns
    how many episodes ended in it."""
    for got, expected in zip(mine[:4], reference[:4], strict=True):
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, expected)
    none_ended = np.zeros(num_envs, dtype=bool)
    np.testing.assert_array_equal(mine[4].get("_final_obs", none_ended), reference[4].get("_final_obs", none_ended))
    ended = np.flatnonzero(reference[4].get("_final_obs", ()))
    for i in ended:
        np.testing.assert_array_equal(mine[4]["final_obs"][i], reference[4]["final_obs"][i])
    return len(ended)
