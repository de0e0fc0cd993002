"""The msgpack codec: tensors of every dtype, allowlisted dataclasses, nested plain data; refusals; Python 3.8."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import msgpack
import pytest
import torch

from dnne.runtime.placement import codec as codec_module
from dnne.runtime.placement.codec import EXT_DATACLASS, EXT_TENSOR, Codec, WireError
from dnne.runtime.registry import default_registry
from dnne.runtime.types import Token

try:
    from dnne.nodes.envs.spaces import Box, Discrete
    from dnne.nodes.types import Dones, PolicyOutput
except ModuleNotFoundError:  # hidden (hide_nodes): the test of the node package's dataclasses is marked nodes
    pass


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec(default_registry().wire_types)


def roundtrip(codec: Codec, value):
    return codec.decode(codec.encode(value))


@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.int8, torch.int32, torch.int64, torch.float16,
                                   torch.bfloat16, torch.float32, torch.float64])
def test_tensor_dtypes(codec, dtype):
    tensor = (torch.arange(24).reshape(2, 3, 4) % 5).to(dtype)
    back = roundtrip(codec, tensor)
    assert back.dtype == dtype and back.shape == tensor.shape and torch.equal(back, tensor)


def test_tensor_shapes_and_layouts(codec):
    for tensor in (torch.tensor(3.5), torch.empty(0, 4), torch.randn(64, 4).t(), torch.randn(5, requires_grad=True)):
        back = roundtrip(codec, tensor)
        assert back.shape == tensor.shape and torch.equal(back, tensor.detach())


def test_decoded_tensor_is_writable_and_owns_its_memory(codec):
    data = codec.encode(torch.zeros(3))
    back = codec.decode(data)
    back += 1  # no warning, no effect on the frame
    assert torch.equal(codec.decode(data), torch.zeros(3))


def test_runtime_dataclasses(codec):
    assert roundtrip(codec, Token("update")) == Token("update")


@pytest.mark.nodes
def test_node_dataclasses(codec):
    output = PolicyOutput(torch.tensor([0, 1]), torch.randn(2), torch.randn(2), {"logits": torch.randn(2, 2)},
                          torch.randn(2, 4), version=7)
    dones = Dones(torch.tensor([True, False]), torch.tensor([False, False]), torch.randn(2, 4))
    for value in (output, dones):
        back = roundtrip(codec, value)
        assert type(back) is type(value)
        for f in dataclasses.fields(value):
            a, b = getattr(value, f.name), getattr(back, f.name)
            if isinstance(a, dict):
                assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
            elif isinstance(a, torch.Tensor):
                assert torch.equal(a, b)
            else:
                assert a == b
    assert roundtrip(codec, Discrete(2)) == Discrete(2)
    box = Box(torch.tensor([-1.0, -2.0]), torch.tensor([1.0, 2.0]))
    assert roundtrip(codec, box) == box


def test_nested_plain_data(codec):
    value = {"a": [1, 2.5, None, True, "x", b"raw"], "b": {"c": (1, (2, 3)), 4: "int key"},
             "t": [torch.ones(2), {"deep": torch.zeros(1, dtype=torch.int64)}], "device": torch.device("cpu")}
    back = roundtrip(codec, value)
    assert back["a"] == value["a"] and back["b"] == value["b"] and back["device"] == torch.device("cpu")
    assert isinstance(back["b"]["c"], tuple) and torch.equal(back["t"][1]["deep"], value["t"][1]["deep"])


def test_message(codec):
    value, stamp, source = codec.decode_message(codec.encode_message(torch.ones(2), 5, "g1"))
    assert torch.equal(value, torch.ones(2)) and stamp == 5 and source == "g1"


def test_refuses_unregistered_dataclasses_and_objects(codec):
    @dataclasses.dataclass
    class Secret:
        x: int

    with pytest.raises(WireError, match="add_wire_type"):
        codec.encode(Secret(1))
    with pytest.raises(WireError, match="may not cross"):
        codec.encode(object())
    with pytest.raises(WireError):
        codec.encode(torch.nn.Linear(2, 2))


def test_refuses_unknown_names_and_extensions_on_decode(codec):
    """A frame naming a class off the allowlist (or a module path) builds nothing and imports nothing."""
    forged = msgpack.packb(msgpack.ExtType(EXT_DATACLASS, msgpack.packb(["os.system", {"command": "true"}])))
    with pytest.raises(WireError, match="allowlist"):
        codec.decode(forged)
    with pytest.raises(WireError, match="extension type 99"):
        codec.decode(msgpack.packb(msgpack.ExtType(99, b"")))
    with pytest.raises(WireError):
        codec.decode(b"\xc1")  # never used in msgpack
    # a codec with an empty allowlist refuses even the node library's classes
    with pytest.raises(WireError):
        Codec().decode(codec.encode(Token()))


def tensor_frame(header: list | bytes, raw: bytes) -> bytes:
    """A tensor extension as another process could write it: header length, msgpack header, raw bytes."""
    head = header if isinstance(header, bytes) else msgpack.packb(header)
    return msgpack.packb(msgpack.ExtType(EXT_TENSOR, len(head).to_bytes(2, "big") + head + raw))


def test_decoded_tensor_headers_are_remembered_only_when_short_and_sound(codec):
    """The decoder's header cache holds a header once a tensor with it decoded, and never a long one: a stranger's
    frames cannot fill it with large headers, and a header whose bytes did not match is checked again next time."""
    codec_module._PARSED.clear()
    good = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    assert torch.equal(codec.decode(codec.encode(good)), good)
    assert len(codec_module._PARSED) == 1
    with pytest.raises(WireError, match="does not match"):
        codec.decode(tensor_frame(["float32", [5, 7]], b"\0" * 12))
    ones = b"".join(b"\xcf" + (1).to_bytes(8, "big") for _ in range(40))  # 1 as a uint64: 9 bytes each
    long_header = b"\x92\xa7float32\xdc\x00\x29" + ones + b"\x03"  # [float32, [1 x 40, 3]], 372 bytes
    assert codec.decode(tensor_frame(long_header, b"\0" * 12)).shape == (1,) * 40 + (3,)
    assert len(codec_module._PARSED) == 1
    for _ in range(2):  # decoded again from the cache: the same checks hold
        with pytest.raises(WireError, match="does not match"):
            codec.decode(tensor_frame(["float32", [2, 3]], b"\0" * 20))
        assert torch.equal(codec.decode(codec.encode(good)), good)


PROTOCOL = ("wire.py", "codec.py", "endpoint.py", "mirror.py", "slots.py")


@pytest.mark.parametrize("module", PROTOCOL)
def test_protocol_modules_parse_as_python_38(module):
    """The worker side of the protocol is written for Python 3.8 (Isaac Gym): its grammar, no runtime imports."""
    source = (Path(__file__).parents[3] / "runtime" / "placement" / module).read_text()
    tree = ast.parse(source, feature_version=(3, 8))
    imports = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert all(node.level == 1 for node in imports), "the protocol must not import from the runtime package"
