"""Env steps per second of the Cartpole PPO graph against the same code driven by a plain Python loop.

Run: ``python benchmarks/runtime_overhead.py`` (about three minutes; ``--scale 0.25`` for a quick look).

The graph is ``graphs/presets/cartpole_zoo.json`` (rl-baselines3-zoo's settings, so the update is the same work
as before the main job was retuned for wall time) loaded with ``load_graph(path, overrides=[...])``: ``env.num_envs=N``,
``run.target_return=null`` and a fixed ``run.max_steps``, run with ``dnne.runtime.runner.run`` on uvloop (as the CLI
does; ``--loop asyncio`` for asyncio's loop). The plain loop uses the same classes the nodes use (``Cartpole`` via
``make_env``, ``ActorCritic.act``, ``RolloutBuffer``, ``PPOUpdate``, ``LRSchedule``, ``EpisodeStats``) with the
graph file's hyperparameters (read from the loaded graph, node defaults filled in by ``resolve_params``) and the
trainer node's bootstrapping: the value of the final observation for truncated episodes, the value of the next
observation at the horizon end. Both sides draw from the same seeds (the env's, the network init's, the agent's and
the trainer's generators, derived from the run seed and the node ids), so they compute the same trajectory; the script checks that they end with the same episode count and mean return.

The budget of each env count is a whole number of PPO iterations (``max_steps = k * horizon * N``): the stop comes
with the last transition of the ``k``-th rollout, so both sides do exactly ``k`` updates (one step more would let
the graph's graceful stop wait for the end of update ``k + 1``). Timed, in wall time and in CPU time of the process (the graph's update thread included; CPU time is what the
target is judged on, because it does not grow when other processes share the cores): the whole ``run()`` (setup,
every node, teardown) against
the whole loop (env and network construction included), after one tiny warm-up run of each (the first
use of torch's autograd and kernels costs a little). torch runs one thread. Overhead per vector step is
``(t_graph - t_loop) / vector_steps`` in CPU time (medians of each side). The overhead is the median over the
``--repeats`` pairs (graph then loop, back to back) of each pair's CPU-time ratio, minus 1. Targets: at most 8 % at
1 env, at most 2 % at 64 envs.

``--nodes`` adds a third run to each pair: the graph's own nodes, built and set up as a run builds them, called in
the order a vector step fires them by a plain loop (``run_nodes``), with no runtime between them. Its ratio to the
loop is what the graph would cost if the runtime's own share were nothing.

``--bound`` adds another: the same nodes with only the bookkeeping that any executor keeping the graph's semantics
does (``run_bound``: messages made and counted, stamps, sources and firing counts set, config inputs looked at, busy
time read off the clock), hand-written for this graph's firing order. Its ratio to the loop is a floor under any
executor of this graph with these nodes.
"""
from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

import torch
from common import REPO, loop_factories, machine, markdown_table, median, run_on

from dnne.nodes.flat_adam import FlatAdam
from dnne.nodes.envs.episodes import EpisodeStats
from dnne.nodes.envs.registry import make_env
from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.rl.agent_node import PPOAgentNode
from dnne.nodes.rl.ppo import PPOConfig, PPOUpdate
from dnne.nodes.rl.rollout import RolloutBuffer
from dnne.nodes.rl.schedules import make_schedule
from dnne.nodes.rl.trainer_node import PPOTrainerNode
from dnne.nodes.types import EnvHandle, PolicyOutput
from dnne.runtime.channel import Channel, Message
from dnne.runtime.context import derive_seed
from dnne.runtime.counters import Counters
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.node import Node, resolve_params
from dnne.runtime.runner import GraphRun, run
from dnne.runtime.threads import use_threads
from dnne.runtime.types import Token

GRAPH = REPO / "graphs" / "presets" / "cartpole_zoo.json"
TARGETS = {1: 0.08, 64: 0.02}
# PPO iterations per env count at --scale 1: about 2-3 s of CPU a side at 1 env and 0.5 s at 64 envs on the reference
# machine (2026-12-06; 25-40 s before the closed-form PPO step).
ITERATIONS = {1: 250, 64: 12, 1024: 3}


def load(num_envs: int, max_steps: int, fuse: bool) -> Graph:
    """The Cartpole graph at ``num_envs`` envs, stopping at ``max_steps`` only, its chains fused as one task or not
    (``run.fuse_chains``)."""
    return load_graph(GRAPH, overrides=[f"env.num_envs={num_envs}", "run.target_return=null",
                                        f"run.max_steps={max_steps}", "run.timeout=null",
                                        f"run.fuse_chains={'true' if fuse else 'false'}"])


