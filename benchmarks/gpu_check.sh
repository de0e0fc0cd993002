#!/usr/bin/env bash
# CUDA checks and GPU throughput, for a machine with an NVIDIA GPU and a CUDA build of torch.
#
# Run from anywhere: `bash benchmarks/gpu_check.sh` (a few minutes; ENVS=4096 by default). Without CUDA it stops
# at once with a message and exit code 2; CPU CI never runs it.
#
#   1. every built-in env on cuda with $ENVS envs: tensors on the GPU, finite, the same trajectory as on CPU for
#      the first steps (same seed, same actions), and a cuda env's checkpoint resumed on the CPU continues the same;
#   2. training on `--device cuda` with $ENVS envs: graphs/cartpole_ppo.json and graphs/pendulum_ppo.json run
#      a few updates each, end without error, and their summary names no CPU fallback;
#   3. throughput: env steps/s of the built-in Cartpole on cuda at 4096 ... 1M envs (random actions, synchronised),
#      and the training env steps/s of step 2;
#   4. a learner on cuda in its own worker process, the acting on CPU in the main process (weights cross as
#      messages and move to each part's device): graphs/cartpole_ppo.json split so, in sync and in async mode,
#      solves Cartpole (475) with no CPU fallback.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ENVS=${ENVS:-4096}

if ! "$PYTHON" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    version=$("$PYTHON" -c "import torch; print(torch.__version__, 'CUDA build' if torch.version.cuda else 'CPU-only build')" 2>/dev/null || echo "not importable")
    echo "gpu_check: no CUDA device: torch.cuda.is_available() is False (torch $version)." >&2
    echo "gpu_check: run this on a machine with an NVIDIA GPU and a CUDA build of torch." >&2
    exit 2
fi
"$PYTHON" -c "import torch; print('device:', torch.cuda.get_device_name(0), '| torch', torch.__version__, '| CUDA', torch.version.cuda)"

echo "== 1. built-in envs on cuda, $ENVS envs"
"$PYTHON" - "$ENVS" <<'EOF'
import sys
import torch
from dnne.nodes.envs.registry import TORCH_TASKS
from dnne.nodes.envs.spaces import Discrete

num_envs = int(sys.argv[1])


def random_actions(space, generator: torch.Generator) -> torch.Tensor:
    """A batch of random actions of ``space`` on the CPU (a box's within [-1, 1])."""
    if isinstance(space, Discrete):
        return torch.randint(space.n, (num_envs,), generator=generator)
    low, high = space.low.clamp(min=-1.0), space.high.clamp(max=1.0)
    return low + (high - low) * torch.rand((num_envs, low.numel()), generator=generator)


for name, cls in TORCH_TASKS.items():
    envs = {device: cls(num_envs, device=device) for device in ("cpu", "cuda")}
    observations = {device: env.reset(seed=0) for device, env in envs.items()}
    assert observations["cuda"].device.type == "cuda", f"{name}: observations on {observations['cuda'].device}"
    space = envs["cpu"].action_space
    generator = torch.Generator().manual_seed(0)
    worst = 0.0
    for step in range(50):
        actions = random_actions(space, generator)
        results = {device: env.step(actions.to(device)) for device, env in envs.items()}
        gpu = results["cuda"].observations
        assert gpu.device.type == "cuda" and torch.isfinite(gpu).all(), f"{name}: step {step} observations"
        if step < 10:  # float32 on two devices drifts apart over long horizons; the first steps must agree
            worst = max(worst, (gpu.cpu() - results["cpu"].observations).abs().max().item())
    assert worst < 1e-3, f"{name}: cuda and cpu trajectories differ by {worst}"
    resumed = cls(num_envs, device="cpu")  # a cuda env's checkpoint resumes on the cpu
    resumed.load_state_dict(envs["cuda"].state_dict())
    envs["cpu"] = resumed
    drift = 0.0
    for step in range(10):
        actions = random_actions(space, generator)
        results = {device: env.step(actions.to(device)) for device, env in envs.items()}
        drift = max(drift, (results["cuda"].observations.cpu() - results["cpu"].observations).abs().max().item())
    assert drift < 1e-3, f"{name}: a cuda checkpoint resumed on cpu differs by {drift}"
    print(f"  {name}: ok ({num_envs} envs, 50 steps on cuda, first 10 steps within {worst:.1e} of cpu; "
          f"resumed on cpu within {drift:.1e})")
EOF

echo "== 2. training on --device cuda, $ENVS envs"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for task in cartpole pendulum; do
    steps=$((ENVS * 32 * 5))
    "$PYTHON" -m dnne.runtime.cli run "graphs/${task}_ppo.json" --device cuda --set "env.num_envs=$ENVS" \
        --set run.target_return=null --max-steps "$steps" --run-dir "$tmp/$task" -q
    "$PYTHON" - "$tmp/$task/summary.json" "$task" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
assert summary["error"] is None, summary["error"]
fallback = [w for w in summary.get("warnings", []) if "cpu" in w.lower() and "cuda" in w.lower()]
assert not fallback, f"fell back to CPU: {fallback}"
rate = summary["env_steps"] / summary["wall_time_s"]
print(f"  {sys.argv[2]}: ok, {summary['env_steps']:,} env steps in {summary['wall_time_s']:.1f}s "
      f"({rate:,.0f} env steps/s in training), mean return {summary.get('mean_return')}")
EOF
done

echo "== 3. GPU throughput: built-in Cartpole, random actions"
"$PYTHON" - <<'EOF'
import time
import torch
from dnne.nodes.envs.cartpole import Cartpole

print("| envs | env steps/s |")
print("|---:|---:|")
for num_envs in (4096, 65536, 1 << 20):
    env = Cartpole(num_envs, device="cuda")
    env.reset(seed=0)
    generator = torch.Generator(device="cuda").manual_seed(0)
    def step() -> None:
        env.step(torch.randint(2, (num_envs,), device="cuda", generator=generator))
    for _ in range(10):
        step()
    torch.cuda.synchronize()
    calls, started = 0, time.perf_counter()
    while time.perf_counter() - started < 2.0:
        step()
        calls += 1
    torch.cuda.synchronize()
    print(f"| {num_envs:,} | {calls * num_envs / (time.perf_counter() - started):,.0f} |")
EOF
echo "== 4. learner on cuda in its own process, acting on cpu"
for mode in sync async; do
    "$PYTHON" - "$tmp/split_$mode.json" "$mode" <<'EOF'
import json, sys
graph = json.load(open("graphs/cartpole_ppo.json"))
graph["nodes"]["trainer"]["params"].update(device="cuda", mode=sys.argv[2])
graph["placement"], graph["workers"] = {"trainer": "learner"}, {"learner": {}}
json.dump(graph, open(sys.argv[1], "w"))
EOF
    "$PYTHON" -m dnne.runtime.cli run "$tmp/split_$mode.json" --run-dir "$tmp/split_$mode" -q
    "$PYTHON" - "$tmp/split_$mode/summary.json" "$mode" <<'EOF'
import json, sys
summary = json.load(open(sys.argv[1]))
assert summary["error"] is None, summary["error"]
fallback = [w for w in summary.get("warnings", []) if "cpu" in w.lower() and "cuda" in w.lower()]
assert not fallback, f"fell back to CPU: {fallback}"
assert summary["solved"], f"not solved: {summary['stop_reason']}, mean return {summary.get('mean_return')}"
print(f"  {sys.argv[2]}: ok, solved at {summary['env_steps']:,} env steps in {summary['wall_time_s']:.1f}s")
EOF
done
echo "gpu_check: all checks passed"
