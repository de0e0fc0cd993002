"""``run.eval``: evaluation during training as a run setting. At load it becomes a ``PolicyEvalNode`` wired to the
graph's trainer (its weights), the agent that feeds the trainer's ``model`` (the architecture) and the env node the
agent acts on (the task to build again), placed in that env node's process."""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dnne.runtime.errors import Issue
from dnne.runtime.graph import LinkSpec, NodeSpec
from dnne.runtime.node import Node, canonical_name
from dnne.runtime.validate import did_you_mean

if TYPE_CHECKING:
    from dnne.runtime.graph import Graph
    from dnne.runtime.registry import NodeRegistry

# run.eval's keys and the PolicyEvalNode params they set
KEYS = {"every_updates": "every", "episodes": "episodes", "seed": "seed", "deterministic": "deterministic",
        "num_envs": "num_envs"}
DOC = ("{\"every_updates\": N, \"episodes\": K, \"seed\": S, \"deterministic\": true, \"num_envs\": E}: evaluate "
       "the trainer's policy every N updates on K fresh episodes of envs of its own (a PolicyEvalNode wired to the "
       "trainer, agent and env node) and keep the best as checkpoints/best.pt; every key optional")


def eval_problem(value: Any) -> str | None:
    """The run key's check: an object of ``KEYS`` (their values are the evaluation node's params, checked there)."""
    if not isinstance(value, dict):
        return f"{str(value)[:80]!r} must be an object such as {{\"every_updates\": 10, \"episodes\": 10}}"
    for key in value:
        if key not in KEYS:
            return f"unknown key {str(key)[:80]!r}{did_you_mean(str(key), KEYS)} (keys: {', '.join(KEYS)})"
    return None


eval_problem.schema = {  # type: ignore[attr-defined]  # what graph_schema documents for the run key
    "type": "object",
    "properties": {
        "every_updates": {"type": "integer", "minimum": 1, "maximum": 1000000},
        "episodes": {"type": "integer", "minimum": 1, "maximum": 1000000},
        "seed": {"type": "integer", "minimum": 0, "maximum": 2147483647},
        "deterministic": {"type": "boolean"},
        "num_envs": {"type": ["integer", "null"], "minimum": 1, "maximum": 100000},
    },
    "additionalProperties": False,
}

def expand_eval(graph: Graph, value: dict[str, Any], where: str, registry: NodeRegistry) -> list[Issue]:
    """Add the evaluation node ``value`` asks for to ``graph`` (see the module); issues when the graph has no
    trainer, several, or no env node to evaluate on."""
    from .eval_node import PolicyEvalNode

    classes = {node_id: cls for node_id, spec in graph.nodes.items() if (cls := registry.get(spec.type)) is not None}

    def problem(code: str, message: str) -> list[Issue]:
        return [Issue(code, f"run.eval: {message}", field="eval", where=where)]

    hand_wired = sorted(node_id for node_id, cls in classes.items() if issubclass(cls, PolicyEvalNode))
    if hand_wired:
        return problem("duplicate_evaluation", f"the graph already evaluates with node {hand_wired[0]!r}: remove "
                       "it or run.eval")
    trainers = sorted(node_id for node_id, cls in classes.items() if _port_of(cls.output_ports, "PolicyWeights",
                                                                            registry))
    if not trainers:
        return problem("no_trainer", "evaluation judges a trainer's policy, and no node of this graph trains one "
                       "(a node with a PolicyWeights output, such as PPOTrainerNode)")
    if len(trainers) > 1:
        return problem("ambiguous_trainer", f"nodes {', '.join(map(repr, trainers))} each train a policy: run.eval "
                       "cannot tell which to evaluate; add a PolicyEvalNode by hand (docs/runs.md)")
    trainer = trainers[0]
    model_input = _port_of(classes[trainer].input_ports, "Model", registry)
    model_links = [link for link in graph.links if link.dst == trainer and model_input is not None
                   and canonical_name(classes[trainer].input_ports, link.dst_port) == model_input]
    if not model_links or model_links[0].src not in classes:
        return problem("no_agent", f"the trainer {trainer!r} has no agent linked to its {model_input or 'model'!r} "
                       "input: evaluation builds its network from that agent's model")
    agent = model_links[0]
    envs = _env_nodes(graph, classes, agent.src, registry)
    if len(envs) != 1:
        found = f"env nodes {', '.join(map(repr, envs))}" if envs else "no env node"
        return problem("ambiguous_env" if envs else "no_env", f"{found} upstream of the agent {agent.src!r}: "
                       "evaluation builds one env node's task again; add a PolicyEvalNode by hand (docs/runs.md)")
    env = envs[0]
    node_id = next(name for name in ("eval", *(f"eval_{i}" for i in range(1, len(graph.nodes) + 2)))
                   if name not in graph.nodes)
    pointer = where.startswith("/")
    graph.nodes[node_id] = NodeSpec(node_id, PolicyEvalNode.type_name(),
                                    {KEYS[key]: item for key, item in value.items()}, where,
                                    {KEYS[key]: f"{where}/{key}" if pointer else where for key in value})
    weights_output = _port_of(classes[trainer].output_ports, "PolicyWeights", registry)
    env_output = _port_of(classes[env].output_ports, "EnvHandle", registry)
    assert weights_output is not None and env_output is not None
    # "latest": an evaluation in progress never holds the trainer back; it takes the newest version when done.
    graph.links += [LinkSpec(trainer, weights_output, node_id, "weights", capacity=1, policy="latest", where=where),
                    LinkSpec(agent.src, agent.src_port, node_id, "model", where=where),
                    LinkSpec(env, env_output, node_id, "env_handle", where=where)]
    if env in graph.placement:  # an env handle never crosses a process boundary
        graph.placement[node_id] = graph.placement[env]
    return []


def _port_of(ports: dict[str, Any], type_name: str, registry: NodeRegistry) -> str | None:
    """The first of ``ports`` of port type ``type_name`` (aliases resolved), else ``None``."""
    return next((name for name, port in ports.items()
                 if port.type in registry.types and registry.types.get(port.type).name == type_name), None)


def _env_nodes(graph: Graph, classes: dict[str, type[Node]], agent: str, registry: NodeRegistry) -> list[str]:
    """The env nodes (nodes with an ``EnvHandle`` output that can be built again) upstream of ``agent``; the only
    env node of the graph when none is linked upstream of it."""
    from ..envs.env_node import EnvNode

    envs = [node_id for node_id, cls in classes.items() if issubclass(cls, EnvNode)]
    seen, frontier = set(), [agent]
    while frontier:
        node_id = frontier.pop()
        if node_id in seen:
            continue
        seen.add(node_id)
        frontier.extend(link.src for link in graph.links if link.dst == node_id)
    upstream = [node_id for node_id in envs if node_id in seen]
    return sorted(upstream or envs)
