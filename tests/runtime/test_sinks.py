"""Metric sinks: every sink records the same rows, each read back with its own library's reader."""
from __future__ import annotations

import asyncio
import csv
import json
import subprocess
from pathlib import Path

import pytest

from dnne.runtime import GraphRun, load_graph
from dnne.runtime.rundir import RunDirectory
from dnne.runtime.sinks import provenance

ROOT = Path(__file__).resolve().parents[2]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"


@pytest.fixture(scope="module")
def tracked(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A short Cartpole run writing to every sink: JSON lines, TensorBoard, CSV, W&B (offline) and MLflow."""
    base = tmp_path_factory.mktemp("tracked")
    run_dir = base / "run"
    tracking_uri = (base / "mlruns").as_uri()
    patch = pytest.MonkeyPatch()
    patch.setenv("WANDB_MODE", "offline")
    patch.setenv("WANDB_SILENT", "true")
    patch.setenv("MLFLOW_TRACKING_URI", tracking_uri)
    patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # the file store: no database server in tests
    try:
        graph = load_graph(CARTPOLE, overrides=["run.target_return=null", "run.max_iterations=4"])
        directory = RunDirectory(run_dir, sinks=["csv", "wandb", "mlflow"], argv=["dnne", "run", "cartpole"])
        result = asyncio.run(GraphRun(graph, run_dir=run_dir, hooks=[directory]).execute())
    finally:
        patch.undo()
    assert result.error is None
    return run_dir, tracking_uri


def jsonl_rows(run_dir: Path) -> list[dict]:
    """The rows of metrics.jsonl."""
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


class TestSinks:
    @pytest.mark.nodes
    def test_csv_is_one_table_equal_to_jsonl(self, tracked: tuple[Path, str]) -> None:
        """metrics.csv holds every JSON-lines row under one header, with the same values."""
        run_dir, _ = tracked
        rows = jsonl_rows(run_dir)
        with open(run_dir / "metrics.csv", newline="") as file:
            table = list(csv.DictReader(file))
        assert len(table) == len(rows) == 4
        for row, line in zip(rows, table):
            for key, value in row.items():
                assert line[key] == str(value)
        assert {"policy_loss", "env_steps", "iterations", "wall_time_s"} <= set(table[0])

    @pytest.mark.nodes
    def test_tensorboard_groups_come_from_nodes(self, tracked: tuple[Path, str]) -> None:
        """TensorBoard scalars are grouped as the run's counters and each node's own values; every number of every
        row of metrics.jsonl is there once, at the row's env step, with the row's value (as float32)."""
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        run_dir, _ = tracked
        accumulator = EventAccumulator(str(run_dir / "tensorboard"))
        accumulator.Reload()
        tags = set(accumulator.Tags()["scalars"])
        assert {"trainer/policy_loss", "counters/iterations", "counters/mean_return", "run/wall_time_s"} <= tags
        rows = jsonl_rows(run_dir)
        columns = {key for row in rows for key, value in row.items()
                   if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "env_steps"}
        assert {tag.split("/", 1)[1] for tag in tags} == columns
        for tag in tags:
            column = tag.split("/", 1)[1]
            events = accumulator.Scalars(tag)
            assert [event.step for event in events] == [row["env_steps"] for row in rows if column in row]
            assert [event.value for event in events] == pytest.approx(
                [row[column] for row in rows if column in row], rel=1e-6)

    @pytest.mark.nodes
    def test_wandb_offline_run(self, tracked: tuple[Path, str]) -> None:
        """The W&B sink writes one offline run (for ``wandb sync``) holding every row's loss and env step."""
        run_dir, _ = tracked
        offline = list((run_dir / "wandb").glob("offline-run-*"))
        assert len(offline) == 1
        (log,) = offline[0].glob("run-*.wandb")
        records = log.read_bytes()  # W&B's protobuf records carry each value as its JSON text
        for row in jsonl_rows(run_dir):
            assert json.dumps(row["policy_loss"]).encode() in records
            assert b"_step" in records and str(row["env_steps"]).encode() in records

    @pytest.mark.nodes
    def test_mlflow_file_store(self, tracked: tuple[Path, str]) -> None:
        """The MLflow sink logs each row at its env step; MLflow's client reads the same history back."""
        from mlflow.tracking import MlflowClient

        run_dir, tracking_uri = tracked
        client = MlflowClient(tracking_uri=tracking_uri)
        experiment = client.get_experiment_by_name("dnne")
        (run,) = client.search_runs([experiment.experiment_id])
        assert run.info.status == "FINISHED" and run.info.run_name == run_dir.name
        history = client.get_metric_history(run.info.run_id, "policy_loss")
        rows = jsonl_rows(run_dir)
        assert [m.step for m in history] == [r["env_steps"] for r in rows]
        assert [m.value for m in history] == pytest.approx([r["policy_loss"] for r in rows])

    @pytest.mark.nodes
    def test_run_json_records_origin(self, tracked: tuple[Path, str]) -> None:
        """run.json records the command line and the versions of torch and the runtime."""
        import torch

        origin = json.loads((tracked[0] / "run.json").read_text())
        assert origin["argv"] == ["dnne", "run", "cartpole"]
        assert origin["packages"]["torch"] == torch.__version__
        assert "dnne-runtime" in origin["packages"]


class TestProvenance:
    def test_git_revision_of_a_work_tree(self, tmp_path: Path) -> None:
        """In a git work tree the revision is its HEAD (dirty when a tracked file changed); elsewhere None."""
        assert provenance.git_revision(tmp_path) is None
        git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], cwd=tmp_path, check=True)
        (tmp_path / "a.txt").write_text("1")
        subprocess.run([*git, "add", "a.txt"], cwd=tmp_path, check=True)
        subprocess.run([*git, "commit", "-q", "-m", "a"], cwd=tmp_path, check=True)
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout
        assert provenance.git_revision(tmp_path) == {"commit": head.strip(), "dirty": False}
        (tmp_path / "a.txt").write_text("2")
        assert provenance.git_revision(tmp_path)["dirty"] is True
