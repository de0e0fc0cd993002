"""The JSON Schema of the native graph format, for one registry: the engine's, plus the run keys packages register.

The schema that ships with the package (``schema/graph.schema.json``) describes the engine's own run keys
(``graph.RUN_KEYS``: seed, device, timeout, stop predicates, ...). Node packages register further run keys (stop
shorthands, settings their nodes read); ``graph_schema`` adds each with the JSON Schema its check declares
(``vocabulary.value_schema``), or null, so the schema accepts exactly the run keys the loader accepts.
"""
from __future__ import annotations

import copy
import json
from functools import cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any

from .vocabulary import value_schema

if TYPE_CHECKING:
    from .registry import NodeRegistry


@cache
def _engine_schema() -> dict[str, Any]:
    return json.loads(files(__package__).joinpath("schema/graph.schema.json").read_text(encoding="utf-8"))


def engine_schema() -> dict[str, Any]:
    """The schema as shipped: the native format with the engine's run keys only."""
    return copy.deepcopy(_engine_schema())


def graph_schema(registry: NodeRegistry) -> dict[str, Any]:
    """The schema of the graphs ``registry`` loads: the engine's, with every run key it registers beyond the
    engine's (typed by its check, null allowed, documented by its doc)."""
    schema = engine_schema()
    properties = schema["properties"]["run"]["properties"]
    for name, key in registry.vocabulary.run_keys.items():
        if name in properties:
            continue
        properties[name] = {"anyOf": [value_schema(key.check), {"type": "null"}], "description": key.doc}
    return schema
