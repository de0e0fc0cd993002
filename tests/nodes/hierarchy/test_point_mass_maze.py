"""PointMassMaze: layout, walls, goal, reset, truncation, seeding and exact resume."""
from __future__ import annotations

import math

import pytest
import torch

from dnne.nodes.envs.base import StepResult
from dnne.nodes.envs.point_maze import U_MAZE, PointMassMaze
from dnne.nodes.envs.registry import make_env

SMALL = ("#####",
         "#S..#",
         "###.#",
         "#G..#",
         "#####")


def reference_step(state: list[float], action: list[float], layout: tuple[str, ...], cell: float,
                   goal: tuple[float, float], goal_radius: float, accel: float = 4.0, damping: float = 2.0,
                   dt: float = 0.1) -> tuple[list[float], float, bool]:
    """One step of the documented physics for one env, in plain Python: next state, reward and terminated."""
    rows, columns = len(layout), len(layout[0])

    def free(x: float, y: float) -> bool:
        column = math.floor((x + columns * cell / 2) / cell)
        row = math.floor((rows * cell / 2 - y) / cell)
        return 0 <= row < rows and 0 <= column < columns and layout[row][column] != "#"

    x, y, vx, vy = state
    ax, ay = (min(max(a, -1.0), 1.0) for a in action)
    vx += dt * (accel * ax - damping * vx)
    vy += dt * (accel * ay - damping * vy)
    if free(x + dt * vx, y):
        x += dt * vx
    else:
        vx = 0.0
    if free(x, y + dt * vy):
        y += dt * vy
    else:
        vy = 0.0
    reached = math.hypot(x - goal[0], y - goal[1]) <= goal_radius
    return [x, y, vx, vy], float(reached), reached


def results_equal(a: StepResult, b: StepResult) -> bool:
    return all(torch.equal(getattr(a, f), getattr(b, f)) for f in StepResult.__dataclass_fields__)


class TestLayout:
    def test_registered_as_torch_task(self) -> None:
        """``make_env("torch", "PointMassMaze", ...)`` builds it, with options passed through."""
        env = make_env("torch", "PointMassMaze", 3, "cpu", layout=list(SMALL), cell_size=2.0)
        assert isinstance(env, PointMassMaze) and env.cell_size == 2.0 and env.layout == SMALL
        assert env.observation_space.dim == 4 and env.action_space.dim == 2

    def test_cells_are_centred_on_the_origin_with_y_up(self) -> None:
        """Cell centres, start and goal follow the documented coordinates: first row on top, grid centred."""
        env = PointMassMaze(1, layout=SMALL, cell_size=2.0)
        assert env.half_extent == (5.0, 5.0)
        assert env.start == (-2.0, 2.0)  # row 1, column 1
        assert env.goal == (-2.0, -2.0)  # row 3, column 1
        points = torch.tensor([[-2.0, 2.0], [2.9, 2.0], [3.1, 2.0], [0.0, 0.0], [2.0, 0.0], [-2.0, -2.9],
                               [-2.0, -3.1], [0.0, 5.5], [-5.5, 0.0]])
        assert env.is_free(points[:, 0], points[:, 1]).tolist() == [True, True, False, False, True, True,
                                                                    False, False, False]

    def test_the_u_maze_goal_is_near_as_the_crow_flies_and_far_along_the_corridor(self) -> None:
        """The default U-maze: start and goal two cells apart, with a wall row between them."""
        env = PointMassMaze(1)
        assert env.layout == U_MAZE
        assert env.start[0] == env.goal[0] and env.start[1] - env.goal[1] == 2 * env.cell_size
        between = env.is_free(torch.tensor([env.start[0]]), torch.tensor([env.start[1] - env.cell_size]))
        assert not between.item()

    @pytest.mark.parametrize("layout, message", [
        ([], "non-empty"),
        ("#S.G#", "list of strings"),
        (["#S.", "#G"], "same non-zero length"),
        (["#S.G", "#x.#"], "only"),
        (["#S.#", "#..#"], "exactly one 'G'"),
        (["#SSG"], "exactly one 'S'"),
    ])
    def test_bad_layouts_are_refused(self, layout: list[str] | str, message: str) -> None:
        with pytest.raises(ValueError, match=message):
            PointMassMaze(1, layout=layout)

    def test_bad_options_are_refused(self) -> None:
        with pytest.raises(ValueError, match="cell_size"):
            PointMassMaze(1, cell_size=0.0)
        with pytest.raises(ValueError, match="start_spread"):
            PointMassMaze(1, cell_size=1.0, start_spread=0.5)
        with pytest.raises(ValueError, match="goal_radius"):
            PointMassMaze(1, goal_radius=0.0)
        with pytest.raises(ValueError, match="top speed"):
            PointMassMaze(1, cell_size=0.1, start_spread=0.0)


