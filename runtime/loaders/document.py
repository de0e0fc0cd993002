"""Reading a graph document: size and nesting limits, JSON errors with line and column, format detection."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import GraphError, Issue

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64


def read_document(path: str | Path) -> Any:
    """Parse the JSON file at ``path`` or raise ``GraphError`` saying why it cannot be read."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as error:
        raise GraphError([Issue("file_not_found", f"cannot read {path}: {error.strerror}")], str(path)) from None
    except ValueError as error:  # a path with a NUL byte, say
        raise GraphError([Issue("file_not_found", f"cannot read {path!r}: {error}")], repr(str(path))) from None
    if size > MAX_FILE_BYTES:
        raise GraphError(
            [Issue("file_too_large", f"{size} bytes is more than the {MAX_FILE_BYTES} bytes a graph file may have")],
            str(path),
        )
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GraphError([Issue("malformed_file", f"cannot read the file as UTF-8 text: {error}")], str(path)) from None
    return parse_document(text, str(path))


def parse_document(text: str, path: str | None = None) -> Any:
    """Parse JSON ``text`` with the limits of ``read_document``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise GraphError([Issue("file_too_large", f"more than {MAX_FILE_BYTES} bytes")], path)
    try:
        document = json.loads(text, parse_constant=_NonFinite, object_pairs_hook=_object)
    except RecursionError:
        raise GraphError([Issue("too_deeply_nested", f"nested deeper than {MAX_DEPTH} levels")], path) from None
    except json.JSONDecodeError as error:
        issue = Issue("malformed_file", f"not valid JSON: {error.msg}", where=f"line {error.lineno}, column {error.colno}")
        raise GraphError([issue], path) from None
    check_depth(document, path)
    if "NaN" not in text and "Infinity" not in text:
        return document
    non_finite = [
        Issue("non_finite_value", f"{value.name} is not allowed in a graph file: every number must be finite",
              where=where)
        for where, value in _leaves(document) if isinstance(value, _NonFinite)
    ]
    if non_finite:
        raise GraphError(non_finite, path)
    return document


def check_depth(document: Any, path: str | None = None) -> None:
    """Refuse an already-parsed document nested deeper than ``MAX_DEPTH``."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise GraphError([Issue("too_deeply_nested", f"nested deeper than {MAX_DEPTH} levels")], path)
        if isinstance(value, dict):
            stack.extend((v, depth + 1) for v in value.values())
        elif isinstance(value, list):
            stack.extend((v, depth + 1) for v in value)


def detect_format(document: Any) -> str | None:
    """``native``, ``workflow`` (DNNE/ComfyUI), ``api`` (ComfyUI prompt), or ``None``."""
    if not isinstance(document, dict):
        return None
    if document.get("format") == "dnne-graph":
        return "native"
    if isinstance(document.get("nodes"), list):
        return "workflow"
    if document and all(isinstance(v, dict) and "class_type" in v for v in document.values()):
        return "api"
    if isinstance(document.get("nodes"), dict):
        return "native"
    return None


class RepeatedKeys(dict):
    """A JSON object written with a key more than once (JSON keeps the last value); ``repeated`` names them."""

    repeated: tuple[str, ...] = ()


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) == len(pairs):
        return result
    seen: set[str] = set()
    repeated = [key for key, _ in pairs if key in seen or seen.add(key)]
    flagged = RepeatedKeys(result)
    flagged.repeated = tuple(dict.fromkeys(repeated))
    return flagged


class _NonFinite:
    """Stands for a ``NaN`` / ``Infinity`` literal until its place in the file is known."""

    def __init__(self, name: str) -> None:
        self.name = name


def _leaves(document: Any) -> list[tuple[str, Any]]:
    """Every non-container value with its JSON pointer, in file order."""
    leaves = []
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:
        where, value = stack.pop()
        if isinstance(value, dict):
            items = [(f"{where}/{str(k).replace('~', '~0').replace('/', '~1')}", v) for k, v in value.items()]
        elif isinstance(value, list):
            items = [(f"{where}/{i}", v) for i, v in enumerate(value)]
        else:
            leaves.append((where, value))
            continue
        stack.extend(reversed(items))
    return leaves
