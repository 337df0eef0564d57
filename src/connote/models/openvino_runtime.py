"""OpenVINO as the CPU runtime of the offline describer's models (RapidOCR's three ONNX models and
EfficientNet-Lite0): about twice as fast as onnxruntime or PyTorch on one core, with the same numbers to
float32 rounding.

Float32 throughout (``INFERENCE_PRECISION_HINT=f32``): OpenVINO would otherwise compute in bfloat16 on
CPUs that have it, which reads measurably different text (benchmarks/results/offline_describe*.md) and
would make the output depend on the machine.
"""

from __future__ import annotations

import functools
import os
import threading
from pathlib import Path
from typing import Any


def _properties(threads: int, precision: str = "f32", streams: int = 1) -> dict:
    """Compiled-model properties: float32 (or ``precision``), ``threads`` threads in all, not pinned to
    cores (several images at once, one per core, must not share a core). ``streams`` > 1: that many
    inferences at once, the threads shared out among them (each stream one batch)."""
    return {
        "INFERENCE_PRECISION_HINT": precision,
        "INFERENCE_NUM_THREADS": max(1, threads),
        "NUM_STREAMS": max(1, streams),
        "ENABLE_CPU_PINNING": False,
        "PERFORMANCE_HINT": "LATENCY" if streams <= 1 else "THROUGHPUT",
    }


def available() -> bool:
    try:
        import openvino  # noqa: F401
    except ImportError:
        return False
    return True


def has_bf16() -> bool:
    """Whether OpenVINO computes in bfloat16 on this CPU (AVX-512 BF16 or AMX)."""
    return "BF16" in core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def version() -> str:
    import openvino as ov

    return ov.get_version()


@functools.lru_cache(maxsize=1)
def core():
    import openvino as ov

    return ov.Core()


class OpenVinoModel:
    """One model compiled for the CPU, called as RapidOCR calls its sessions: ``model(x) -> [outputs]``.

    ``source``: an ONNX file's path, or a function returning an ``openvino.Model`` (called once). Each
    calling Python thread gets its own compiled copy on ``threads`` threads (compiled on that thread's
    first call, well under a second), so that one image per core runs in parallel and no infer request is
    shared between threads.
    """

    #: a shape seen this often in one thread gets a fixed-shape copy (with ``static_shapes``)
    STATIC_AFTER = 2

    def __init__(
        self, source, threads: int = 1, static_shapes: int = 0, precision: str = "f32", streams: int = 1
    ):
        self.source = source
        #: OpenVINO's inference precision: "f32", or "bf16" (used where the CPU has it, else f32)
        self.precision = precision
        self.threads = max(1, threads)
        #: inferences run at once by :meth:`map` (its own compiled copy; calls stay on one stream)
        self.streams = max(1, streams)
        self._queue: Any = None  # an openvino AsyncInferQueue, made on the first map()
        self._queue_lock = threading.Lock()  # one map() at a time on the queue
        #: compile a fixed-shape copy for up to this many recurring input shapes per thread (the detector
        #: on a collection of same-sized images runs about a fifth faster with it); 0: never
        self.static_shapes = static_shapes
        self._local = threading.local()
        self._lock = threading.Lock()
        self._model = None

    def _read(self):
        """The model, read (or made) once; the caller holds the lock."""
        if self._model is None:
            source = self.source
            self._model = core().read_model(str(source)) if isinstance(source, str | Path) else source()
        return self._model

    def prepare(self) -> None:
        """Read the model now (before a progress bar starts) rather than on the first call."""
        with self._lock:
            self._read()

    def _request(self):
        request = getattr(self._local, "request", None)
        if request is None:
            with self._lock:  # one model object compiled by one thread at a time
                compiled = core().compile_model(
                    self._read(), "CPU", _properties(self.threads, self.precision)
                )
            request = self._local.request = compiled.create_infer_request()
        return request

    def _static_request(self, shape: tuple):
        """This thread's fixed-shape copy for ``shape``: made once the shape recurs, up to
        ``static_shapes`` of them; None otherwise."""
        local = self._local.__dict__
        static = local.setdefault("static", {})
        if shape in static or len(static) >= self.static_shapes:
            return static.get(shape)
        seen = local.setdefault("seen", {})
        if len(seen) > 1000:  # many one-off shapes (memes of every size): forget them
            seen.clear()
        seen[shape] = seen.get(shape, 0) + 1
        if seen[shape] < self.STATIC_AFTER:
            return None
        with self._lock:
            model = self._read().clone()
            model.reshape(list(shape))
            compiled = core().compile_model(model, "CPU", _properties(self.threads, self.precision))
        static[shape] = compiled.create_infer_request()
        return static[shape]

    def __call__(self, x, *more) -> list:
        """The outputs for input ``x`` (and ``more`` inputs, in the model's order: a text model's token ids,
        attention mask and token types)."""
        import numpy as np

        request = self._static_request(tuple(x.shape)) if self.static_shapes and not more else None
        result = (request or self._request()).infer([x, *more])
        return [np.array(result[i], copy=True) for i in range(len(result))]

    def map(self, batches) -> list:
        """The outputs of each of ``batches`` (each a list of inputs, as for a call), in their order, run
        ``streams`` at a time on a compiled copy of its own. Batches of equal work keep every stream
        busy: on two cores two streams of one thread each do a text model's batches about a tenth faster
        than one stream of two threads, which wait on each other at every layer."""
        import numpy as np
        import openvino as ov

        batches = list(batches)
        outputs: list = [None] * len(batches)

        def done(request, i):
            outputs[i] = [np.array(request.get_output_tensor(k).data, copy=True) for k in range(n_out)]

        with self._lock:
            if self._queue is None:
                compiled = core().compile_model(
                    self._read(), "CPU", _properties(self.threads, self.precision, self.streams)
                )
                self._queue = ov.AsyncInferQueue(compiled, self.streams)
            n_out = len(self._read().outputs)
            queue = self._queue
        with self._queue_lock:
            queue.set_callback(done)
            for i, inputs in enumerate(batches):
                queue.start_async(list(inputs), i)
            queue.wait_all()
        return outputs


def cache_dir() -> Path:
    """Where converted models are kept between processes: ~/.cache/connote/openvino (XDG_CACHE_HOME
    respected)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "connote" / "openvino"


def cached_model(name: str, convert):
    """``convert()`` (-> openvino.Model) once per machine: saved as IR under :func:`cache_dir` and read
    from there later. The file name carries OpenVINO's version; the IR is written under a temporary name
    and renamed into place (its .xml last), so a crash never leaves a half-written model that is read.
    Where the cache cannot be written (read-only home), the model is converted in memory each time."""
    target = cache_dir() / f"{name}-ov{version().split('-')[0]}.xml"
    if target.is_file() and target.with_suffix(".bin").is_file():
        try:
            return core().read_model(str(target))
        except Exception:  # noqa: BLE001 - a damaged cache entry: convert again
            pass
    model = convert()
    try:
        import openvino as ov

        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.stem}-{os.getpid()}-{threading.get_ident()}.xml")
        ov.save_model(model, str(tmp), compress_to_fp16=False)
        os.replace(tmp.with_suffix(".bin"), target.with_suffix(".bin"))
        os.replace(tmp, target)
    except OSError:
        pass
    return model