class TestDynamics:
    def test_steps_match_the_documented_physics_walls_included(self) -> None:
        """From random states across the grid, a step equals the plain-Python physics to 1e-12, and walls stop
        some of them."""
        n, cell = 2000, 1.5
        generator = torch.Generator().manual_seed(0)
        env = PointMassMaze(n, dtype=torch.float64, cell_size=cell, goal_radius=0.6)
        env.reset(seed=0)
        width, height = env.half_extent
        positions = (torch.rand((n, 2), generator=generator, dtype=torch.float64) * 2 - 1) * torch.tensor(
            [width, height], dtype=torch.float64)
        free = env.is_free(positions[:, 0], positions[:, 1])
        velocities = (torch.rand((n, 2), generator=generator, dtype=torch.float64) * 2 - 1) * 2.0
        states = torch.cat((positions, velocities), dim=1)[free]
        count = states.shape[0]
        env = PointMassMaze(count, dtype=torch.float64, cell_size=cell, goal_radius=0.6)
        env.reset(seed=0)
        actions = torch.randn((count, 2), generator=generator, dtype=torch.float64) * 1.5  # some beyond [-1, 1]
        env.set_state(states)
        result = env.step(actions)
        blocked = 0
        for i in range(count):
            expected, reward, reached = reference_step(states[i].tolist(), actions[i].tolist(), U_MAZE, cell,
                                                       env.goal, 0.6)
            if reached:
                assert result.final_observations[i].tolist() == pytest.approx(expected, abs=1e-12)
            else:
                assert env.get_state()[i].tolist() == pytest.approx(expected, abs=1e-12)
                assert result.observations[i].tolist() == pytest.approx(expected, abs=1e-12)
            assert result.rewards[i].item() == reward and result.terminated[i].item() == reached
            blocked += expected[2] == 0.0 or expected[3] == 0.0
        assert count > 500 and blocked > 30, "too few envs hit a wall: the wall branch went untested"

    def test_a_wall_stops_the_mass_and_the_corridor_leads_around(self) -> None:
        """Pushing straight down from the start never crosses the wall row; following the corridor reaches the
        goal."""
        env = PointMassMaze(1, layout=SMALL, cell_size=2.0, goal_radius=0.5, start_spread=0.0)
        env.reset(seed=0)
        for _ in range(300):
            result = env.step(torch.tensor([[0.0, -1.0]]))
            assert not result.terminated.any()
        y_floor = env.get_state()[0, 1].item()
        assert 1.0 <= y_floor < 1.2 and env.get_state()[0, 3].item() == 0.0  # stopped above the wall row

        env.reset(seed=0)
        waypoints = [(2.0, 2.0), (2.0, -2.0), (-2.0, -2.0)]  # right, down column 3, left to the goal
        reached = False
        for target in waypoints:
            for _ in range(200):
                x, y, vx, vy = env.get_state()[0].tolist()
                force = torch.tensor([[2 * (target[0] - x) - vx, 2 * (target[1] - y) - vy]]).clamp(-1, 1)
                result = env.step(force)
                if result.terminated.any():
                    reached = True
                    break
            if reached:
                break
        assert reached


