"""Params read on a node: the spec on the class, the resolved value on the instance."""
from __future__ import annotations

import pytest
from toy_nodes import Count

from dnne.runtime.ports import Param


def test_the_class_holds_the_spec_and_the_instance_its_value() -> None:
    assert isinstance(Count.n, Param) and Count.n.name == "n" and Count.n.default == 5
    node = Count("count", {"n": 3}, None)  # type: ignore[arg-type]
    assert (node.n, node.first, node.group) == (3, 0, None)
    assert vars(node)["n"] == 3  # an instance attribute: a read calls nothing
    assert Count("other", {}, None).n == 5  # type: ignore[arg-type]


def test_a_node_whose_init_did_not_run_says_so() -> None:
    node = object.__new__(Count)
    with pytest.raises(AttributeError, match=r"Count\.n: params are set by Node.__init__"):
        _ = node.n
