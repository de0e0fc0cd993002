"""Hierarchical RL nodes: a high level that picks subgoals every few env steps, a low level that reaches them."""
