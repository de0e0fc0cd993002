"""The IsaacGymEnvs Cartpole task as batched tensor physics, for machines without Isaac Gym."""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import TensorTask
from .spaces import Box


class CartpoleIsaac(TensorTask):
    """IsaacGymEnvs' ``Cartpole`` task (cart on a slider, pole on a hinge) integrated in torch instead of PhysX.

    Model, from IsaacGymEnvs' ``assets/urdf/cartpole.urdf``: cart mass ``M = 1`` kg; pole mass ``m = 1`` kg with its
    centre of mass ``l = 0.47`` m above the hinge; the URDF gives the pole no rotational inertia, so ``I = 0`` about
    its centre of mass; slider joint limited to ``|x| <= 4`` m; no friction or damping; gravity ``g = 9.81``. With
    ``theta`` the pole angle from upright (positive tilts the pole towards -x, as the URDF's joint axes do) and ``F``
    the cart force, Lagrange's equations are::

        (M + m) x'' - m l cos(theta) theta'' = F - m l sin(theta) theta'^2
        -m l cos(theta) x'' + (I + m l^2) theta'' = m g l sin(theta)

    solved as a 2x2 linear system and integrated with semi-implicit Euler (velocities first, then positions) at
    ``dt / substeps``. At the slider limit the cart stops (an inelastic joint limit). Reproduces the task's logic, not
    PhysX's solver: returns are comparable, trajectories are not bit-equal to Isaac Gym.

    Task: the action is the cart force in newtons, clipped to ``[-max_effort, max_effort]`` and never rescaled;
    observations ``[cart_pos, cart_vel, pole_angle, pole_vel]`` clipped to +-5; reward
    ``1 - angle^2 - 0.01 |cart_vel| - 0.005 |pole_vel|``, or -2 where ``|cart_pos| > reset_dist`` or
    ``|angle| > pi / 2``, which terminate the episode; truncation after ``max_episode_steps``; resets draw positions
    from U(-0.1, 0.1) and velocities from U(-0.25, 0.25). The physics state is the unclipped
    ``[cart_pos, cart_vel, pole_angle, pole_vel]``.

    Args:
        num_envs: number of environments.
        device: device of the state and of every returned tensor.
        dtype: float dtype of the physics, observations and rewards.
        max_episode_steps: truncation limit (500 in IsaacGymEnvs).
        max_effort: largest cart force in newtons (``maxEffort`` in IsaacGymEnvs' config).
        reset_dist: cart distance from the centre that fails the episode (``resetDist``).
    """

    cart_mass = 1.0
    pole_mass = 1.0
    pole_com = 0.47
    pole_inertia = 0.0
    gravity = 9.81
    slider_limit = 4.0
    substeps = 2
    clip_observations = 5.0

    def __init__(
        self,
        num_envs: int,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        max_episode_steps: int = 500,
        max_effort: float = 400.0,
        reset_dist: float = 3.0,
    ) -> None:
        super().__init__(num_envs, device, dtype, max_episode_steps, state_dim=4)
        self.max_effort = max_effort
        self.reset_dist = reset_dist
        self.dt = 1.0 / 60.0
        high = torch.full((4,), self.clip_observations)
        self.observation_space = Box(-high, high)
        self.action_space = Box(torch.tensor([-max_effort]), torch.tensor([max_effort]))

    def dynamics(self, state: Tensor, force: Tensor) -> Tensor:
        """Integrate one control step (``substeps`` semi-implicit Euler steps) under a constant cart force.

        Args:
            state: ``[N, 4]`` unclipped ``[x, x_dot, theta, theta_dot]``.
            force: ``[N]`` cart force in newtons, already clipped.

        Returns:
            The next state, a new ``[N, 4]`` tensor.
        """
        M, m, l, g = self.cart_mass, self.pole_mass, self.pole_com, self.gravity
        h = self.dt / self.substeps
        x, x_dot, theta, theta_dot = state.unbind(1)
        for _ in range(self.substeps):
            c, s = torch.cos(theta), torch.sin(theta)
            a11, a12, a22 = M + m, -m * l * c, self.pole_inertia + m * l * l
            b1 = force - m * l * s * theta_dot.square()
            b2 = m * g * l * s
            det = a11 * a22 - a12.square()
            x_acc = (b1 * a22 - a12 * b2) / det
            theta_acc = (a11 * b2 - a12 * b1) / det
            x_dot = x_dot + h * x_acc
            theta_dot = theta_dot + h * theta_acc
            x = x + h * x_dot
            theta = theta + h * theta_dot
            at_limit = x.abs() >= self.slider_limit
            x = x.clamp(-self.slider_limit, self.slider_limit)
            x_dot = torch.where(at_limit, torch.zeros_like(x_dot), x_dot)
        return torch.stack((x, x_dot, theta, theta_dot), dim=1)

    def reward(self, state: Tensor) -> tuple[Tensor, Tensor]:
        """IsaacGymEnvs' ``compute_cartpole_reward`` without the time limit.

        Args:
            state: ``[N, 4]`` unclipped state after the step.

        Returns:
            ``([N] rewards, [N] bool failed)``.
        """
        x, x_dot, theta, theta_dot = state.unbind(1)
        reward = 1.0 - theta * theta - 0.01 * x_dot.abs() - 0.005 * theta_dot.abs()
        failed = (x.abs() > self.reset_dist) | (theta.abs() > math.pi / 2)
        return torch.where(failed, torch.full_like(reward, -2.0), reward), failed

    def _sample_initial(self, count: int) -> Tensor:
        positions = self._uniform(count, [-0.1, -0.1], [0.1, 0.1])
        velocities = self._uniform(count, [-0.25, -0.25], [0.25, 0.25])
        return torch.stack((positions[:, 0], velocities[:, 0], positions[:, 1], velocities[:, 1]), dim=1)

    def _advance(self, state: Tensor, actions: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        force = actions[:, 0].to(self.dtype).clamp(-self.max_effort, self.max_effort)
        next_state = self.dynamics(state, force)
        rewards, failed = self.reward(next_state)
        return next_state, rewards, failed

    def _observe(self, state: Tensor) -> Tensor:
        return state.clamp(-self.clip_observations, self.clip_observations)
