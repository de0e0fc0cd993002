"""Errors users read: validation issues with a code, a node, a port or param, and a place in the file."""
from __future__ import annotations

import unicodedata
from dataclasses import asdict, dataclass


def printable(text: str, keep_newlines: bool = False) -> str:
    """``text`` with control and format characters (terminal escapes, bidi overrides) written as ``\\x1b``-style
    escapes, so a node id from a file can never drive the terminal it is printed to."""
    out = []
    for char in str(text):
        if (char == "\n" and keep_newlines) or unicodedata.category(char) not in ("Cc", "Cf", "Zl", "Zp"):
            out.append(char)
        else:
            out.append(char.encode("unicode_escape").decode("ascii"))
    return "".join(out)


@dataclass(frozen=True)
class Issue:
    """One validation finding.

    Args:
        code: machine-readable code (``unknown_node_type``, ``type_mismatch``, ...).
        message: what is wrong and what to do, in words.
        node: the node id it belongs to, if any.
        field: the port or param it concerns, if any.
        where: the place in the file, a JSON pointer (``/nodes/3/widgets_values/2``) or ``--set``.
        severity: ``error`` or ``warning``.
    """

    code: str
    message: str
    node: str | None = None
    field: str | None = None
    where: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        subject = ""
        if self.node is not None:
            subject = f"node {self.node!r}"
            if self.field:
                subject += f" {self.field!r}"
            subject += ": "
        place = f" (at {self.where})" if self.where else ""
        return printable(f"{self.severity} [{self.code}] {subject}{self.message}{place}")

    def as_dict(self) -> dict[str, str | None]:
        """The issue as plain data."""
        return asdict(self)


class GraphError(Exception):
    """A graph that cannot run; carries every issue found.

    Args:
        issues: the errors (and warnings) found.
        path: the file the graph came from, if any.
    """

    def __init__(self, issues: list[Issue], path: str | None = None) -> None:
        self.issues = issues
        self.path = path
        errors = [i for i in issues if i.severity == "error"]
        head = f"{path}: " if path else ""
        super().__init__(printable(head) + f"{len(errors)} error(s)\n" + "\n".join(f"  {i}" for i in errors))

    @property
    def errors(self) -> list[Issue]:
        """The issues of severity ``error``."""
        return [i for i in self.issues if i.severity == "error"]


class NodeFailure(Exception):
    """A node raised while the graph ran.

    Args:
        node_id: the failing node.
        node_type: its type.
        phase: ``setup``, ``run`` or ``teardown``.
        cause: the exception it raised.
    """

    def __init__(self, node_id: str, node_type: str, phase: str, cause: BaseException) -> None:
        self.node_id = node_id
        self.node_type = node_type
        self.phase = phase
        self.cause = cause
        super().__init__(printable(f"node {node_id!r} ({node_type}) failed in {phase}: {type(cause).__name__}: {cause}",
                                   keep_newlines=True))
