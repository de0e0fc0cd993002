"""Params read on a node: the spec on the class, the resolved value on the instance."""
from __future__ import annotations

from typing import Any

import pytest
from toy_nodes import Count

from dnne.runtime.node import NodeDefinitionError
from dnne.runtime.ports import Param


def test_the_class_holds_the_spec_and_the_instance_its_value() -> None:
    """A param read on the class is its spec; on a node, the value the graph gave or the default."""
    assert isinstance(Count.n, Param) and Count.n.name == "n" and Count.n.default == 5
    node = Count("count", {"n": 3}, None)  # type: ignore[arg-type]
    assert (node.n, node.first, node.group) == (3, 0, None)
    assert vars(node)["n"] == 3  # an instance attribute: a read calls nothing
    assert Count("other", {}, None).n == 5  # type: ignore[arg-type]


def test_a_node_whose_init_has_not_run_says_so() -> None:
    """Without ``Node.__init__`` a node has no params, and reading one names it."""
    node = object.__new__(Count)
    with pytest.raises(AttributeError, match=r"Count\.n: params are set by Node.__init__, which has not run"):
        _ = node.n


@pytest.mark.parametrize("attribute", [3, lambda self: 3], ids=["value", "method"])
def test_a_subclass_attribute_named_like_an_inherited_param_is_refused(attribute: Any) -> None:
    """The param's value, an instance attribute, would hide the subclass's own attribute of that name."""
    with pytest.raises(NodeDefinitionError, match=r"Shadow: 'n' is a param of a base class and an attribute"):
        type("Shadow", (Count,), {"n": attribute})


def test_a_subclass_may_declare_an_inherited_param_again() -> None:
    """Declaring the param again (another default) is an override, not a shadow."""
    again = type("Again", (Count,), {"n": Param(int, 7, "how many values", ge=0, le=10)})
    assert again("again", {}, None).n == 7  # type: ignore[attr-defined]
