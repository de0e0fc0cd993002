"""Stop conditions as predicates on counters: ``run.stop`` and the shorthands node packages register.

A predicate is a JSON object with a counter name and exactly one comparison::

    {"counter": "updates", ">=": 100}
    {"counter": "score", ">=": 0.9, "reason": "good_enough", "solved": true}

``run.stop`` holds one predicate or a list of them; the run stops (gracefully) when any holds. The stop reason is
the predicate's ``reason`` (default ``stop``); ``solved: true`` marks reaching it as the run's goal
(``RunResult.solved``). A registered shorthand (``registry.add_stop_shorthand``) is a run key whose value is the
comparison's right-hand side, so ``{"max_work": 1000}`` reads as ``{"counter": "work", ">=": 1000,
"reason": "max_work"}`` when a node package registered it so.
"""
from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from .vocabulary import StopShorthand

OPERATORS: dict[str, Callable[[float, float], bool]] = {
    ">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt, "==": operator.eq,
}
MAX_PREDICATES = 64
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}")


@dataclass(frozen=True)
class StopRule:
    """One stop predicate: stop for ``reason`` when ``counter op value`` holds.

    Args:
        counter: the counter's name.
        op: a key of ``OPERATORS``.
        value: the right-hand side.
        reason: the run's stop reason when it holds.
        solved: reaching it is the run's goal.
    """

    counter: str
    op: str
    value: float
    reason: str = "stop"
    solved: bool = False

    def holds(self, current: float) -> bool:
        """Whether the counter's ``current`` value satisfies the predicate."""
        return OPERATORS[self.op](current, self.value)


def _predicate_problem(item: Any) -> str | None:
    if not isinstance(item, Mapping):
        return f"{item!r} is not an object like {{\"counter\": NAME, \">=\": NUMBER}}"
    unknown = set(item) - {"counter", "reason", "solved"} - set(OPERATORS)
    if unknown:
        return f"unknown field(s) {', '.join(sorted(map(str, unknown)))} (fields: counter, an operator " \
               f"{'/'.join(OPERATORS)}, reason, solved)"
    if not isinstance(item.get("counter"), str) or not _NAME.fullmatch(item["counter"]):
        return "'counter' must name a counter (letters, digits, _ . : -)"
    ops = [op for op in OPERATORS if op in item]
    if len(ops) != 1:
        return f"give exactly one comparison ({', '.join(OPERATORS)}), not {len(ops)}"
    value = item[ops[0]]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"the value of {ops[0]!r} must be a finite number, not {value!r}"
    if "reason" in item and (not isinstance(item["reason"], str) or not _NAME.fullmatch(item["reason"])):
        return "'reason' must be a short name (letters, digits, _ . : -)"
    if "solved" in item and not isinstance(item["solved"], bool):
        return "'solved' must be true or false"
    return None


def stop_problem(value: Any) -> str | None:
    """Why ``value`` is not a valid ``run.stop`` (one predicate or a list of them), else ``None``."""
    items = value if isinstance(value, list) else [value]
    if len(items) > MAX_PREDICATES:
        return f"{len(items)} predicates is more than {MAX_PREDICATES}"
    for index, item in enumerate(items):
        problem = _predicate_problem(item)
        if problem:
            return f"predicate {index}: {problem}" if isinstance(value, list) else problem
    return None


def stop_rules(run: Mapping[str, Any], shorthands: Mapping[str, StopShorthand]) -> list[StopRule]:
    """The stop predicates of a (validated) run section: ``run.stop`` and every shorthand key given a value."""
    rules = []
    for key, shorthand in shorthands.items():
        if run.get(key) is not None:
            rules.append(StopRule(shorthand.counter, shorthand.op, float(run[key]), shorthand.reason or key,
                                  shorthand.solved))
    given = run.get("stop")
    for item in given if isinstance(given, list) else [given] if given is not None else []:
        op = next(op for op in OPERATORS if op in item)
        rules.append(StopRule(item["counter"], op, float(item[op]), item.get("reason", "stop"),
                              bool(item.get("solved", False))))
    return rules


def stop_keys(shorthands: Mapping[str, StopShorthand]) -> tuple[str, ...]:
    """Every run key that sets a stop condition: ``stop``, ``timeout`` and the shorthands."""
    return ("stop", "timeout", *shorthands)
