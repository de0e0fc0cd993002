"""Reading a graph document: size and nesting limits, JSON errors with line and column, format detection."""
from __future__ import annotations

import json
import math
import stat
from pathlib import Path
from typing import Any

from ..errors import GraphError, Issue

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_INT = 2**63 - 1  # every integer in a graph fits a 64-bit integer, and every float conversion is finite
MAX_INT_DIGITS = 19


def read_document(path: str | Path) -> Any:
    """Parse the JSON file at ``path`` or raise ``GraphError`` saying why it cannot be read."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as error:
        raise GraphError([Issue("file_not_found", f"cannot read {path}: {error.strerror}")], str(path)) from None
    except ValueError as error:  # a path with a NUL byte, say
        raise GraphError([Issue("file_not_found", f"cannot read {path!r}: {error}")], repr(str(path))) from None
    if not stat.S_ISREG(info.st_mode):
        # a FIFO would block forever, /dev/zero never ends: only regular files are graph files
        raise GraphError([Issue("malformed_file", "not a regular file (a device, FIFO or directory); save the "
                                "graph to a file first")], str(path))
    if info.st_size > MAX_FILE_BYTES:
        raise GraphError(
            [Issue("file_too_large", f"{info.st_size} bytes is more than the {MAX_FILE_BYTES} bytes a graph file may "
                   "have")], str(path),
        )
    try:
        with open(path, "rb") as file:
            data = file.read(MAX_FILE_BYTES + 1)  # bounded, whatever the size said
        text = data.decode("utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise GraphError([Issue("malformed_file", f"cannot read the file as UTF-8 text: {error}")], str(path)) from None
    return parse_document(text, str(path))


def parse_document(text: str, path: str | None = None) -> Any:
    """Parse JSON ``text`` with the limits of ``read_document``."""
    if len(text.encode("utf-8", "surrogatepass")) > MAX_FILE_BYTES:
        raise GraphError([Issue("file_too_large", f"more than {MAX_FILE_BYTES} bytes")], path)
    try:
        document = json.loads(text, parse_constant=_NonFinite, object_pairs_hook=_object, parse_int=_integer)
    except RecursionError:
        raise GraphError([Issue("too_deeply_nested", f"nested deeper than {MAX_DEPTH} levels")], path) from None
    except json.JSONDecodeError as error:
        issue = Issue("malformed_file", f"not valid JSON: {error.msg}", where=f"line {error.lineno}, column {error.colno}")
        raise GraphError([issue], path) from None
    check_depth(document, path)
    refused = [_refusal(value, where) for where, value in _leaves(document)
               if isinstance(value, (_NonFinite, _TooLarge)) or isinstance(value, float) and not math.isfinite(value)]
    if refused:
        raise GraphError(refused, path)
    return document


def parse_value(text: str, depth: int = 1) -> Any:
    """A ``--set`` value: JSON with the size limits of a graph file (integers within 64 bits, at most
    ``MAX_DEPTH - depth`` levels, ``depth`` being where the value lands), else the text itself as a string.
    ``NaN`` and ``Infinity`` parse as floats, so the param or run key they set refuses them at its own place.

    Raises:
        ValueError: the value is JSON beyond those limits (the message says which).
    """
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"more than {MAX_FILE_BYTES} bytes")
    try:
        value = json.loads(text, parse_int=_integer)
    except RecursionError:
        raise ValueError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError:
        return text
    try:
        check_depth(value, depth_limit=MAX_DEPTH - depth)
    except GraphError:
        raise ValueError(f"nested deeper than the {MAX_DEPTH - depth} levels a value may have there") from None
    for _, leaf in _leaves(value):
        if isinstance(leaf, _TooLarge):
            raise ValueError(_refusal(leaf, "").message)
    return value


def _refusal(value: Any, where: str) -> Issue:
    if isinstance(value, _TooLarge):
        return Issue("number_too_large", f"{value.digits}-digit integer: numbers in a graph must lie within "
                     f"+-{MAX_INT} (use a float like 1e30 for a huge bound)", where=where)
    name = value.name if isinstance(value, _NonFinite) else repr(value)
    return Issue("non_finite_value", f"{name} is not allowed in a graph file: every number must be finite",
                 where=where)


def check_depth(document: Any, path: str | None = None, depth_limit: int = MAX_DEPTH) -> None:
    """Refuse an already-parsed document nested deeper than ``depth_limit`` levels."""
    stack: list[tuple[Any, int]] = [(document, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > depth_limit:
            raise GraphError([Issue("too_deeply_nested", f"nested deeper than {depth_limit} levels")], path)
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


class _TooLarge:
    """Stands for an integer beyond ``MAX_INT`` until its place in the file is known."""

    def __init__(self, digits: int) -> None:
        self.digits = digits


def _integer(text: str) -> int | _TooLarge:
    # Checked on the text: Python refuses to parse more than 4300 digits at all, and a float conversion of a
    # long integer overflows.
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS or abs(int(text)) > MAX_INT:
        return _TooLarge(digits)
    return int(text)


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
