"""Flow nodes: ORNode forwards whatever arrives; MetricsNode records the chosen fields; DonesToTensor converts."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from dnne.runtime import load_graph
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.runner import GraphRun
from dnne.runtime.testing import run_node_sync

ROOT = Path(__file__).resolve().parents[3]


class TestORNode:
    def test_forwards_every_message_once(self) -> None:
        """Every message of every input comes out once, each input's order kept."""
        out = run_node_sync("ORNode", {"input_a": [1, 2, 3], "input_b": [10, 20], "input_c": [100]})["output"]
        assert sorted(out) == [1, 2, 3, 10, 20, 100]
        assert [v for v in out if v < 10] == [1, 2, 3] and [v for v in out if 10 <= v < 100] == [10, 20]


class TestMetricsNode:
    def test_records_chosen_fields_of_loss_info(self, tmp_path: Path) -> None:
        """A MetricsNode on the trainer's loss_info writes only the chosen, prefixed fields to metrics.jsonl."""
        document = json.loads((ROOT / "graphs" / "cartpole_ppo.json").read_text())
        document["nodes"]["metrics"] = {"type": "MetricsNode", "params": {"keys": "approx_kl,clip_fraction",
                                                                          "prefix": "ppo/", "every": 2}}
        document["links"].append(["trainer.loss_info", "metrics.values"])
        document["run"].update(target_return=None, max_iterations=6)
        graph_run = GraphRun(load_graph(document), run_dir=tmp_path, hooks=[RunDirectory(tmp_path)])
        assert asyncio.run(graph_run.execute()).error is None
        rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        mine = [row for row in rows if row["node"] == "metrics"]
        assert len(mine) == 3
        assert all(set(row) >= {"ppo/approx_kl", "ppo/clip_fraction", "env_steps", "wall_time_s"} for row in mine)
        assert not any("ppo/policy_loss" in row for row in mine)


class TestDonesToTensor:
    def test_terminated_or_truncated(self) -> None:
        """Each Dones becomes the bool tensor terminated | truncated, in order."""
        import torch

        from dnne.nodes.types import Dones

        first = Dones(torch.tensor([True, False, False]), torch.tensor([False, True, False]), torch.zeros(3, 1))
        second = Dones(torch.tensor([False, False, False]), torch.tensor([False, False, True]), torch.zeros(3, 1))
        out = run_node_sync("DonesToTensor", {"dones": [first, second]})["ended"]
        assert [t.tolist() for t in out] == [[True, True, False], [False, False, True]]
