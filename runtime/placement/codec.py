"""msgpack encoding of the values that cross a process boundary: tensors as an extension type, allowlisted
dataclasses, never pickle.

What travels: ``None``, bools, ints, floats, strings, bytes, lists, tuples, dicts, torch tensors and devices, and
instances of the dataclasses a node package allowed (``NodeRegistry.add_wire_type``). Anything else is refused with
``WireError`` when encoding. Decoding builds dataclasses by calling the allowlisted class with its fields (so their
``__post_init__`` checks run) and never imports a module or resolves a name that is not on the allowlist.

A tensor is its dtype name, its shape and its raw bytes (C order, on CPU); in a message of a crossing link, a tensor
of ``SLOT_MIN_BYTES`` or more is instead copied into the link's shared-memory slot (``slots``) and the frame holds
only its dtype, shape and offset. Encoding reads the bytes through a NumPy
view of the tensor's own memory; decoding builds the tensor over a writable copy of the frame's bytes (one copy, so
that a receiver may change the tensor in place). A CUDA tensor is copied to the CPU first and arrives on the CPU.

Decoding reads data from another process, so it is bounded: extension types nest at most ``MAX_EXT_DEPTH`` deep
(each level is a nested decode inside msgpack's ``ext_hook``; unbounded, a frame of a few hundred bytes overflows
the C stack), plain containers as deep as msgpack's own limit, and every failure is a ``WireError``.

Written for Python 3.8 as well (no imports from the runtime): a worker under an older interpreter uses it as is.
"""
from __future__ import annotations

import dataclasses
import struct
from typing import Any, Dict, Mapping, Optional, Tuple

import msgpack
import numpy as np
import torch

from .slots import PREFIX, SlotError, SlotReader, SlotWriter, bytes_of, read_tensor

EXT_TENSOR = 1
EXT_DATACLASS = 2
EXT_TUPLE = 3
EXT_DEVICE = 4
EXT_SLOT_TENSOR = 5
SLOT_MIN_BYTES = 512
"""Tensors of at least this many bytes ride a shared-memory slot when the message has one (``slots``)."""

DTYPES: Dict[str, torch.dtype] = {
    name: getattr(torch, name)
    for name in ("bool", "uint8", "int8", "int16", "int32", "int64", "float16", "bfloat16", "float32", "float64",
                 "complex64", "complex128")
}
_DTYPE_NAMES = {dtype: name for name, dtype in DTYPES.items()}
_HEADER_LENGTH = struct.Struct(">H")
MAX_EXT_DEPTH = 32
"""How deep extension types (tuples, dataclasses) may nest in one decoded value."""


class WireError(ValueError):
    """A value that cannot cross a process boundary, or a frame that does not decode."""