class TestEpisodes:
    def test_the_goal_pays_one_and_terminates(self) -> None:
        """Reward 1 and terminated exactly where the step ends within goal_radius of the goal centre; the return of
        that episode is 1 and the env restarts at the start."""
        env = PointMassMaze(3, dtype=torch.float64, layout=SMALL, cell_size=2.0, goal_radius=0.5)
        env.reset(seed=0)
        gx, gy = env.goal
        env.set_state(torch.tensor([[gx + 0.45, gy, 0, 0], [gx + 0.55, gy, 0, 0], [gx, gy - 0.6, 0, 1.0]],
                                   dtype=torch.float64))
        result = env.step(torch.zeros(3, 2, dtype=torch.float64))
        # the third moves 0.1 * 0.8 = 0.08 up: 0.52 from the centre, still outside
        assert result.rewards.tolist() == [1.0, 0.0, 0.0]
        assert result.terminated.tolist() == [True, False, False] and not result.truncated.any()
        assert result.episode_returns.tolist() == [1.0] and result.episode_lengths.tolist() == [1]
        assert result.final_observations[0, 0].item() == gx + 0.45
        start = torch.tensor(env.start, dtype=torch.float64)
        assert (result.observations[0, :2] - start).abs().max() <= env.start_spread
        assert result.observations[0, 2:].tolist() == [0.0, 0.0]

    def test_reset_draws_starts_around_the_start_cell_at_rest(self) -> None:
        """Reset positions lie within start_spread of the start centre on each axis, spread out, at rest."""
        env = PointMassMaze(4096)
        observations = env.reset(seed=3)
        offset = observations[:, :2] - torch.tensor(env.start)
        assert offset.abs().max() <= env.start_spread + 1e-6
        assert offset.abs().max() > 0.95 * env.start_spread
        assert torch.equal(observations[:, 2:], torch.zeros(4096, 2))
        assert torch.equal(observations, env.get_state())

    def test_truncates_after_max_episode_steps_and_resets(self) -> None:
        """Without reaching the goal every episode is truncated at max_episode_steps with return 0, and restarts."""
        env = PointMassMaze(8, max_episode_steps=50)
        env.reset(seed=1)
        for t in range(1, 51):
            result = env.step(torch.ones(8, 2) * 0.3)
            assert not result.terminated.any() and not result.rewards.any()
            if t < 50:
                assert not result.truncated.any() and result.episode_returns.numel() == 0
        assert result.truncated.all()
        assert result.episode_lengths.tolist() == [50] * 8 and result.episode_returns.tolist() == [0.0] * 8
        assert not torch.equal(result.final_observations, result.observations)
        assert torch.equal(env.get_state()[:, 2:], torch.zeros(8, 2))

    def test_seeding_and_exact_resume(self) -> None:
        """The same seed gives the same trajectory, another seed another one; state_dict / load_state_dict continues
        it bit for bit."""
        def actions(t: int) -> torch.Tensor:
            return torch.sin(torch.arange(12, dtype=torch.float32).reshape(6, 2) * 0.7 + 0.05 * t)

        a, b = PointMassMaze(6, max_episode_steps=40), PointMassMaze(6, max_episode_steps=40)
        assert torch.equal(a.reset(seed=5), b.reset(seed=5))
        assert not torch.equal(PointMassMaze(6).reset(seed=6), a.current_observations())
        for t in range(150):
            assert results_equal(a.step(actions(t)), b.step(actions(t)))
        saved = a.state_dict()
        expected = [a.step(actions(t)) for t in range(150, 300)]
        c = PointMassMaze(6, max_episode_steps=40)
        c.reset(seed=99)
        c.load_state_dict(saved)
        for t, reference in zip(range(150, 300), expected):
            assert results_equal(c.step(actions(t)), reference)
