"""``heap``: full collections held back while a process imports, its objects frozen before its first run is built.

The collector's state is the process's, so every check runs in a fresh interpreter.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
GRAPHS = TESTS.parents[1] / "graphs"
GENERATIONAL = sys.version_info < (3, 14)

COLLECTIONS = """
import gc
collected = []
gc.callbacks.append(lambda phase, info: phase == "start" and collected.append(info["generation"]))
def churn():
    keep = []
    for i in range(300_000):
        node = {"i": i}
        node["self"] = node  # a reference cycle, so only the collector frees it
        if i % 4 == 0:
            keep.append(node)  # long-lived objects reach the oldest generation, as an import's do
    return keep
"""


def in_fresh_interpreter(code: str) -> dict:
    """Run ``code`` in a new interpreter (the tests' folder on its path) and return the JSON it prints last."""
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120, cwd=TESTS)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


@pytest.mark.skipif(not GENERATIONAL, reason="Python 3.14's incremental collector has no oldest-generation threshold")
def test_full_collections_wait_until_settle_and_then_skip_what_was_alive() -> None:
    """Deferred, allocation that triggers full collections without it triggers none (the young generations are
    still collected); settling freezes what is alive and puts the oldest generation's threshold back."""
    outcome = in_fresh_interpreter(COLLECTIONS + textwrap.dedent("""
        import json
        from dnne.runtime import heap
        threshold = gc.get_threshold()
        heap.defer()
        deferred = gc.get_threshold()
        kept = churn()
        during = list(collected)
        heap.settle()
        frozen = gc.get_freeze_count()
        collected.clear()
        more = churn()
        print(json.dumps({"threshold": threshold, "deferred": deferred, "during": during, "after": collected,
                          "frozen": frozen, "kept": len(kept), "restored": gc.get_threshold()}))
    """))
    assert outcome["deferred"] == [*outcome["threshold"][:2], 1_000_000]
    assert 0 in outcome["during"] and 2 not in outcome["during"]
    assert outcome["frozen"] >= outcome["kept"]
    assert outcome["restored"] == outcome["threshold"]
    assert 2 in outcome["after"]


@pytest.mark.skipif(not GENERATIONAL, reason="Python 3.14's incremental collector has no oldest-generation threshold")
def test_without_defer_the_same_allocation_gets_full_collections() -> None:
    """The control for the test above: the allocation pattern does trigger full collections by default."""
    outcome = in_fresh_interpreter(COLLECTIONS + textwrap.dedent("""
        import json
        kept = churn()
        print(json.dumps({"collected": collected}))
    """))
    assert 2 in outcome["collected"]


def test_settling_acts_once_a_process_and_only_after_defer() -> None:
    """``settle`` without ``defer`` freezes nothing; after the first settle neither defers nor freezes again."""
    outcome = in_fresh_interpreter("""
        import gc, json
        from dnne.runtime import heap
        heap.settle()
        alone = gc.get_freeze_count()
        heap.defer()
        heap.settle()
        first = gc.get_freeze_count()
        extra = [[] for _ in range(1000)]
        heap.defer()
        again = gc.get_threshold()
        heap.settle()
        print(json.dumps({"alone": alone, "first": first, "again": again, "second": gc.get_freeze_count()}))
    """)
    assert outcome["alone"] == 0 and outcome["first"] > 0
    assert outcome["again"][2] != 1_000_000 and outcome["second"] == outcome["first"]