class Codec:
    """Encodes and decodes values and messages; ``dataclasses`` is the allowlist, name -> class.

    Args:
        dataclasses: the classes that may cross, by wire name (``NodeRegistry.wire_types``).
    """

    def __init__(self, dataclasses: Optional[Mapping[str, type]] = None) -> None:
        self._classes: Dict[str, type] = dict(dataclasses or {})
        self._names: Dict[type, str] = {cls: name for name, cls in self._classes.items()}
        self._depth = 0
        self._writer: Optional[SlotWriter] = None
        self._segment: Optional[torch.Tensor] = None

    # ---- values --------------------------------------------------------------------------------------------
    def encode(self, value: Any) -> bytes:
        """``value`` as msgpack bytes; ``WireError`` names the first part that cannot cross."""
        try:
            return msgpack.packb(value, default=self._default, use_bin_type=True, strict_types=True)
        except WireError:
            raise
        except (TypeError, ValueError, OverflowError) as error:
            raise WireError(f"cannot encode {type(value).__name__}: {error}") from None

    def decode(self, data: Any) -> Any:
        """The value ``encode`` made of ``data`` (bytes or a memoryview); ``WireError`` on anything unexpected."""
        try:
            return msgpack.unpackb(data, ext_hook=self._ext_hook, raw=False, strict_map_key=False,
                                   use_list=True)
        except WireError:
            raise
        except Exception as error:  # malformed frames surface as one error type
            raise WireError(f"undecodable frame: {type(error).__name__}: {error}") from None

    # ---- messages ------------------------------------------------------------------------------------------
    def encode_message(self, value: Any, stamp: Optional[int], source: Optional[str],
                       slots: Optional[SlotWriter] = None) -> bytes:
        """One channel message (value, stamp, source); with ``slots``, large tensors go into the link's next slot
        and the body starts with the prefix naming it (``slots.PREFIX``)."""
        if slots is None:
            return self.encode([value, stamp, source])
        slots.begin()
        self._writer = slots
        try:
            body = self.encode([value, stamp, source])
        finally:
            self._writer = None
        return slots.finish() + body

    def decode_message(self, data: Any, slots: Optional[SlotReader] = None) -> Tuple[Any, Optional[int],
                                                                                     Optional[str]]:
        """(value, stamp, source) of an encoded message; ``slots`` reads the prefix and slot ``encode_message``
        wrote with a ``SlotWriter``."""
        if slots is not None:
            if len(data) < PREFIX.size:
                raise WireError("a message frame is shorter than its slot prefix")
            try:
                self._segment = slots.segment(bytes(data[:PREFIX.size]))
            except SlotError as error:
                raise WireError(str(error)) from None
            data = memoryview(data)[PREFIX.size:]
        try:
            decoded = self.decode(data)
        finally:
            self._segment = None
        if not isinstance(decoded, list) or len(decoded) != 3:
            raise WireError("a message frame must hold [value, stamp, source]")
        value, stamp, source = decoded
        if not (stamp is None or isinstance(stamp, int)) or not (source is None or isinstance(source, str)):
            raise WireError("a message's stamp must be an int or null and its source a string or null")
        return value, stamp, source

    # ---- extension types -----------------------------------------------------------------------------------
    def _default(self, value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            tensor = _plain(value)
            if self._writer is not None and tensor.numel() * tensor.element_size() >= SLOT_MIN_BYTES:
                offset = self._writer.put(tensor)
                return msgpack.ExtType(EXT_SLOT_TENSOR, msgpack.packb([_DTYPE_NAMES[tensor.dtype],
                                                                       list(tensor.shape), offset]))
            return msgpack.ExtType(EXT_TENSOR, _tensor_bytes(tensor))
        if isinstance(value, tuple):
            return msgpack.ExtType(EXT_TUPLE, self.encode(list(value)))
        if isinstance(value, torch.device):
            return msgpack.ExtType(EXT_DEVICE, str(value).encode())
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            name = self._names.get(type(value))
            if name is None:
                raise WireError(f"{type(value).__qualname__} may not cross a process boundary: its node package "
                                "must allow it with registry.add_wire_type")
            fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value) if f.init}
            return msgpack.ExtType(EXT_DATACLASS, self.encode([name, fields]))
        # with strict_types, subclasses of the plain types come here: send them as the plain type
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, (float, np.floating)):
            return float(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return list(value)
        raise WireError(f"{type(value).__qualname__} may not cross a process boundary (no pickle: send tensors, "
                        "plain data or an allowlisted dataclass)")

    def _ext_hook(self, code: int, data: bytes) -> Any:
        if code == EXT_TENSOR:
            return _tensor_from(data)
        if code == EXT_DEVICE:
            return torch.device(data.decode())
        if code == EXT_SLOT_TENSOR:
            return self._slot_tensor(data)
        if code not in (EXT_TUPLE, EXT_DATACLASS):
            raise WireError(f"unknown msgpack extension type {code}")
        if self._depth >= MAX_EXT_DEPTH:
            raise WireError(f"extension types nested deeper than {MAX_EXT_DEPTH}")
        self._depth += 1
        try:
            inner = self.decode(data)
        finally:
            self._depth -= 1
        if code == EXT_TUPLE:
            if not isinstance(inner, list):
                raise WireError("a tuple extension must hold a list")
            return tuple(inner)
        if not isinstance(inner, list) or len(inner) != 2:
            raise WireError("a dataclass extension must hold [name, fields]")
        name, fields = inner
        cls = self._classes.get(name) if isinstance(name, str) else None
        if cls is None or not isinstance(fields, dict):
            raise WireError(f"dataclass {name!r} is not on this process's allowlist")
        return cls(**fields)

    def _slot_tensor(self, data: bytes) -> torch.Tensor:
        if self._segment is None:
            raise WireError("a shared-memory tensor in a frame that names no slot")
        header = msgpack.unpackb(data)
        if not (isinstance(header, list) and len(header) == 3 and isinstance(header[2], int)):
            raise WireError(f"bad shared-memory tensor header {header!r}")
        name, shape, offset = header
        dtype, count = _checked_header(name, shape)
        return read_tensor(self._segment, dtype, tuple(shape), offset, count * _ITEM_SIZES[dtype])


_ITEM_SIZES = {dtype: torch.empty(0, dtype=dtype).element_size() for dtype in DTYPES.values()}


def _checked_header(name: Any, shape: Any) -> Tuple[torch.dtype, int]:
    """The dtype and element count of a tensor header; ``WireError`` for anything else."""
    dtype = DTYPES.get(name) if isinstance(name, str) else None
    if dtype is None or not isinstance(shape, list) or len(shape) > 64 or not all(
            isinstance(n, int) and n >= 0 for n in shape):
        raise WireError(f"bad tensor header: dtype {name!r}, shape {shape!r}")
    count = 1
    for size in shape:
        count *= size
    return dtype, count


def _plain(tensor: torch.Tensor) -> torch.Tensor:
    """A detached, contiguous CPU tensor of a dtype that may cross."""
    if tensor.dtype not in _DTYPE_NAMES or tensor.layout != torch.strided:
        raise WireError(f"a {tensor.dtype} {tensor.layout} tensor cannot cross a process boundary")
    if tensor.requires_grad:
        tensor = tensor.detach()
    if tensor.device.type != "cpu":
        tensor = tensor.cpu()
    if tensor.is_conj() or tensor.is_neg():
        tensor = tensor.resolve_conj().resolve_neg()
    return tensor if tensor.is_contiguous() else tensor.contiguous()


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    """A plain tensor (``_plain``) as header and raw bytes."""
    key = (tensor.dtype, tensor.shape)
    head = _HEADS.get(key)
    if head is None:
        header = msgpack.packb([_DTYPE_NAMES[tensor.dtype], list(tensor.shape)])
        head = _HEADER_LENGTH.pack(len(header)) + header
        if len(_HEADS) < _CACHED:
            _HEADS[key] = head
    return head + bytes_of(tensor).data


def _tensor_from(data: bytes) -> torch.Tensor:
    (length,) = _HEADER_LENGTH.unpack_from(data)
    end = 2 + length
    header = bytes(data[2:end])
    parsed = _PARSED.get(header)
    cached = parsed is not None
    if parsed is None:
        fields = msgpack.unpackb(header)
        if not (isinstance(fields, list) and len(fields) == 2):
            raise WireError(f"bad tensor header {fields!r}")
        name, shape = fields
        dtype, count = _checked_header(name, shape)
        parsed = (dtype, tuple(shape), count * _ITEM_SIZES[dtype])
    dtype, shape, nbytes = parsed
    if len(data) - end != nbytes:
        raise WireError(f"tensor of shape {list(shape)} and dtype {_DTYPE_NAMES[dtype]} does not match its "
                        f"{len(data) - end} bytes")
    if not cached and len(header) <= _CACHED_HEADER_BYTES and len(_PARSED) < _CACHED:
        _PARSED[header] = parsed
    return read_tensor(np.frombuffer(data, dtype=np.uint8), dtype, shape, end, nbytes)  # a copy of its own


_CACHED = 1024
"""How many tensor headers each side remembers: encoded by dtype and shape; decoded by their bytes, once a tensor
with that header has decoded, and only headers of at most ``_CACHED_HEADER_BYTES`` (a frame from another process
cannot make the cache hold more than 1024 short headers)."""
_CACHED_HEADER_BYTES = 128
_HEADS: Dict[Tuple[torch.dtype, Tuple[int, ...]], bytes] = {}
_PARSED: Dict[bytes, Tuple[torch.dtype, Tuple[int, ...], int]] = {}
