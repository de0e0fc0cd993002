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
        document = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise GraphError([Issue("too_deeply_nested", f"nested deeper than {MAX_DEPTH} levels")], path) from None
    except json.JSONDecodeError as error:
        issue = Issue("malformed_file", f"not valid JSON: {error.msg}", where=f"line {error.lineno}, column {error.colno}")
        raise GraphError([issue], path) from None
    except ValueError as error:
        raise GraphError([Issue("non_finite_value", str(error))], path) from None
    check_depth(document, path)
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


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not allowed in a graph file: every number must be finite")
