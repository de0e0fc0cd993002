"""Shared-memory slots: the tensors of a message cross a process boundary through memory both processes map.

Each crossing link has a ring of ``capacity`` slots, written by its producer's process and read by its consumer's.
Message ``j`` of a link uses slot ``j % capacity``. That slot is free by then: the producer holds ``capacity``
credits, a credit comes back only after the consumer has decoded its message (copying its tensors out of the slot),
and credits come back in order, so when message ``j`` is sent, message ``j - capacity`` has been decoded.

A slot is one file in a directory the main process made for the run (on ``/dev/shm`` where it exists), named from
the link, the slot and a generation: ``l{link}-s{slot}-g{generation}``. A message that does not fit makes the slot
grow: a new generation, at least twice as large, and the old file is removed (the consumer still maps it until it
sees the new generation; a frame never names a generation the consumer could not open). A frame names the slot and
generation as two integers; the reader builds the file name from those and its own directory, so a frame cannot
name a path. The main process removes the directory when the run ends, killed workers' slots included.

The reader copies each tensor out of the slot into memory of its own (the consumer may keep it, e.g. in a rollout
buffer, long after the slot is reused): one copy on each side instead of msgpack's encode, pipe and routing copies.

Written for Python 3.8 as well (no imports from the runtime).
"""
from __future__ import annotations

import mmap
import os
import struct
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

MIN_SLOT_BYTES = 1 << 16
ALIGN = 64
PREFIX = struct.Struct(">ii")
"""A message frame's body starts with (slot, generation); slot -1: no tensor rides shared memory."""
NO_SLOT = PREFIX.pack(-1, 0)


class SlotError(ValueError):
    """A frame that names a slot, generation or byte range this process cannot read."""


def _path(directory: str, link: int, slot: int, generation: int) -> str:
    return os.path.join(directory, f"l{link}-s{slot}-g{generation}")


class _Segment:
    __slots__ = ("generation", "size", "memory", "bytes")

    def __init__(self, generation: int, size: int, memory: mmap.mmap) -> None:
        self.generation = generation
        self.size = size
        self.memory = memory
        self.bytes = np.frombuffer(memory, dtype=np.uint8)  # copies through NumPy: no torch dispatch or threads


class SlotWriter:
    """The producer side of one link's slots.

    Args:
        directory: the run's slot directory.
        link: the crossing link's index.
        capacity: the number of slots (the link's credits).
    """

    def __init__(self, directory: str, link: int, capacity: int) -> None:
        self.directory = directory
        self.link = link
        self._slots: List[Optional[_Segment]] = [None] * capacity
        self._next = 0
        self._slot = 0
        self._used = 0

    def begin(self) -> None:
        """Start a message: its tensors go into the next slot of the ring."""
        self._slot = self._next
        self._used = 0

    def put(self, tensor: torch.Tensor) -> int:
        """Copy a contiguous CPU tensor into the current slot; returns its byte offset there."""
        raw = bytes_of(tensor)
        offset = -(-self._used // ALIGN) * ALIGN
        end = offset + raw.size
        segment = self._slots[self._slot]
        if segment is None or end > segment.size:
            segment = self._grow(segment, end)
        segment.bytes[offset:end] = raw
        self._used = end
        return offset

    def finish(self) -> bytes:
        """End a message: the frame prefix naming its slot (``NO_SLOT`` when no tensor was put)."""
        if self._used == 0:
            return NO_SLOT
        segment = self._slots[self._slot]
        assert segment is not None
        self._next = (self._slot + 1) % len(self._slots)
        return PREFIX.pack(self._slot, segment.generation)

    def _grow(self, old: Optional[_Segment], needed: int) -> _Segment:
        size = max(MIN_SLOT_BYTES, needed, 2 * old.size if old is not None else 0)
        generation = old.generation + 1 if old is not None else 0
        path = _path(self.directory, self.link, self._slot, generation)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, size)
            memory = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        segment = _Segment(generation, size, memory)
        if old is not None:
            segment.bytes[:self._used] = old.bytes[:self._used]  # this message's tensors so far
            os.unlink(_path(self.directory, self.link, self._slot, old.generation))
        self._slots[self._slot] = segment
        return segment


class SlotReader:
    """The consumer side of one link's slots.

    Args:
        directory: the run's slot directory.
        link: the crossing link's index.
        capacity: the number of slots.
    """

    def __init__(self, directory: str, link: int, capacity: int) -> None:
        self.directory = directory
        self.link = link
        self.capacity = capacity
        self._open: Dict[int, _Segment] = {}

    def segment(self, prefix: bytes) -> Optional[np.ndarray]:
        """The bytes of the slot a frame's prefix names (``None`` for ``NO_SLOT``)."""
        slot, generation = PREFIX.unpack(prefix)
        if slot == -1:
            return None
        if not 0 <= slot < self.capacity or generation < 0:
            raise SlotError(f"link {self.link}: no slot {slot} generation {generation}")
        segment = self._open.get(slot)
        if segment is None or segment.generation != generation:
            segment = self._map(slot, generation)
            self._open[slot] = segment
        return segment.bytes

    def _map(self, slot: int, generation: int) -> _Segment:
        try:
            fd = os.open(_path(self.directory, self.link, slot, generation), os.O_RDWR)
        except OSError as error:
            raise SlotError(f"link {self.link}: slot {slot} generation {generation} cannot be opened: "
                            f"{error.strerror}") from None
        try:
            size = os.fstat(fd).st_size
            memory = mmap.mmap(fd, size) if size else None
        finally:
            os.close(fd)
        if memory is None:
            raise SlotError(f"link {self.link}: slot {slot} is empty")
        return _Segment(generation, size, memory)


def read_tensor(segment: np.ndarray, dtype: torch.dtype, shape: Tuple[int, ...], offset: int,
                nbytes: int) -> torch.Tensor:
    """A tensor of its own, copied out of ``segment[offset:offset + nbytes]``."""
    if offset < 0 or offset + nbytes > segment.size:
        raise SlotError(f"bytes {offset}..{offset + nbytes} are outside the slot ({segment.size} bytes)")
    raw = segment[offset:offset + nbytes]
    like = _NUMPY.get(dtype)
    if like is not None:  # NumPy does the copy and reshape: one torch call instead of four
        return torch.from_numpy(raw.view(like).reshape(shape).copy())
    tensor = torch.empty(shape, dtype=dtype)
    if nbytes:
        tensor.reshape(-1).view(torch.uint8).numpy()[:] = raw
    return tensor


_NUMPY = {dtype: np.dtype(name) for dtype, name in (
    (torch.bool, "bool"), (torch.uint8, "uint8"), (torch.int8, "int8"), (torch.int16, "int16"),
    (torch.int32, "int32"), (torch.int64, "int64"), (torch.float16, "float16"), (torch.float32, "float32"),
    (torch.float64, "float64"), (torch.complex64, "complex64"), (torch.complex128, "complex128"))}


def bytes_of(tensor: torch.Tensor) -> np.ndarray:
    """The bytes of a contiguous CPU tensor as a flat NumPy view (no copy)."""
    if tensor.dtype in _NUMPY:
        return tensor.numpy().reshape(-1).view(np.uint8)
    return tensor.reshape(-1).view(torch.uint8).numpy()
