"""Reply links: a link that a graph implies, added by the graph builder when the file does not write it."""
from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

import pytest

from dnne.runtime import Input, Node, Output, load_graph
from dnne.runtime.errors import GraphError
from dnne.runtime.graph import Graph
from dnne.runtime.node import NodeDefinitionError
from dnne.runtime.registry import NodeRegistry
from dnne.runtime.runner import GraphRun


class Asker(Node):
    """Sends ``count`` questions; each carries the newest answer it holds (``None`` before the first)."""

    question = Output("Int")
    answer = Input("Int", config=True, optional=True, reply_to="question")

    async def run(self) -> None:
        assert self.io is not None
        for n in range(3):
            held = self.io.newest("answer") if self.linked("answer") else None
            self.ctx.shared("held", list).append(held)
            await self.emit("question", n, stamp=n)
            await asyncio.sleep(0.01)


class Answerer(Node):
    """Answers 100 at its start, then 100 + each question."""

    question = Input("Int", reply_on="reply")
    reply = Output("Int")

    async def start(self) -> None:
        await self.emit("reply", 100)

    async def compute(self, question: int) -> Mapping[str, Any]:
        return {"reply": 100 + question + 1}


class TextAnswerer(Node):
    """Answers on an output of the wrong type."""

    question = Input("Int", reply_on="reply")
    reply = Output("String")


def registry() -> NodeRegistry:
    """A registry of the asker and the answerers."""
    reg = NodeRegistry()
    for cls in (Asker, Answerer, TextAnswerer):
        reg.add_node(cls)
    return reg


def links(graph: Graph) -> list[tuple[str, str | None]]:
    """Every link as text, with its policy."""
    return [(str(link), link.policy) for link in graph.links]


class TestReplyLinks:
    def test_forward_link_implies_the_reply(self) -> None:
        """Linking asker.question -> answerer.question adds answerer.reply -> asker.answer, policy latest, and the
        native form written back holds it."""
        graph = load_graph(Graph().add("a", "Asker").add("b", "Answerer").link("a.question", "b.question"),
                           registry=registry())
        assert ("b.reply -> a.answer", "latest") in links(graph)
        assert {"from": "b.reply", "to": "a.answer", "policy": "latest"} in graph.to_native()["links"]

    def test_written_reply_is_kept(self) -> None:
        """A file that writes the reply link itself keeps its own link (no second one)."""
        graph = Graph().add("a", "Asker").add("b", "Answerer")
        graph.link("a.question", "b.question").link("b.reply", "a.answer", capacity=3)
        loaded = load_graph(graph, registry=registry())
        replies = [link for link in loaded.links if link.dst_port == "answer"]
        assert len(replies) == 1 and replies[0].capacity == 3 and replies[0].policy is None

    def test_reply_of_the_wrong_type_is_an_error(self) -> None:
        """A reply the asker's input cannot read is a type_mismatch naming the asker and its input."""
        graph = Graph().add("a", "Asker").add("b", "TextAnswerer").link("a.question", "b.question")
        with pytest.raises(GraphError) as caught:
            load_graph(graph, registry=registry())
        (issue,) = [i for i in caught.value.errors if i.code == "type_mismatch"]
        assert issue.node == "a" and issue.field == "answer" and "b.reply -> a.answer" in issue.message

    def test_reply_loop_needs_no_primed_input(self) -> None:
        """The loop a reply closes runs: the answerer's start reply reaches the asker, which then sees newer
        answers."""
        graph = load_graph(Graph().add("a", "Asker").add("b", "Answerer").link("a.question", "b.question"),
                           registry=registry())
        graph_run = GraphRun(graph, registry())
        result = asyncio.run(asyncio.wait_for(graph_run.execute(), 20))
        assert result.error is None
        held = graph_run.context.shared("held", list)
        assert held[-1] is not None and held[-1] >= 100

    def test_reply_names_must_be_outputs(self) -> None:
        """reply_to / reply_on naming something that is not an output of the node fail when the class is
        defined."""
        with pytest.raises(NodeDefinitionError, match="reply_to names 'nothing'"):
            type("Bad", (Node,), {"answer": Input("Int", reply_to="nothing")})
        with pytest.raises(NodeDefinitionError, match="reply_on names 'nothing'"):
            type("Bad", (Node,), {"question": Input("Int", reply_on="nothing")})
