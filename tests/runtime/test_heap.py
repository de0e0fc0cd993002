"""``heap``: full collections held back while a run starts, the start-up's objects frozen once its nodes are set up.

The collector's state is the process's, so every check runs in a fresh interpreter.
"""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).resolve().parent

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


def test_a_run_settles_after_its_nodes_are_set_up() -> None:
    """In a process that deferred, a graph run freezes the heap between its hooks' ``on_start`` (after every
    setup) and the end of the run."""
    outcome = in_fresh_interpreter("""
        import asyncio, gc, json
        from toy_nodes import toy_registry
        from dnne.runtime import Graph, GraphRun, heap, load_graph
        heap.defer()
        seen = {}
        class Probe:
            def on_start(self, run):
                seen["at_start"] = gc.get_freeze_count()
        registry = toy_registry()
        graph = Graph().add("src", "Count", n=5).add("sink", "Sink").link("src.out", "sink.x")
        result = asyncio.run(GraphRun(load_graph(graph, registry=registry), registry, hooks=[Probe()]).execute())
        print(json.dumps({"error": result.error, "at_start": seen["at_start"], "after": gc.get_freeze_count(),
                          "threshold": gc.get_threshold()[2]}))
    """)
    assert outcome["error"] is None
    assert outcome["at_start"] == 0 and outcome["after"] > 0 and outcome["threshold"] != 1_000_000


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
