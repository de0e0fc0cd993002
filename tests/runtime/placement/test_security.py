"""Nothing a graph file or a frame holds runs a program or crashes a process: worker interpreters come from the
user, the cross-process decoder is bounded (fuzzed), a worker checks its first frame."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import msgpack
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dnne.runtime.errors import GraphError
from dnne.runtime.loading import load_graph
from dnne.runtime.placement import wire
from dnne.runtime.placement.codec import (EXT_DATACLASS, EXT_DEVICE, EXT_SLOT_TENSOR, EXT_TENSOR, EXT_TUPLE, Codec,
                                          WireError)
from dnne.runtime.placement.interpreters import allowed_interpreters, worker_interpreters
from dnne.runtime.placement.worker import start_config
from dnne.runtime.registry import default_registry
from dnne.runtime.runner import GraphRun

ROOT = Path(__file__).resolve().parents[3]
CARTPOLE = ROOT / "graphs" / "cartpole_ppo.json"
DNNE = [sys.executable, "-m", "dnne.runtime.cli"]
ENV_GROUP = ("env", "or", "action", "step")


def placed_cartpole(workers: dict | None = None) -> dict:
    document = json.loads(CARTPOLE.read_text())
    document["placement"] = {node_id: "envs" for node_id in ENV_GROUP}
    if workers is not None:
        document["workers"] = workers
    return document


def dnne(*args: str, env: dict | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*DNNE, *args], capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, **(env or {})))


def spy_interpreter(tmp_path: Path) -> tuple[Path, Path]:
    """A program that records that it ran, then behaves as Python (what a hostile file would name)."""
    marker = tmp_path / "it-ran"
    script = tmp_path / "spy.sh"
    script.write_text(f"#!/bin/sh\ntouch {marker}\nexec {sys.executable} \"$@\"\n")
    script.chmod(0o755)
    return script, marker


class TestWorkerInterpreters:
    @pytest.mark.parametrize("python", ["/usr/bin/python3", "../bin/python", 42, "", "py 3"])
    def test_a_file_may_not_name_a_program(self, python):
        """Anything but an alias under workers.NAME.python is a validation error with its code and place."""
        with pytest.raises(GraphError) as error:
            load_graph(placed_cartpole({"envs": {"python": python}}), registry=default_registry())
        issue = next(i for i in error.value.errors if i.code == "worker_python_not_alias")
        assert issue.where == "/workers/envs/python"

    def test_unknown_worker_option_is_refused(self):
        with pytest.raises(GraphError, match="unknown option 'cwd'"):
            load_graph(placed_cartpole({"envs": {"cwd": "/"}}), registry=default_registry())

    @pytest.mark.nodes
    def test_an_alias_runs_only_what_the_user_allowed(self):
        graph = load_graph(placed_cartpole({"envs": {"python": "isaac"}}), registry=default_registry())
        assert worker_interpreters(graph, {"isaac": "/opt/isaac/python"}) == {"envs": "/opt/isaac/python"}
        with pytest.raises(GraphError) as error:
            worker_interpreters(graph, {})
        assert [i.code for i in error.value.errors] == ["unknown_worker_python"]
        with pytest.raises(GraphError, match="unknown_worker_python"):
            GraphRun(graph, default_registry())  # the library refuses it too, before anything starts

    def test_aliases_from_the_configuration_and_the_command_line(self, tmp_path):
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"worker_python": {"a": "/one", "b": "/two"}}))
        assert allowed_interpreters(["b=/three"], config) == {"a": "/one", "b": "/three"}
        with pytest.raises(ValueError, match="ALIAS=PATH"):
            allowed_interpreters(["/usr/bin/python"], config)
        config.write_text(json.dumps({"worker_python": {"a": 1}}))
        with pytest.raises(ValueError, match="worker_python"):
            allowed_interpreters([], config)

    def test_cli_validate_and_run_refuse_a_path_and_run_nothing(self, tmp_path):
        script, marker = spy_interpreter(tmp_path)
        path = tmp_path / "g.json"
        path.write_text(json.dumps(placed_cartpole({"envs": {"python": str(script)}})))
        checked = dnne("validate", str(path))
        assert checked.returncode == 2 and "worker_python_not_alias" in checked.stderr
        assert "Traceback" not in checked.stderr
        ran = dnne("run", str(path), "--run-dir", str(tmp_path / "r"), "--max-steps", "100", "-q")
        assert ran.returncode == 2 and "worker_python_not_alias" in ran.stderr
        assert not marker.exists()

    def test_cli_alias_unknown_then_allowed(self, tmp_path):
        script, marker = spy_interpreter(tmp_path)
        path = tmp_path / "g.json"
        path.write_text(json.dumps(placed_cartpole({"envs": {"python": "spy"}})))
        env = {"XDG_CONFIG_HOME": str(tmp_path / "config")}
        refused = dnne("validate", str(path), env=env)
        assert refused.returncode == 2 and "unknown_worker_python" in refused.stderr
        assert dnne("validate", str(path), "--worker-python", f"spy={script}", env=env).returncode == 0
        (tmp_path / "config" / "dnne").mkdir(parents=True)
        (tmp_path / "config" / "dnne" / "config.json").write_text(json.dumps({"worker_python": {"spy": str(script)}}))
        ran = dnne("run", str(path), "--run-dir", str(tmp_path / "r"), "--set", "run.max_iterations=1", "-q", env=env)
        assert ran.returncode == 0, ran.stderr
        assert marker.exists()  # the interpreter the user allowed ran the worker

    def test_resume_does_not_run_what_a_run_directory_names(self, tmp_path):
        """A run directory is data: a graph.json edited to name a program is refused on --resume (exit 2)."""
        path = tmp_path / "g.json"
        path.write_text(json.dumps(placed_cartpole()))
        run_dir = tmp_path / "r"
        first = dnne("run", str(path), "--run-dir", str(run_dir), "--set", "run.max_iterations=1", "-q")
        assert first.returncode == 0, first.stderr
        script, marker = spy_interpreter(tmp_path)
        saved = json.loads((run_dir / "graph.json").read_text())
        saved["workers"] = {name: {"python": str(script)} for name in set(saved["placement"].values())}
        (run_dir / "graph.json").write_text(json.dumps(saved))
        resumed = dnne("run", "--resume", str(run_dir), "--set", "run.max_iterations=2", "-q")
        assert resumed.returncode == 2 and "worker_python_not_alias" in resumed.stderr
        assert not marker.exists()


def nested_ext_frame(depth: int, code: int = EXT_TUPLE) -> bytes:
    data = msgpack.packb([])
    for _ in range(depth):
        data = msgpack.packb(msgpack.ExtType(code, data))
    return data


class TestBoundedDecoder:
    def test_deeply_nested_extension_types_are_a_wire_error_not_a_crash(self):
        """The 874-byte frame of 240 nested tuples crashed the process (SIGSEGV); run in a child to see a crash."""
        frame = nested_ext_frame(240)
        assert len(frame) < 1000
        child = subprocess.run(
            [sys.executable, "-c", "import sys\nfrom dnne.runtime.placement.codec import Codec, WireError\n"
             "try:\n    Codec().decode(sys.stdin.buffer.read())\nexcept WireError as e:\n    print('refused', e)\n"],
            input=frame, capture_output=True, timeout=120)
        assert child.returncode == 0, child.stderr.decode()[-500:]
        assert child.stdout.startswith(b"refused")

    def test_honest_nesting_still_decodes(self):
        codec = Codec()
        value = ((((1,),),),)
        assert codec.decode(codec.encode(value)) == value
        with pytest.raises(WireError, match="nested deeper"):
            codec.decode(nested_ext_frame(40))

    def test_frame_size_limits(self):
        with pytest.raises(ValueError, match="limit"):
            wire.frame(wire.MESSAGE, 0, b"\0" * wire.MAX_FRAME)

        class Reader:
            async def readexactly(self, n):
                return (wire.MAX_FRAME).to_bytes(4, "big")

        import asyncio

        with pytest.raises(ValueError, match="bad frame length"):
            asyncio.run(wire.read_frame(Reader()))

    def test_a_worker_checks_its_first_frame(self):
        codec = Codec()
        good = wire.frame(wire.CONTROL, 0, codec.encode(["start", {"graph": {}}]))[4:]
        assert start_config(good) == {"graph": {}}
        for bad in (wire.frame(wire.MESSAGE, 0, codec.encode(["start", {}])),
                    wire.frame(wire.CONTROL, 0, codec.encode(["stop", "x"])),
                    wire.frame(wire.CONTROL, 0, codec.encode(["start"])),
                    wire.frame(wire.CONTROL, 0, b"\xc1")):
            with pytest.raises(WireError):
                start_config(bad[4:])


_CODES = st.sampled_from([EXT_TENSOR, EXT_DATACLASS, EXT_TUPLE, EXT_DEVICE, EXT_SLOT_TENSOR, 0, 100, 127])
_leaf = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(), st.text(max_size=8),
                  st.binary(max_size=24))


def _ext(children):
    return st.builds(lambda code, inner: msgpack.ExtType(code, msgpack.packb(inner, default=_pack_default)),
                     _CODES, children)


def _pack_default(value):
    raise TypeError(type(value))


_values = st.recursive(_leaf, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(st.text(max_size=4), children, max_size=4), _ext(children),
    st.builds(lambda code, raw: msgpack.ExtType(code, raw), _CODES, st.binary(max_size=40))), max_leaves=30)


class TestDecoderFuzz:
    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.binary(max_size=300))
    def test_random_bytes(self, data):
        """Random bytes decode or raise WireError; nothing else escapes."""
        try:
            Codec(default_registry().wire_types).decode(data)
        except WireError:
            pass

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(_values, st.integers(0, 300))
    def test_structured_frames(self, value, depth):
        """Well-formed msgpack of arbitrary extension types, nested to any depth, wrapped as a message."""
        data = msgpack.packb([value, 0, None])
        for _ in range(depth):
            data = msgpack.packb(msgpack.ExtType(EXT_TUPLE, data))
        codec = Codec(default_registry().wire_types)
        try:
            codec.decode_message(data)
        except WireError:
            pass

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(list(range(1, 8))), st.lists(st.integers(-3, 2**40), max_size=5), st.binary(max_size=64))
    def test_tensor_headers(self, dtype_index, shape, raw):
        """Forged tensor headers (any shape for any byte count) are refused, never built wrongly."""
        names = ["bool", "uint8", "int8", "int16", "int32", "float32", "float64", "nope"]
        header = msgpack.packb([names[dtype_index], shape])
        data = msgpack.packb(msgpack.ExtType(EXT_TENSOR, len(header).to_bytes(2, "big") + header + raw))
        try:
            tensor = Codec().decode(data)
        except WireError:
            return
        assert isinstance(tensor, torch.Tensor) and list(tensor.shape) == shape
        assert tensor.numel() * tensor.element_size() == len(raw)


class TestWorkerRefusesBadFrames:
    """A frame that breaks the link protocol fails the worker's run, naming the sender; its links end."""

    class _Run:
        def __init__(self) -> None:
            self.failures: list[tuple[str, str, str, BaseException]] = []

        def fail(self, node_id: str, node_type: str, phase: str, cause: BaseException) -> None:
            self.failures.append((node_id, node_type, phase, cause))

    @pytest.mark.parametrize("frame", [wire.credit(5, 1), wire.frame(wire.MESSAGE, 9, b"x"),
                                       wire.frame(wire.CONTROL, 0, b"\xc1")])
    def test_from_the_main_process(self, frame: bytes):
        """A credit on a link the worker does not send on, a message on one it does not receive on and a control
        frame that does not decode: the run fails for the worker, naming the main process, and listening stops."""
        import asyncio

        from dnne.runtime.placement.endpoint import Endpoint
        from dnne.runtime.placement.worker import _Worker

        async def scenario() -> list[tuple[str, str, str, BaseException]]:
            worker = _Worker("w", lambda data: None)
            run = self._Run()
            worker.run, worker.mirror = run, object()
            worker.endpoint = Endpoint(Codec(), worker.route, {}, {7: 2})
            reader = asyncio.StreamReader()
            declared = wire.frame(wire.DECLARE, 7, Codec().encode({}))  # the link's setup, as at a real start
            reader.feed_data(declared + frame + wire.frame(wire.CONTROL, 0, Codec().encode(["arm"])))
            await asyncio.wait_for(worker.listen(reader), 5)
            assert not worker.armed  # nothing after the bad frame was applied
            assert await worker.endpoint.receive(7) is None  # the link into the worker ended
            return run.failures

        failures = asyncio.run(scenario())
        assert [(node, kind, phase) for node, kind, phase, _ in failures] == [("w", "worker", "run")]
        assert isinstance(failures[0][3], WireError) and "the main process sent a bad frame" in str(failures[0][3])