def run_graph(graph: Graph, loop_factory: Any) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of ``run(graph)`` (the update thread's CPU included) and its final counters."""
    async def timed() -> tuple[float, float, Any]:
        wall, cpu = time.perf_counter(), time.process_time()
        result = await run(graph)
        return time.perf_counter() - wall, time.process_time() - cpu, result

    wall, cpu, result = run_on(loop_factory, timed())
    if result.stop_reason != "max_steps":
        raise RuntimeError(f"graph stopped with {result.stop_reason}: {result.summary().get('error')}")
    return wall, cpu, result.counters


def run_loop(graph: Graph) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of the plain-loop equivalent of ``graph`` and its final counters."""
    wall, cpu = time.perf_counter(), time.process_time()
    seed = int(graph.run["seed"])
    max_steps = int(graph.run["max_steps"])
    env_spec, agent_spec, trainer_spec = (graph.nodes[k] for k in ("env", "agent", "trainer"))
    env_params = env_spec.params
    agent = resolve_params(PPOAgentNode, agent_spec.params)
    trainer = resolve_params(PPOTrainerNode, trainer_spec.params)
    assert trainer["mode"] == "sync" and agent["action_space"] == "discrete", "the loop mirrors sync discrete PPO"

    # EnvNode.setup
    env = make_env(env_params["backend"], env_params["task"], env_params["num_envs"], "cpu")
    observations = env.reset(seed=derive_seed(seed, "env") % 2**31)
    num_envs = env.num_envs
    # PPOAgentNode.setup
    normalize = agent["normalize_input"] if agent["normalize_input"] is not None else agent["action_space"] == "continuous"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(seed, "agent"))
        model = ActorCritic(env.observation_space.dim, env.action_space.n, agent["hidden_sizes"],
                            agent["activation"], agent["action_space"], agent["init_log_std"], normalize_input=normalize)
    act_generator = torch.Generator().manual_seed(derive_seed(seed, "agent"))
    # PPOTrainerNode._start_learning
    lr = trainer["learning_rate"] if trainer["learning_rate"] is not None else agent["learning_rate"]
    optimizer = FlatAdam(model.parameters(), lr=lr, eps=1e-5, foreach=True)
    config = PPOConfig(trainer["epochs"], trainer["minibatch_size"], trainer["clip_param"], trainer["value_coef"],
                       trainer["entropy_coef"], trainer["max_grad_norm"], trainer["clip_value_loss"],
                       trainer["normalize_advantage"], trainer["target_kl"], trainer["gamma"], trainer["lam"])
    updater = PPOUpdate(model, optimizer, config, torch.Generator().manual_seed(derive_seed(seed, "trainer")))
    schedule = make_schedule(trainer["lr_schedule"], lr, None, trainer["kl_threshold"])
    horizon, reward_scale = trainer["horizon_length"], trainer["reward_scale"]
    # StepNode's counters
    counters = Counters()
    ctx = SimpleNamespace(counters=counters, mode="train")
    episodes = EpisodeStats()
    buffer: RolloutBuffer | None = None
    env_steps = 0

    while env_steps < max_steps:
        # PPOAgentNode.act
        obs = observations.to(torch.float32)
        model.update_obs_stats(obs)
        acted = model.act(obs, generator=act_generator)
        policy = PolicyOutput(acted.action, acted.value, acted.log_prob, acted.params, acted.observation, 0)
        # ActionNode: a discrete action passes through; StepNode.compute
        result = env.step(policy.action)
        env_steps += num_envs
        counters.add("env_steps", num_envs)
        episodes.record(ctx, result.episode_returns, result.episode_lengths)  # type: ignore[arg-type]
        observations = result.observations
        # PPOTrainerNode.compute
        if buffer is None:
            buffer = RolloutBuffer(horizon, num_envs, tuple(policy.observation.shape[1:]),
                                   tuple(policy.action.shape[1:]), policy.action.dtype)
        next_value = torch.zeros_like(policy.value)
        truncated = result.truncated & ~result.terminated
        if truncated.any():
            final = result.final_observations[truncated].to(torch.float32)
            next_value[truncated] = model.value(model.normalize_obs(final))
        buffer.add(policy.observation, policy.action, policy.log_prob, policy.value,
                   result.rewards.to(torch.float32) * reward_scale, result.terminated, result.truncated, next_value)
        if not buffer.full:
            continue
        # PPOTrainerNode._finish_rollout, the update, _after_update
        cut = buffer.dones & ~buffer.terminated
        last = observations.to(torch.float32)
        following = torch.cat([buffer.values[1:], model.value(model.normalize_obs(last))[None]])
        buffer.next_values.copy_(torch.where(cut, buffer.next_values, following))
        stats = updater.run(buffer)
        buffer.reset()
        counters.add("iterations")
        progress = min(env_steps / max_steps, 1.0) if trainer["lr_schedule"] == "linear" else None
        kl = stats["approx_kl"]
        lr = schedule.step(kl=kl if kl == kl and abs(kl) != float("inf") else 0.0, progress=progress)
        for group in optimizer.param_groups:
            group["lr"] = lr
    env.close()
    return time.perf_counter() - wall, time.process_time() - cpu, counters.values


async def set_up(graph: Graph) -> GraphRun:
    """``graph``'s nodes built and set up by ``GraphRun`` as a run builds them, the agent and trainer started and the
    agent holding the first weights: what ``run_nodes`` and ``run_bound`` drive."""
    graph_run = GraphRun(graph)
    graph_run.build()
    for node_id in graph_run.order:
        await graph_run.nodes[node_id].setup()
    agent, trainer = graph_run.nodes["agent"], graph_run.nodes["trainer"]
    await agent.start()
    await trainer.start()
    assert agent.io is not None
    agent.take_weights(agent.io.newest("weights"))
    return graph_run


async def tear_down(graph_run: GraphRun) -> dict[str, float]:
    """Tear the nodes of ``set_up`` down, in reverse order; the run's counters."""
    for node_id in reversed(graph_run.order):
        await graph_run.nodes[node_id].teardown()
    return graph_run.counters.values


async def run_nodes(graph: Graph) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of the graph's own nodes driven without the runtime (``--nodes``): built and set up by
    ``GraphRun`` as a run builds them, then called in the order a vector step fires them (the agent's ``act``, the
    action, step and trainer nodes' ``compute``), each output handed straight to the next; the trainer's trigger and
    weights are taken from their channels. What the runtime would cost if its own share were nothing."""
    wall, cpu = time.perf_counter(), time.process_time()
    graph_run = await set_up(graph)
    env, agent, action, step, trainer = (graph_run.nodes[k] for k in ("env", "agent", "action", "step", "trainer"))
    assert agent.io is not None and trainer.io is not None and step.io is not None
    model = trainer.io.slots["model"].value
    handle = EnvHandle(env.env, {"node": "env", "make": env.recipe})
    triggers = step.io.slots["trigger"].links[0].channel
    token = Token("start")
    observations, max_steps, env_steps = env.first_observations, int(graph.run["max_steps"]), 0
    while env_steps < max_steps:
        agent.firings += 1
        policy = agent.act(observations)
        actions = (await action.compute(policy.action, handle))["action"]
        result = await step.compute(handle, actions, token)
        env_steps += env.env.num_envs
        trainer.stamp = env_steps // env.env.num_envs
        await trainer.compute(result["observations"], policy, result["rewards"], result["dones"], model)
        while len(triggers):
            triggers.get_nowait()
        agent.take_weights(agent.io.newest("weights"))
        observations = result["observations"]
    counters = await tear_down(graph_run)
    return time.perf_counter() - wall, time.process_time() - cpu, counters


async def run_bound(graph: Graph) -> tuple[float, float, dict[str, float]]:
    """Wall and CPU seconds of the graph's nodes driven with only the bookkeeping that any executor keeping the
    graph's semantics does (``--bound``): the nodes as in ``run_nodes``, the OR node's firing included; for every
    output sent a ``Message`` with its stamp and source, counted on each of its channels; for every firing its stamp,
    source and count set as the runtime sets them, its config inputs' channels looked at, its inputs passed by port
    name and its busy time read off the clock. Hand-written for this graph's firing order, with no join, fusing check
    or backpressure: a floor under any executor of the graph, not a design for one."""
    wall, cpu = time.perf_counter(), time.process_time()
    graph_run = await set_up(graph)
    nodes = graph_run.nodes
    env, merge, agent, action, step, trainer = (nodes[k] for k in ("env", "or", "agent", "action", "step", "trainer"))

    def into(node: Node, port: str) -> Channel:
        """The channel into ``node.port`` (each of these inputs has one link)."""
        assert node.io is not None
        return node.io.slots[port].links[0].channel

    looped, observed, triggers, weights = (into(merge, "input_b"), into(agent, "observations"),
                                           into(step, "trigger"), into(agent, "weights"))
    policies, to_step = (into(action, "policy"), into(trainer, "policy_outputs")), (into(step, "actions"),)
    stepped = {"observations": (looped, into(trainer, "states")), "rewards": (into(trainer, "rewards"),),
               "dones": (into(trainer, "dones"),)}
    agent_io, trainer_io = agent.io, trainer.io
    assert agent_io is not None and trainer_io is not None
    configs = {node.id: [link.channel for slot in node.io.configs for link in slot.links]  # type: ignore[union-attr]
               for node in (merge, action, step, trainer)}
    model = trainer_io.slots["model"].value
    handle = EnvHandle(env.env, {"node": "env", "make": env.recipe})
    busy = dict.fromkeys(nodes, 0.0)

    def send(value: Any, stamp: int, source: str | None, channels: tuple[Channel, ...]) -> Any:
        """One output's message, counted on each channel it goes to; the value its consumers take."""
        message = Message(value, stamp, source)
        for channel in channels:
            channel.stats.messages += 1
        return message.value

    async def fire(node: Node, values: dict[str, Any], stamp: int, source: str | None) -> Any:
        """One firing of ``node`` on ``values``, as the runtime makes it; its outputs."""
        for channel in configs[node.id]:
            if channel.messages:
                raise RuntimeError(f"{node.id}: a config input changed, which this driver does not follow")
        node.stamp, node.source = stamp, source
        node.firings += 1
        started = time.perf_counter()
        outputs = await node.compute(**values)
        busy[node.id] += time.perf_counter() - started
        return outputs

    # The agent's input is a fan-in: it names the OR node's unsourced messages after it, and what follows carries
    # that source. The env's first observations are unsourced.
    named = "or"
    token, observations, port, source = Token("start"), env.first_observations, "input_a", None
    into_merge = (into(merge, port),)
    max_steps, env_steps, stamp = int(graph.run["max_steps"]), 0, 0
    while env_steps < max_steps:
        merged = await fire(merge, {port: send(observations, stamp, source, into_merge)}, stamp, source)
        agent.firings += 1  # the agent fires through its own loop, which sets no stamp or source on it
        started = time.perf_counter()
        if weights.messages:
            agent.take_weights(agent_io.newest("weights"))
        policy = send(agent.act(send(merged["output"], stamp, source, (observed,)), named), stamp, named, policies)
        busy["agent"] += time.perf_counter() - started
        actions = (await fire(action, {"policy": policy.action, "env_handle": handle}, stamp, named))["action"]
        result = await fire(step, {"env_handle": handle, "actions": send(actions, stamp, named, to_step),
                                   "trigger": token}, stamp, named)
        env_steps += env.env.num_envs
        sent = {output: send(result[output], stamp + 1, named, channels) for output, channels in stepped.items()}
        released = await fire(trainer, {"states": sent["observations"], "policy_outputs": policy,
                                        "rewards": sent["rewards"], "dones": sent["dones"], "model": model},
                              stamp, named)
        if released:
            token = send(released["training_complete"], stamp + 1, named, (triggers,))
        while triggers.messages:  # after an update the trainer sends its trigger itself
            token = triggers.get_nowait().value
        stamp += 1
        observations, port, source, into_merge = sent["observations"], "input_b", named, (looped,)
    counters = await tear_down(graph_run)
    return time.perf_counter() - wall, time.process_time() - cpu, counters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envs", type=int, nargs="+", default=list(ITERATIONS), help="env counts to measure")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the iterations of every env count")
    parser.add_argument("--repeats", type=int, default=1, help="measurements per side (the median is reported)")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="event loop of the graph")
    parser.add_argument("--unfused", action="store_true", help="run.fuse_chains=false: every node in its own task")
    parser.add_argument("--nodes", action="store_true",
                        help="also time the graph's nodes driven without the runtime (run_nodes) in each pair")
    parser.add_argument("--bound", action="store_true",
                        help="also time the nodes with only the bookkeeping every executor keeps (run_bound), each pair")
    args = parser.parse_args()
    use_threads(1)  # as a run does: torch and numpy's BLAS
    factories = loop_factories()
    loop_factory = factories.get(args.loop, None)
    loop_name = args.loop if args.loop in factories else "asyncio"
    print(f"machine: {machine()}")
    print(f"graph: {GRAPH.relative_to(REPO)} on {loop_name}, torch threads 1, median of {args.repeats}\n")

    # Warm-up: pay any first-use cost (lazy imports, kernel set-up) before timing either side.
    warm = load(1, 33, not args.unfused)
    run_graph(warm, loop_factory)
    run_loop(warm)
    drivers: dict[str, Callable[[Graph], Awaitable[tuple[float, float, dict[str, float]]]]] = {}
    if args.nodes:
        drivers["the nodes alone (no runtime)"] = run_nodes
    if args.bound:
        drivers["the nodes and the bookkeeping of any executor"] = run_bound
    for driver in drivers.values():
        run_on(loop_factory, driver(warm))

    rows = []
    for num_envs in args.envs:
        probe = load(num_envs, 1, not args.unfused)
        horizon = resolve_params(PPOTrainerNode, probe.nodes["trainer"].params)["horizon_length"]
        iterations = max(1, round(ITERATIONS.get(num_envs, 4) * args.scale))
        max_steps = iterations * horizon * num_envs
        graph = load(num_envs, max_steps, not args.unfused)
        graph_wall, graph_cpu, loop_wall, loop_cpu = [], [], [], []
        driven_cpu: dict[str, list[float]] = {name: [] for name in drivers}
        for _ in range(args.repeats):
            gc.collect()
            wall, cpu, graph_counters = run_graph(graph, loop_factory)
            graph_wall.append(wall)
            graph_cpu.append(cpu)
            gc.collect()
            wall, cpu, loop_counters = run_loop(graph)
            loop_wall.append(wall)
            loop_cpu.append(cpu)
            for name, driver in drivers.items():
                gc.collect()
                _, cpu, driven_counters = run_on(loop_factory, driver(graph))
                if driven_counters.get("mean_return") != loop_counters.get("mean_return"):
                    raise RuntimeError(f"{num_envs} envs: {name} followed another trajectory")
                driven_cpu[name].append(cpu)
        if int(graph_counters.get("iterations", 0)) != iterations or int(loop_counters["iterations"]) != iterations:
            raise RuntimeError(f"{num_envs} envs: expected {iterations} updates, graph did "
                               f"{graph_counters.get('iterations')}, loop {loop_counters['iterations']}")
        same = (graph_counters.get("episodes") == loop_counters.get("episodes")
                and graph_counters.get("mean_return") == loop_counters.get("mean_return"))
        env_steps = int(graph_counters["env_steps"])
        vector_steps = env_steps // num_envs
        w_graph, w_loop = median(graph_wall), median(loop_wall)
        c_graph, c_loop = median(graph_cpu), median(loop_cpu)
        # the median of the side-by-side pairs' ratios: this machine's speed drifts between pairs more than the
        # runtime's share, so a ratio of two medians would mix different moments
        pairs = [g / lp for g, lp in zip(graph_cpu, loop_cpu)]
        overhead = median(pairs) - 1.0
        target = TARGETS.get(num_envs)
        verdict = "" if target is None else ("ok" if overhead <= target else "MISSED")
        rows.append((num_envs, f"{env_steps:,}", iterations,
                     f"{env_steps / w_graph:,.0f}", f"{env_steps / w_loop:,.0f}", f"{(w_graph / w_loop - 1) * 100:+.1f} %",
                     f"{env_steps / c_graph:,.0f}", f"{env_steps / c_loop:,.0f}", f"{overhead * 100:+.1f} %",
                     f"{(c_graph - c_loop) / vector_steps * 1e6:,.0f}", "yes" if same else "NO", verdict))
        print(f"{num_envs} envs: graph {w_graph:.2f}s wall {c_graph:.2f}s CPU, loop {w_loop:.2f}s wall {c_loop:.2f}s CPU "
              f"(mean_return graph {graph_counters.get('mean_return')}, loop {loop_counters.get('mean_return')}); "
              f"CPU ratio per pair {', '.join(f'{r:.3f}' for r in pairs)}",
              flush=True)
        for name, cpus in driven_cpu.items():
            ratios = [n / lp for n, lp in zip(cpus, loop_cpu)]
            print(f"{num_envs} envs: {name} / loop, CPU, per pair "
                  f"{', '.join(f'{r:.3f}' for r in ratios)}: {(median(ratios) - 1) * 100:+.1f} %", flush=True)
    print()
    print(markdown_table(("envs", "env steps", "updates", "graph steps/s (wall)", "loop steps/s (wall)",
                          "overhead (wall)", "graph steps/s (CPU)", "loop steps/s (CPU)", "overhead (CPU)",
                          "us CPU / vector step", "same trajectory", "target (CPU): 1 env <= 8 %, 64 envs <= 2 %"), rows))


if __name__ == "__main__":
    main()
