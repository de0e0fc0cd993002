"""What node packages add to the engine's words: run keys, stop shorthands, summary fields, progress columns.

The engine knows counters by name only. A node package gives its counters meaning by registering, in its
``register(registry)`` (the ``dnne.nodes`` entry point group):

- ``add_run_key(name, doc, check, expand=None)``: a run-section key its nodes read from ``ctx.settings``, validated
  by ``check``; with ``expand``, a key that stands for nodes: at load, ``expand(graph, value, where, registry)``
  adds them to the graph (and removes the key), returning the issues it found (see ``Expand``).
- ``add_stop_shorthand(key, counter, op, reason=key, solved=False)``: a run key that stands for the stop predicate
  ``{"counter": counter, op: VALUE}`` (``max_work: 1000`` for ``{"counter": "work", ">=": 1000}``).
- ``add_summary_field(name, counter, integer)``: a top-level ``summary.json`` field read from a counter.
- ``set_step_counter(counter, total_key)``: the counter that is the metrics' x axis and the progress bar's
  position, and the run key whose value is the bar's total.
- ``add_progress_column(counter, label)``: a counter shown on the progress line.
"""
from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .durations import parse_duration

if TYPE_CHECKING:
    from .errors import Issue
    from .graph import Graph
    from .registry import NodeRegistry

Check = Callable[[Any], "str | None"]
Expand = Callable[["Graph", Any, str, "NodeRegistry"], "list[Issue]"]
"""``expand(graph, value, where, registry)``: add the nodes and links run key value ``value`` (written at ``where``)
stands for to ``graph``, in place, before validation; returns what is wrong (issues located at ``where``)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) <= 2**63 - 1


def value_schema(check: Check | None) -> dict[str, Any]:
    """The JSON Schema of the (non-null) values ``check`` accepts, as the check declares it in its ``schema``
    attribute (the checks below do); ``{}`` (any value) for a check that declares none."""
    return dict(getattr(check, "schema", {}))


def integer_at_least(low: int) -> Check:
    """A run-key check: an integer no smaller than ``low``."""

    def check(value: Any) -> str | None:
        return None if _is_int(value) and value >= low else f"{value!r} must be an integer >= {low}"

    check.schema = {"type": "integer", "minimum": low, "maximum": 2**63 - 1}  # type: ignore[attr-defined]
    return check


def finite_number(value: Any) -> str | None:
    """A run-key check: a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{value!r} must be a number"
    try:
        return None if math.isfinite(value) else f"{value!r} is not a finite number"
    except OverflowError:
        return "the number is too large"


finite_number.schema = {"type": "number"}  # type: ignore[attr-defined]


def boolean(value: Any) -> str | None:
    """A run-key check: true or false."""
    return None if isinstance(value, bool) else f"{value!r} must be true or false"


boolean.schema = {"type": "boolean"}  # type: ignore[attr-defined]


def one_of(*choices: str) -> Check:
    """A run-key check: one of ``choices``."""

    def check(value: Any) -> str | None:
        return None if value in choices else f"{value!r} must be one of {', '.join(choices)}"

    check.schema = {"enum": list(choices)}  # type: ignore[attr-defined]
    return check


def text(value: Any) -> str | None:
    """A run-key check: a non-empty string of at most 4096 characters."""
    return None if isinstance(value, str) and 0 < len(value) <= 4096 else f"{value!r} must be a non-empty string"


text.schema = {"type": "string", "minLength": 1, "maxLength": 4096}  # type: ignore[attr-defined]


def duration(value: Any) -> str | None:
    """A run-key check: a duration such as ``30s``, ``5m``, ``1h30m``."""
    try:
        parse_duration(value)
    except (ValueError, TypeError, AttributeError) as error:
        return str(error)
    except OverflowError:
        return "the duration is too large"
    return None


@dataclass(frozen=True)
class RunKey:
    """A key of a graph's run section.

    Args:
        name: the key.
        doc: what it means, shown by ``dnne nodes`` and in errors.
        check: why a value is not acceptable, or ``None`` when it is (``None`` values are always accepted).
        expand: for a key that stands for nodes, what adds them (``Expand``); the key leaves the run section then.
    """

    name: str
    doc: str
    check: Check | None = None
    expand: Expand | None = None


@dataclass(frozen=True)
class StopShorthand:
    """A run key that stands for one stop predicate on one counter.

    Args:
        key: the run key (``max_work``).
        counter: the counter it compares (``work``).
        op: the comparison (see ``stopping.OPERATORS``).
        reason: the stop reason when it holds (default: the key).
        solved: whether stopping on it counts as reaching the run's goal.
    """

    key: str
    counter: str
    op: str = ">="
    reason: str = ""
    solved: bool = False


@dataclass(frozen=True)
class SummaryField:
    """A top-level ``summary.json`` field read from a counter (``None`` when the counter is absent).

    Args:
        name: the field.
        counter: the counter it reads.
        integer: write it as an integer (0 when absent).
    """

    name: str
    counter: str
    integer: bool = False


@dataclass
class Vocabulary:
    """Every run key, stop shorthand, summary field and progress column one registry knows."""

    run_keys: dict[str, RunKey] = field(default_factory=dict)
    shorthands: dict[str, StopShorthand] = field(default_factory=dict)
    summary_fields: dict[str, SummaryField] = field(default_factory=dict)
    progress_columns: dict[str, str] = field(default_factory=dict)
    step_counter: str | None = None
    step_total_key: str | None = None

    def summary(self, counters: dict[str, float]) -> dict[str, Any]:
        """The registered summary fields of ``counters``."""
        fields: dict[str, Any] = {}
        for spec in self.summary_fields.values():
            value = counters.get(spec.counter)
            fields[spec.name] = int(value or 0) if spec.integer else value
        return fields


def engine_run_keys() -> dict[str, RunKey]:
    """The run keys the engine itself reads."""
    from .stopping import stop_problem

    keys = (
        RunKey("seed", "int: the run seed; every node draws from its own generator derived from it"),
        RunKey("device", "cpu or cuda: the default device of nodes that take one"),
        RunKey("timeout", "duration such as 30s, 5m, 1h30m: stop after this wall time", duration),
        RunKey("stop", "stop predicates on counters: {\"counter\": NAME, \">=\": NUMBER} or a list of them; "
               "optional \"reason\" (text) and \"solved\" (true: reaching it is the run's goal)", stop_problem),
        RunKey("checkpoint_every", "int: save a checkpoint every N iterations (0: only at the end)",
               integer_at_least(0)),
        RunKey("keep_checkpoints", "int: how many checkpoints to keep", integer_at_least(1)),
        RunKey("mode", "train or play", one_of("train", "play")),
        RunKey("max_replacements", "int: how many lost parts (workers with on_loss \"replace\") one run replaces "
               "before a loss stops it (default 3)", integer_at_least(0)),
        RunKey("fuse_chains", "true or false: a node whose one streaming input has one link may fire in its "
               "producer's task, a chain as one task (default true; the same firings, stamps and stats)", boolean),
        RunKey("ray_address", "str: the Ray cluster that runs the workers placed on Ray (host:port, or auto); "
               "default: a local Ray", text),
    )
    return {key.name: key for key in keys}
