"""The built-in node library: PPO (rl/), environments (envs/) and flow control (flow/)."""
