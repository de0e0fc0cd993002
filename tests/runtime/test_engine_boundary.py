"""The engine's boundary: ``runtime/`` names no RL word outside extension-point docs and imports no node package."""
from __future__ import annotations

import ast
import re
from pathlib import Path

RUNTIME = Path(__file__).resolve().parents[2] / "runtime"
RL_WORDS = re.compile(r"env_steps|mean_return|episode|reward|PolicyOutput|observation")


def test_no_rl_word_in_the_engine():
    """No file of runtime/ (code, schema) holds an RL word: counters, stop shorthands and columns are the node
    packages' to register."""
    found = [f"{path.relative_to(RUNTIME)}:{number}: {line.strip()}"
             for path in sorted(RUNTIME.rglob("*")) if path.suffix in (".py", ".json")
             for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if RL_WORDS.search(line)]
    assert found == []


def test_the_word_check_finds_a_word():
    """The pattern above finds each word it is meant to find (so the check is not empty by mistake)."""
    for word in ("env_steps", "mean_return", "max_episodes", "rewards", "PolicyOutput", "observations"):
        assert RL_WORDS.search(f"x = {word!r}")


def test_the_engine_imports_no_node_package():
    """No module of runtime/ imports dnne.nodes (absolutely or relatively), at any depth of its code."""
    offenders = []
    for path in sorted(RUNTIME.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                depth = len(path.relative_to(RUNTIME).parts)  # a relative import deeper than this leaves runtime
                base = ("dnne." if node.level > depth else "dnne.runtime.") if node.level else ""
                module = base + (node.module or "")
                names = [module.rstrip("."), *(f"{module.rstrip('.')}.{alias.name}" for alias in node.names)]
            offenders += [f"{path.relative_to(RUNTIME)}: {name}" for name in names
                          if name == "dnne.nodes" or name.startswith("dnne.nodes.")]
    assert offenders == []
