"""PPO: actor-critic, rollout storage, GAE, the update, and the agent and trainer nodes."""
