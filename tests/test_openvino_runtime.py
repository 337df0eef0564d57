"""The OpenVINO runtime's model cache: written once, read back, never trusted when damaged, and no
obstacle where the cache cannot be written; each thread its own compiled copy."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from connote.errors import UserError
from connote.models import ocr, openvino_runtime

ov = pytest.importorskip("openvino")


def _relu_model():
    ops = ov.opset13
    x = ops.parameter([-1, 3], ov.Type.f32, name="x")
    return ov.Model([ops.relu(x)], [x], "relu")


def _counting():
    calls = []

    def convert():
        calls.append(1)
        return _relu_model()

    return convert, calls


def test_converted_once_then_read_from_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    convert, calls = _counting()
    first = openvino_runtime.cached_model("relu", convert)
    files = sorted(p.name for p in (tmp_path / "connote" / "openvino").iterdir())
    assert [f.rsplit(".", 1)[1] for f in files] == ["bin", "xml"] and not any(
        f.startswith(".") for f in files
    )
    second = openvino_runtime.cached_model("relu", convert)
    assert len(calls) == 1 and first.get_friendly_name() == second.get_friendly_name() == "relu"


def test_a_damaged_cache_entry_is_converted_again(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    convert, calls = _counting()
    openvino_runtime.cached_model("relu", convert)
    (xml,) = (tmp_path / "connote" / "openvino").glob("*.xml")
    xml.write_bytes(b"\x00garbage<")
    model = openvino_runtime.cached_model("relu", convert)
    assert len(calls) == 2 and model.get_friendly_name() == "relu"
    assert b"garbage" not in xml.read_bytes()  # written afresh


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_cache_converts_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    tmp_path.chmod(0o500)
    try:
        convert, calls = _counting()
        assert openvino_runtime.cached_model("relu", convert).get_friendly_name() == "relu"
        assert openvino_runtime.cached_model("relu", convert) is not None and len(calls) == 2
    finally:
        tmp_path.chmod(0o700)


def test_a_cache_path_that_is_a_file_converts_in_memory(tmp_path, monkeypatch):
    (tmp_path / "connote").write_text("not a folder")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    convert, calls = _counting()
    assert openvino_runtime.cached_model("relu", convert).get_friendly_name() == "relu" and calls == [1]


def test_each_thread_gets_its_own_compiled_copy():
    model = openvino_runtime.OpenVinoModel(_relu_model, threads=1)
    x = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    out, requests = [], []

    def work():
        for _ in range(20):
            out.append(model(x)[0])
        requests.append(model._request())  # kept alive: ids stay distinct

    threads = [threading.Thread(target=work) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(out) == 60 and all(np.array_equal(o, [[0.0, 0.5, 2.0]]) for o in out)
    assert len({id(r) for r in requests}) == 3


def test_missing_openvino_is_a_clear_message(monkeypatch):
    monkeypatch.setattr(openvino_runtime, "available", lambda: False)
    with pytest.raises(UserError, match="OpenVINO, which is not installed.*runtime=bundled"):
        ocr.check_runtime("openvino")
    ocr.check_runtime("onnxruntime")  # the bundled runtime needs nothing more


def test_recurring_shapes_get_a_fixed_shape_copy_up_to_the_limit():
    model = openvino_runtime.OpenVinoModel(_relu_model, threads=1, static_shapes=1)
    a = np.array([[-1.0, 0.5, 2.0]], dtype=np.float32)
    b = np.ones((4, 3), dtype=np.float32) * -2
    for _ in range(3):
        assert np.array_equal(model(a)[0], [[0.0, 0.5, 2.0]])
        assert np.array_equal(model(b)[0], np.zeros((4, 3)))
    static = model._local.__dict__["static"]
    assert list(static) == [(1, 3)]  # the first shape to recur; the limit keeps the second dynamic
    assert [p.get_partial_shape().is_static for p in static[(1, 3)].model_inputs] == [True]


def test_map_runs_batches_on_several_streams_and_keeps_their_order():
    model = openvino_runtime.OpenVinoModel(_relu_model, threads=2, streams=2)
    batches = [[np.full((i + 1, 3), i - 2.5, dtype=np.float32)] for i in range(6)]
    for _ in range(2):  # the queue is made once and used again
        outputs = model.map(batches)
        assert [o[0].shape for o in outputs] == [(i + 1, 3) for i in range(6)]
        assert [float(o[0].max()) for o in outputs] == [0.0, 0.0, 0.0, 0.5, 1.5, 2.5]
    assert model.map([]) == []
    compiled = model._queue[0].get_compiled_model()  # float32 on two streams, whatever the CPU offers
    assert compiled.get_property("INFERENCE_PRECISION_HINT") == ov.Type.f32
    assert compiled.get_property("NUM_STREAMS") == 2
