"""The built-in node library: PPO (rl/), environments (envs/) and flow control (flow/)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from dnne.runtime.types import PortType

from .types import ActingRule, Dones, ModelSpec, PolicyOutput, PolicyWeights

if TYPE_CHECKING:
    from dnne.runtime.registry import NodeRegistry

PORT_TYPES = (
    PortType("PolicyOutput", "a batched policy decision; read as a Tensor it is its action",
             reads_as={"Tensor": lambda output: output.action}),
    PortType("Dones", "terminated, truncated and final observations; read as a Tensor it is terminated | truncated",
             reads_as={"Tensor": Dones.as_tensor}),
    PortType("EnvHandle", "a running environment", config=True, crosses_processes=False),
    PortType("PolicyWeights", "one version of a policy: its parameters, normaliser statistics and acting rule"),
)

DNNE_TYPE_NAMES = {
    "TENSOR": "Tensor", "POLICY_OUTPUT": "PolicyOutput", "POLICY": "PolicyOutput", "SIM_HANDLE": "EnvHandle",
    "ACTION": "Tensor", "SYNC": "Trigger", "DICT": "Dict", "MODEL": "Model", "INT": "Int", "FLOAT": "Float",
    "BOOLEAN": "Bool", "STRING": "String",
}


def register(registry: NodeRegistry) -> None:
    """Register the built-in port types, DNNE's type names and every built-in node."""
    from .envs.action_node import ActionNode, CartpoleActionNode
    from .envs.env_node import EnvNode
    from .envs.isaac_nodes import IsaacGymEnvNode, IsaacGymStepNode
    from .envs.spaces import Box, Discrete
    from .envs.step_node import StepNode
    from .flow.convert_node import DonesToTensor
    from .flow.metrics_node import MetricsNode
    from .flow.or_node import ORNode
    from .hierarchy.concat import SubgoalConcatNode
    from .hierarchy.high_level import HighLevelStepNode
    from .hierarchy.reward import SubgoalRewardNode
    from .hierarchy.subgoal import SubgoalNode
    from .hierarchy.success import EpisodeSuccessNode
    from .rl.agent_node import PPOAgentNode
    from .rl.eval_node import PolicyEvalNode
    from .rl.trainer_node import PPOTrainerNode

    for port_type in PORT_TYPES:
        registry.add_type(port_type)
    for alias, name in DNNE_TYPE_NAMES.items():
        registry.alias_type(alias, name)
    for wire_type in (PolicyOutput, Dones, ModelSpec, PolicyWeights, ActingRule, Box, Discrete):
        registry.add_wire_type(wire_type)
    register_vocabulary(registry)
    for cls in (EnvNode, StepNode, ActionNode, CartpoleActionNode, IsaacGymEnvNode, IsaacGymStepNode, ORNode,
                MetricsNode, PPOAgentNode, PPOTrainerNode, HighLevelStepNode, SubgoalNode, SubgoalConcatNode,
                SubgoalRewardNode, EpisodeSuccessNode, PolicyEvalNode, DonesToTensor):
        registry.add_node(cls)


def register_vocabulary(registry: NodeRegistry) -> None:
    """Give the RL counters meaning: the run keys of today's graph files as stop shorthands, the settings
    ``play`` passes to the env and agent nodes, the summary fields, the metrics' x axis and the progress line."""
    from dnne.runtime.vocabulary import boolean, integer_at_least, one_of, text

    from .rl import run_eval

    registry.add_stop_shorthand("max_steps", "env_steps", "int: stop when env_steps (summed over envs) reaches it",
                                check=integer_at_least(1))
    registry.add_stop_shorthand("max_iterations", "iterations", "int: stop after this many training iterations",
                                check=integer_at_least(1))
    registry.add_stop_shorthand("max_episodes", "episodes", "int: stop after this many finished episodes (play)",
                                check=integer_at_least(1))
    registry.add_stop_shorthand("target_return", "mean_return", "float: stop, solved, when mean_return (last 20 "
                                "episodes) reaches it", solved=True)
    registry.add_run_key("realtime", "bool: play paces env steps to the env's dt", boolean)
    registry.add_run_key("stochastic", "bool: play samples actions instead of acting deterministically", boolean)
    registry.add_run_key("video_dir", "path: play records env 0's episodes here where the env can render", text)
    registry.add_run_key("video_format", "mp4 or gif: the format of play's videos", one_of("mp4", "gif"))
    registry.add_run_key("eval", run_eval.DOC, run_eval.eval_problem, expand=run_eval.expand_eval)
    registry.add_summary_field("env_steps", "env_steps", integer=True)
    registry.add_summary_field("iterations", "iterations", integer=True)
    registry.add_summary_field("mean_return", "mean_return")
    registry.add_summary_field("best_mean_return", "best_mean_return")
    registry.set_step_counter("env_steps", total_key="max_steps")
    registry.add_progress_column("mean_return")
    registry.add_progress_column("iterations", "iteration")


__all__ = ["ActingRule", "Dones", "ModelSpec", "PolicyOutput", "PolicyWeights", "register"]
