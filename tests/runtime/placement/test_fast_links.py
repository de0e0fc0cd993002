"""Fast links between processes: tensors ride shared-memory slots (a frame names only the slot), workers talk to
each other directly, and both carry exactly what the msgpack path through the main process carries."""
from __future__ import annotations

import asyncio
import dataclasses
import os

import msgpack
import pytest
import torch

from dnne.runtime.graph import Graph
from dnne.runtime.loading import load_graph
from dnne.runtime.placement.codec import EXT_SLOT_TENSOR, Codec, WireError
from dnne.runtime.placement.hub import Placement
from dnne.runtime.placement.slots import PREFIX, SlotReader, SlotWriter
from dnne.runtime.runner import GraphRun


@dataclasses.dataclass
class Fragment:
    """A port-type-like dataclass holding tensors (what a node package registers with ``add_wire_type``)."""

    version: int
    tensors: dict


def relay_chain(wreg, shared_memory: bool, direct_links: bool, n: int = 40, rows: int = 300):
    """Tensors from the main process through a relay in w1 and one in w2 back to a sink in the main process."""
    g = (Graph().add("t", "Tensors", n=n, rows=rows).add("r1", "Relay").add("r2", "Relay").add("s", "Sink")
         .link("t.out", "r1.x").link("r1.y", "r2.x", capacity=3).link("r2.y", "s.x"))
    g.placement = {"r1": "w1", "r2": "w2"}
    run = GraphRun(load_graph(g, registry=wreg), wreg)
    previous = Placement.shared_memory, Placement.direct_links
    Placement.shared_memory, Placement.direct_links = shared_memory, direct_links
    try:
        result = asyncio.run(asyncio.wait_for(run.execute(), 60))
    finally:
        Placement.shared_memory, Placement.direct_links = previous
    return run, result


class TestAcrossProcesses:
    @pytest.mark.parametrize("shared_memory, direct_links", [(True, True), (True, False), (False, True)],
                             ids=["slots+direct", "slots", "direct"])
    def test_fast_paths_carry_the_same_as_the_msgpack_path(self, wreg, shared_memory, direct_links):
        """Slots and direct links, together (the default) and each alone, carry exactly what msgpack frames
        through the main process carry."""
        fast_run, fast = relay_chain(wreg, shared_memory, direct_links)
        slow_run, slow = relay_chain(wreg, False, False)
        assert fast.stop_reason == slow.stop_reason == "completed", (fast.error, slow.error)
        got = [(v, stamp) for v, stamp, _ in fast_run.nodes["s"].received]
        want = [(v, stamp) for v, stamp, _ in slow_run.nodes["s"].received]
        assert len(got) == len(want) == 40
        assert all(torch.equal(a, b) and sa == sb for (a, sa), (b, sb) in zip(got, want))
        assert all(torch.equal(v, torch.full((300, 4), float(i))) for i, (v, _) in enumerate(got))
        # with direct links the w1 -> w2 messages never touch the main process; without, all 40 are routed there
        assert slow_run.placement.routed_frames == 40
        assert fast_run.placement.routed_frames == (0 if direct_links else 40)
        link = fast.channels["r1.y -> r2.x"]
        assert link["messages"] == 40 and link["drops"] == 0 and link["max_depth"] <= 3
        if shared_memory:
            assert not os.path.exists(fast_run.placement.slot_dir)  # the slot files are gone with the run

    @pytest.mark.slow
    def test_the_combined_path_carries_every_message_run_after_run(self, wreg):
        """Slots and direct links together, 16 runs of a small relay chain: every message arrives every time (the
        direct-link race lost the last message in about 1 run in 8; ``test_peers`` shows its cause)."""
        for attempt in range(16):
            run, result = relay_chain(wreg, True, True, n=12, rows=4)
            stamps = [stamp for _, stamp, _ in run.nodes["s"].received]
            assert result.stop_reason == "completed" and stamps == list(range(12)), (attempt, stamps, result.error)

    def test_received_tensors_own_their_memory(self, wreg):
        """A consumer may keep what it received: later messages reuse the slot but never change it."""
        run, result = relay_chain(wreg, True, False)
        first = run.nodes["s"].received[0][0]
        assert torch.equal(first, torch.zeros(300, 4))  # 39 later messages went through the same 3 slots


class TestSlots:
    def test_ring_reuse_and_growth(self, tmp_path):
        """Allowlisted dataclasses holding tensors of growing and shrinking sizes come back equal."""
        codec = Codec({"Fragment": Fragment})
        writer, reader = SlotWriter(str(tmp_path), 7, 2), SlotReader(str(tmp_path), 7, 2)
        sizes = [10, 2_000, 40_000, 300_000, 10, 1_000_000, 5]
        for i, rows in enumerate(sizes):
            value = Fragment(version=i, tensors={"obs": torch.randn(rows, 3), "act": torch.arange(rows),
                                                 "done": torch.rand(rows) > 0.5, "half": torch.randn(rows).bfloat16()})
            body = codec.encode_message(value, i, "g", writer)
            back, stamp, source = codec.decode_message(body, reader)
            assert stamp == i and source == "g" and isinstance(back, Fragment) and back.version == i
            assert all(torch.equal(back.tensors[k], v) for k, v in value.tensors.items())
            assert len(os.listdir(tmp_path)) <= 2  # one file a slot: a grown slot's old file is removed

    def test_small_values_name_no_slot(self, tmp_path):
        codec = Codec()
        writer = SlotWriter(str(tmp_path), 0, 2)
        body = codec.encode_message({"x": torch.ones(3)}, 0, None, writer)
        assert PREFIX.unpack(body[:PREFIX.size])[0] == -1 and not os.listdir(tmp_path)

    def test_forged_slot_frames_are_wire_errors(self, tmp_path):
        codec = Codec()
        writer, reader = SlotWriter(str(tmp_path), 0, 2), SlotReader(str(tmp_path), 0, 2)
        good = codec.encode_message(torch.ones(1000), 0, None, writer)
        header = msgpack.packb(["float32", [1000], 0])
        cases = {
            "slot out of range": PREFIX.pack(5, 0) + good[PREFIX.size:],
            "generation never written": PREFIX.pack(0, 9) + good[PREFIX.size:],
            "no slot named": PREFIX.pack(-1, 0) + msgpack.packb([msgpack.ExtType(EXT_SLOT_TENSOR, header), 0, None]),
            "bytes beyond the slot": good[:PREFIX.size] + msgpack.packb(
                [msgpack.ExtType(EXT_SLOT_TENSOR, msgpack.packb(["float32", [1 << 30], 0])), 0, None]),
            "negative offset": good[:PREFIX.size] + msgpack.packb(
                [msgpack.ExtType(EXT_SLOT_TENSOR, msgpack.packb(["float32", [4], -8])), 0, None]),
            "short frame": b"\x00\x00",
        }
        for name, frame in cases.items():
            with pytest.raises(WireError):
                codec.decode_message(frame, reader)
        assert torch.equal(codec.decode_message(good, reader)[0], torch.ones(1000))
