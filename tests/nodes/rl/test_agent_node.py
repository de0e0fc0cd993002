"""PPOAgentNode and the acting contract: it acts only with weights received on its ``weights`` input, newest first,
and only on the observations their acting rule allows."""
from __future__ import annotations

from typing import Any

import pytest
import torch

from dnne.nodes.rl.actor_critic import ActorCritic
from dnne.nodes.types import ActingRule, ModelSpec, PolicyWeights
from dnne.runtime.testing import run_node_sync

PARAMS = {"input_size": 4, "output_size": 3, "hidden_sizes": [16], "activation": "tanh", "action_space": "discrete",
          "deterministic": True}


def network(seed: int) -> ActorCritic:
    """A network of the agent's architecture with its own seeded weights."""
    torch.manual_seed(seed)
    return ActorCritic(4, 3, (16,), "tanh", "discrete")


def observations(count: int) -> list[torch.Tensor]:
    """``count`` batches of 5 observations."""
    generator = torch.Generator().manual_seed(7)
    return [torch.randn(5, 4, generator=generator) for _ in range(count)]


def weights(model: ActorCritic, version: int, rule: ActingRule | None = None) -> PolicyWeights:
    """``model``'s weights as a learner publishes them."""
    return PolicyWeights(version, {k: v.clone() for k, v in model.state_dict().items()}, rule or ActingRule())


def act(inputs: dict[str, list[Any]], stamps: dict[str, list[int]] | None = None) -> dict[str, list[Any]]:
    """Run the agent alone on ``inputs``."""
    return run_node_sync("PPOAgentNode", inputs, PARAMS, stamps=stamps, timeout=20)


class TestWeightsPort:
    def test_acts_with_the_weights_it_receives(self) -> None:
        """With weights fed by hand, every output equals that network's own logits, values and log-probs, and
        not those of the agent's initial weights; other weights give other outputs."""
        batches = observations(4)
        for seed in (11, 12):
            source = network(seed)
            out = act({"observations": batches, "weights": [weights(source, 3)]})
            assert len(out["policy_output"]) == 4
            for obs, output in zip(batches, out["policy_output"]):
                expected = source.act(obs, deterministic=True)
                assert output.version == 3
                assert torch.allclose(output.action_params["logits"], expected.params["logits"])
                assert torch.allclose(output.value, expected.value)
                assert torch.equal(output.action, expected.action)
        initial = act({"observations": batches[:1], "weights": [weights(network(11), 0)]})["model"][0]
        assert isinstance(initial, ModelSpec)
        own = ActorCritic(**initial.architecture)
        own.load_state_dict(initial.weights)
        own_logits = own.act(batches[0], deterministic=True).params["logits"]
        assert not torch.allclose(own_logits, network(11).act(batches[0], deterministic=True).params["logits"])

    def test_no_weights_message_never_acts(self) -> None:
        """An agent whose weights input is linked but receives nothing never acts, and ends when its inputs end."""
        out = act({"observations": observations(3), "weights": []})
        assert out["policy_output"] == []

    def test_unlinked_weights_act_with_own(self) -> None:
        """Without a weights link (play), the agent acts with its own weights: the initial ones it sends on
        ``model``."""
        batches = observations(2)
        out = act({"observations": batches})
        (spec,) = out["model"]
        own = ActorCritic(**spec.architecture)
        own.load_state_dict(spec.weights)
        for obs, output in zip(batches, out["policy_output"]):
            assert torch.allclose(output.action_params["logits"], own.act(obs, deterministic=True).params["logits"])

    def test_value_statistics_arrive_with_the_weights(self) -> None:
        """Weights with value-normaliser statistics (a learner with normalize_value) make the agent report values
        in reward units, as the learner's own network does."""
        torch.manual_seed(3)
        learner = ActorCritic(4, 3, (16,), "tanh", "discrete", normalize_value=True)
        learner.value_normalizer.update(torch.tensor([10.0, 30.0, 50.0]))
        batches = observations(1)
        (output,) = act({"observations": batches, "weights": [weights(learner, 1)]})["policy_output"]
        assert torch.allclose(output.value, learner.act(batches[0]).value)


class TestActingRule:
    @pytest.mark.parametrize(("max_lag", "acted"), [(0, [0, 1]), (1, [0, 1, 2, 3])])
    def test_rule_gates_observations(self, max_lag: int, acted: list[int]) -> None:
        """Weights of version 0 with horizon 2 act on rollout 0 only in sync (max_lag 0) and on rollouts 0 and 1
        with max_lag 1; later observations wait (here: forever, the run ends with them unserved)."""
        rule = ActingRule(first_version=0, horizon=2, max_lag=max_lag)
        out = act({"observations": observations(6), "weights": [weights(network(1), 0, rule)]})
        assert [output.version for output in out["policy_output"]] == [0] * len(acted)
        assert len(out["policy_output"]) == len(acted)

    def test_required_version(self) -> None:
        """Observation k of a stream needs version first_version + k // horizon - max_lag."""
        rule = ActingRule(first_version=5, horizon=4, max_lag=1)
        assert [rule.required_version(k) for k in (0, 3, 4, 9)] == [4, 4, 5, 6]
        assert ActingRule().required_version(100) == 0 and rule.required_version(None) == 0
        assert PolicyWeights(6, {}, rule).may_act(9) and not PolicyWeights(5, {}, rule).may_act(9)