def test_loading_a_graph_ends_the_start_up() -> None:
    """Every command that runs a graph loads it first (``run``, ``play``, ``export``, a worker's part): in a process
    that deferred, a loaded graph settles; a graph that fails to load does not."""
    outcome = in_fresh_interpreter("""
        import gc, json
        from toy_nodes import toy_registry
        from dnne.runtime import GraphError, heap, load_graph
        registry = toy_registry()
        threshold = gc.get_threshold()
        heap.defer()
        try:
            load_graph({"format": "dnne-graph", "version": 1, "nodes": {"a": {"type": "NoSuchNode"}}},
                       registry=registry)
        except GraphError:
            pass
        failed = gc.get_freeze_count()
        load_graph({"format": "dnne-graph", "version": 1, "nodes": {"src": {"type": "Count"}}}, registry=registry)
        print(json.dumps({"failed": failed, "loaded": gc.get_freeze_count(), "before": threshold,
                          "after": gc.get_threshold()}))
    """)
    assert outcome["failed"] == 0 and outcome["loaded"] > 0 and outcome["after"] == outcome["before"]


def test_dnne_run_freezes_its_imports_before_building_and_its_run_is_collected_after(tmp_path: Path) -> None:
    """``dnne run`` (its ``console`` defers, ``main`` runs the graph): no full collection during the imports and
    loading, the freeze done and the threshold back before the run is built, and the run's own objects (made after
    the freeze) collected once it has ended, so a process that goes on (``--seeds``) keeps none of them."""
    outcome = in_fresh_interpreter(f"""
        import gc, json, weakref
        collected = []
        gc.callbacks.append(lambda phase, info: phase == "start" and collected.append(info["generation"]))
        from dnne.runtime import heap, runner
        from dnne.runtime.cli.main import main
        seen, runs = {{}}, []
        build = runner.GraphRun.__init__
        def recording(self, *args, **kwargs):
            seen.setdefault("frozen", gc.get_freeze_count())
            seen.setdefault("oldest", gc.get_threshold()[2])
            seen.setdefault("full", 2 in collected)
            runs.append(weakref.ref(self))
            build(self, *args, **kwargs)
        runner.GraphRun.__init__ = recording
        heap.defer()
        code = main(["run", {str(GRAPHS / "cartpole_ppo.json")!r}, "--max-steps", "1024", "--set",
                     "run.target_return=null", "--run-dir", {str(tmp_path / "run")!r}, "-q"])
        gc.collect()
        print(json.dumps(dict(seen, code=code, alive=runs[0]() is not None)))
    """)
    assert outcome["code"] == 0
    assert outcome["frozen"] > 0 and outcome["oldest"] != 1_000_000
    assert outcome["full"] is False or not GENERATIONAL
    assert outcome["alive"] is False


def test_an_embedded_run_is_collected_after_it_ends() -> None:
    """``run()`` in a host: the freeze comes before the run is built, so once it has ended and the host drops it,
    the collector frees the whole run (its nodes and channels are in reference cycles)."""
    outcome = in_fresh_interpreter("""
        import asyncio, gc, json, weakref
        from toy_nodes import toy_registry
        from dnne.runtime import Graph, run
        refs = []
        class Probe:
            def on_start(self, graph_run):
                refs.extend([weakref.ref(graph_run), weakref.ref(graph_run.nodes["sink"])])
        graph = Graph().add("src", "Count", n=5).add("sink", "Sink").link("src.out", "sink.x")
        result = asyncio.run(run(graph, toy_registry(), hooks=[Probe()]))
        frozen = gc.get_freeze_count()
        del result
        gc.collect()
        print(json.dumps({"frozen": frozen, "alive": [ref() is not None for ref in refs]}))
    """)
    assert outcome["frozen"] > 0 and outcome["alive"] == [False, False]


def test_an_embedded_run_that_fails_to_load_lets_full_collections_resume() -> None:
    """``run()`` defers in the host's process; a graph that never gets to set up still ends the deferral."""
    outcome = in_fresh_interpreter("""
        import asyncio, gc, json
        from dnne.runtime import run
        threshold = gc.get_threshold()
        try:
            asyncio.run(run({"format": "dnne-graph", "version": 1, "nodes": {"a": {"type": "NoSuchNode"}}}))
        except Exception as error:
            failed = type(error).__name__
        print(json.dumps({"failed": failed, "before": threshold, "after": gc.get_threshold()}))
    """)
    assert outcome["failed"] and outcome["after"] == outcome["before"]
