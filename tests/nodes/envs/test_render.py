"""Frames of the built-in torch tasks: a picture of env 0 that follows its observation."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from dnne.nodes.envs.registry import TORCH_TASKS
from dnne.nodes.envs.render import renderer_for
from dnne.nodes.envs.spaces import Box


@pytest.mark.parametrize("task", sorted(TORCH_TASKS))
def test_every_builtin_task_renders(task: str) -> None:
    """Each built-in task has a renderer; two different states of env 0 give two different RGB pictures."""
    env = TORCH_TASKS[task](2)
    renderer = renderer_for(env)
    assert renderer is not None
    first = env.reset(seed=0)
    frame = renderer(env, first[0].numpy())
    assert frame.dtype == np.uint8 and frame.shape == (320, 480, 3) and frame.std() > 0
    space = env.action_space
    actions = space.high.expand(2, -1).clone() if isinstance(space, Box) else torch.ones(2, dtype=torch.long)
    for _ in range(10):
        result = env.step(actions)
    assert not np.array_equal(renderer(env, result.observations[0].numpy()), frame)
