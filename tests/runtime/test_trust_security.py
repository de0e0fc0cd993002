"""Nothing in a graph file runs code or drives the terminal: module ids, escaped ids, DOT/Mermaid output."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dnne.runtime.cli.draw import to_dot, to_mermaid
from dnne.runtime.errors import GraphError, Issue, NodeFailure, printable
from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph

DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
ROOT = Path(__file__).resolve().parents[2]


def dnne(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the CLI in a subprocess."""
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=120, env=env)


@pytest.fixture
def marker_module(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A module on PYTHONPATH that writes a marker file when imported; the env of a CLI that sees it."""
    marker = tmp_path / "imported"
    (tmp_path / "marker_mod.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    return env, marker


def gym_graph(tmp_path: Path, task: str) -> Path:
    """A native graph file with one Gymnasium env node of ``task``."""
    path = tmp_path / "g.json"
    path.write_text(json.dumps({"format": "dnne-graph", "nodes": {"env": {"type": "EnvNode", "params": {
        "backend": "gymnasium", "task": task, "num_envs": 1}}}, "links": []}))
    return path


class TestModuleIds:
    def test_module_id_refused_without_import(self, tmp_path: Path, marker_module) -> None:
        """``module:EnvId`` in a file is refused by validate and run (exit 2, a code), and the module never loads."""
        env, marker = marker_module
        path = gym_graph(tmp_path, "marker_mod:Thing-v0")
        for command in (["validate", str(path)], ["run", str(path), "--run-dir", str(tmp_path / "r")]):
            done = dnne(*command, env=env)
            assert done.returncode == 2, done.stderr
            assert "module_not_allowed" in done.stderr and "--allow-env-module marker_mod" in done.stderr
            assert "Traceback" not in done.stderr
        assert not marker.exists()

    def test_module_allowed_on_command_line(self, tmp_path: Path, marker_module) -> None:
        """``--allow-env-module`` lets the module load (it registers no env here, so the id is then unknown)."""
        env, marker = marker_module
        done = dnne("validate", str(gym_graph(tmp_path, "marker_mod:Thing-v0")), "--allow-env-module", "marker_mod",
                    env=env)
        assert marker.exists()
        assert done.returncode == 2 and "unknown_env_id" in done.stderr and "module_not_allowed" not in done.stderr

    @pytest.mark.nodes
    def test_set_cannot_allow_a_module(self, tmp_path: Path) -> None:
        """The allow-list is not a run key: a file or ``--set run.`` cannot grant it."""
        with pytest.raises(GraphError) as caught:
            load_graph(gym_graph(tmp_path, "os:CartPole-v1"), ["run.allowed_modules=[\"os\"]"])
        codes = {issue.code for issue in caught.value.errors}
        assert {"module_not_allowed", "bad_run_option"} <= codes

    @pytest.mark.nodes
    def test_backend_refuses_module_id(self) -> None:
        """The env class itself refuses an id whose module is not allowed (the embedding path)."""
        from dnne.nodes.envs.gym_backend import GymnasiumEnv

        with pytest.raises(ValueError, match="may not import modules"):
            GymnasiumEnv("os:CartPole-v1", 1)

    @pytest.mark.nodes
    def test_backend_allows_named_module(self) -> None:
        """An allowed module id builds the env it names."""
        from dnne.nodes.envs.gym_backend import GymnasiumEnv

        env = GymnasiumEnv("gymnasium.envs.classic_control:CartPole-v1", 2,
                           allowed_modules=["gymnasium.envs.classic_control"])
        assert env.reset(seed=0).shape == (2, 4)
        env.close()


class TestEscapedIds:
    def test_printable_escapes_controls(self) -> None:
        """Terminal escapes, bell, bidi overrides and line breaks are written out, text is kept."""
        assert printable("a\x1b[2Jb\x07\u202ec\nd") == "a\\x1b[2Jb\\x07\\u202ec\\nd"
        assert printable("x\ny", keep_newlines=True) == "x\ny"
        assert printable("héllo ✓") == "héllo ✓"

    def test_issue_and_failure_messages_escaped(self) -> None:
        """An Issue, a GraphError and a NodeFailure never carry a raw control character."""
        evil = "n\x1b]0;owned\x07"
        texts = [str(Issue("c", "m", evil, "p\x1b", f"/nodes/{evil}")), str(GraphError([Issue("c", evil)], evil)),
                 str(NodeFailure(evil, "T", "run", RuntimeError(evil)))]
        for text in texts:
            assert "\x1b" not in text and "\x07" not in text and "\\x1b" in text

    def test_cli_error_pointer_escaped(self, tmp_path: Path) -> None:
        """``dnne validate`` on a file whose node id holds an escape sequence prints it escaped."""
        path = tmp_path / "g.json"
        path.write_text(json.dumps({"format": "dnne-graph", "nodes": {"x\x1b[2J\x1b]0;t\x07": {"type": "Nope"}},
                                    "links": []}))
        done = dnne("validate", str(path))
        assert done.returncode == 2 and "unknown_node_type" in done.stderr
        assert "\x1b" not in done.stderr and "\x07" not in done.stderr and "\\x1b[2J" in done.stderr


class TestDrawing:
    EVIL = 'a"]; click n0 call alert(1) %% x\n["<b>\x1b'

    def graph(self) -> Graph:
        """A graph of toy-free nodes whose id tries to break out of its label."""
        graph = Graph()
        graph.add(self.EVIL, "T\"}")
        graph.add("b", "T")
        graph.link(f"{self.EVIL}.out", "b.in")
        return graph

    def test_mermaid_labels_cannot_close(self) -> None:
        """Every node label is one quoted string with no quote, bracket, markup or line break inside."""
        text = to_mermaid(self.graph())
        lines = text.splitlines()
        assert len(lines) == 4  # header, two nodes, one link: the id added no line
        label = lines[1].split('["', 1)[1].rsplit('"]', 1)[0]
        assert not set(label) & set('"[]<>\n\x1b`|{}()')
        assert "\x1b" not in text

    def test_dot_strings_cannot_close(self) -> None:
        """DOT output escapes quotes and writes control characters out; it stays one statement per node."""
        text = to_dot(self.graph())
        lines = text.splitlines()
        assert len(lines) == 7
        node_line = lines[3]
        body = node_line.strip()[1:]
        unescaped_quotes = [i for i, c in enumerate(body) if c == '"' and body[i - 1] != "\\"]
        assert len(unescaped_quotes) == 3  # closes the id, opens and closes the label
        assert "\x1b" not in text and "\n[" not in text
