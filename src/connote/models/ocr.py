"""RapidOCR 1.4.4 (PP-OCRv4 text detection and recognition, a mobile 0/180-degree angle classifier), offline.

Two ways to run it:

* :func:`read_legacy` calls RapidOCR's own pipeline as connote did before its settings were recorded;
* :func:`read` runs the same three models step by step with :class:`OcrSettings`, and spends the time
  only where there is text:

  1. a *scout* pass of the detector at the image's own size (about 1/6 of RapidOCR's work on a video
     frame, whose shorter side RapidOCR scales up to 736 px) looks for any likely text pixel; where there
     is none, nothing more is run;
  2. otherwise the detector runs at RapidOCR's own size on the whole image (the same boxes as RapidOCR),
     or, with ``regions_only``, only on the scout's regions with a margin (much less work, but the
     detector's feature maps see less of the image, so some boxes come out differently);
  3. each detected line is recognised at its own width, not padded to the widest line of a batch of 6.

The three models run on OpenVINO (``runtime="openvino"``, float32: the same numbers as onnxruntime to
float rounding, about twice as fast on one core) or on onnxruntime as RapidOCR ships them.

Both return ``(text, score)`` pairs in reading order (top to bottom, left to right). How close the texts
are to RapidOCR's own is measured by ``benchmarks/offline_describe.py``.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import asdict, dataclass

from connote.models import openvino_runtime

#: RapidOCR's detection size: the shorter side is scaled (up) to this many pixels.
DET_LIMIT_SIDE = 736
#: Recognition results below this confidence are dropped by RapidOCR itself (its ``text_score``).
RAPIDOCR_TEXT_SCORE = 0.5
CELL = 32  # the detector's input sizes are multiples of this


@dataclass(frozen=True)
class OcrSettings:
    """What determines the text read (recorded with every description)."""

    #: scout pass: the shorter side at most this many pixels (never enlarged); 0: no scout pass
    scout_side: int = 0
    #: a scout text probability above this is a likely text pixel (RapidOCR's own binarisation threshold)
    scout_threshold: float = 0.3
    #: full-size detection only on the scout's regions (faster; some boxes differ from RapidOCR's)
    regions_only: bool = False
    #: with ``regions_only``: context around each region, in 32-pixel cells of the full-size input
    margin_cells: int = 2
    #: recognise each line at its own width (False: RapidOCR's batches of 6, padded to the widest)
    rec_per_line: bool = True
    #: with ``rec_per_line``: pad each line's recognition input to a multiple of this many pixels (as
    #: RapidOCR pads a batch to its widest line), so that the models see few distinct input shapes; 0: none
    rec_width_step: int = 64
    #: run the 0/180-degree angle classifier on each detected line (RapidOCR does)
    angle: bool = True
    #: the inference engine for the three models: "openvino" (float32) or "onnxruntime"
    runtime: str = "openvino"
    #: the recognition model's precision on OpenVINO: "f32", or "bf16" (CPUs with AVX-512 BF16 or AMX:
    #: about 1.7x faster recognition, where text-heavy images spend most of their time; a few letters read
    #: differently)
    rec_precision: str = "f32"
    #: the detector's precision on OpenVINO: "f32", or "bf16" (less detection time; small text is found
    #: less reliably: benchmarks/results/offline_describe.md)
    det_precision: str = "f32"

    def record(self) -> dict:
        return asdict(self)


def rapidocr_det_size(height: int, width: int, limit: int = DET_LIMIT_SIDE) -> tuple[int, int]:
    """RapidOCR's detection input size: shorter side scaled up to ``limit``, rounded to multiples of 32."""
    ratio = limit / min(height, width) if min(height, width) < limit else 1.0
    return int(round(int(height * ratio) / CELL) * CELL), int(round(int(width * ratio) / CELL) * CELL)


def scout_size(height: int, width: int, side: int) -> tuple[int, int]:
    """The scout pass's input size: shorter side at most ``side``, multiples of 32, at least 32."""
    scale = min(1.0, side / min(height, width))
    return max(CELL, round(height * scale / CELL) * CELL), max(CELL, round(width * scale / CELL) * CELL)


def regions(marked, margin: int) -> list[tuple[int, int, int, int]]:
    """Rectangles (top, left, bottom, right; in cells, end exclusive) covering the marked cells of a
    boolean grid, each grown by ``margin`` cells and clipped; overlapping rectangles are merged."""
    import numpy as np

    ys, xs = np.nonzero(marked)
    if len(ys) == 0:
        return []
    import cv2

    n, labels, stats, _ = cv2.connectedComponentsWithStats(marked.astype(np.uint8), connectivity=8)
    h, w = marked.shape
    rects = []
    for i in range(1, n):
        x, y, cw, ch = stats[i, :4]
        rects.append(
            [max(0, y - margin), max(0, x - margin), min(h, y + ch + margin), min(w, x + cw + margin)]
        )
    merged = True
    while merged:  # grown rectangles may overlap: merge until none do
        merged = False
        for i in range(len(rects)):
            for j in range(i + 1, len(rects)):
                a, b = rects[i], rects[j]
                if a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]:
                    rects[i] = [min(a[0], b[0]), min(a[1], b[1]), max(a[2], b[2]), max(a[3], b[3])]
                    del rects[j]
                    merged = True
                    break
            if merged:
                break
    return [(int(r[0]), int(r[1]), int(r[2]), int(r[3])) for r in sorted(rects)]


_lock = threading.Lock()


def _session(model_path: str, threads: int):
    """An onnxruntime session on ``threads`` threads with the memory arena on (RapidOCR turns it off, so
    that each call allocates its feature maps afresh; reusing them saves about a tenth of the time)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 4
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model_path, sess_options=opts, providers=["CPUExecutionProvider"])


RUNTIMES = ("openvino", "onnxruntime")


PRECISIONS = ("f32", "bf16")


def check_precisions(runtime: str, rec_precision: str, det_precision: str) -> None:
    """A clear message for a precision that is unknown or that ``runtime`` does not offer (the values
    alone: whether this CPU computes in bfloat16 is :func:`check_runtime`'s question)."""
    from connote.errors import UserError

    for precision in (rec_precision, det_precision):
        if precision not in PRECISIONS:
            raise UserError(f"unknown OCR precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
        if precision != "f32" and runtime != "openvino":
            raise UserError(f"OCR precision {precision} needs the openvino runtime")


def check_runtime(runtime: str, rec_precision: str = "f32", det_precision: str = "f32") -> None:
    """A clear message for an unknown runtime or precision, for OpenVINO when it is not installed, and for
    bfloat16 where the CPU cannot compute in it (OpenVINO would quietly use float32: not what is recorded)."""
    from connote.errors import UserError

    if runtime not in RUNTIMES:
        raise UserError(f"unknown OCR runtime {runtime!r}: choose one of {', '.join(RUNTIMES)}")
    if runtime == "openvino" and not openvino_runtime.available():
        raise UserError(
            "the offline describer runs its models on OpenVINO, which is not installed here "
            "(pip install openvino), or choose runtime=bundled (onnxruntime and PyTorch)"
        )
    check_precisions(runtime, rec_precision, det_precision)
    for option, precision in (("ocr_rec_precision", rec_precision), ("ocr_det_precision", det_precision)):
        if precision == "bf16" and runtime == "openvino" and not openvino_runtime.has_bf16():
            raise UserError(
                f"{option}=bf16: this CPU cannot compute in bfloat16 (it needs AVX-512 BF16 or AMX); "
                "leave the option out for float32"
            )


@functools.lru_cache(maxsize=4)
def engine(
    threads: int = 0, runtime: str = "onnxruntime", rec_precision: str = "f32", det_precision: str = "f32"
):
    """A RapidOCR engine (its three models), cached per process, thread setting and runtime.

    ``threads`` = 0: RapidOCR exactly as it comes (onnxruntime, its default threads: all cores). Otherwise
    each model runs on ``threads`` threads, on onnxruntime with its memory arena on, or on OpenVINO
    (:class:`OpenVinoModel`). Calls from several Python threads may share one engine: onnxruntime sessions
    are thread-safe, OpenVINO models keep one compiled copy per thread, and :func:`read` keeps no state in
    the engine.
    """
    from rapidocr_onnxruntime import RapidOCR
    from rapidocr_onnxruntime.main import DEFAULT_CFG_PATH
    from rapidocr_onnxruntime.utils import read_yaml, update_model_path

    eng = RapidOCR()
    if threads > 0:
        check_runtime(runtime, rec_precision, det_precision)
        paths = update_model_path(read_yaml(DEFAULT_CFG_PATH))
        det, cls, rec = (paths[k]["model_path"] for k in ("Det", "Cls", "Rec"))
        eng.text_cls.cls_batch_num = 1  # one input shape (the same results: each line is classified alone)
        if runtime == "openvino":
            eng.text_det.infer = openvino_runtime.OpenVinoModel(
                det, threads, static_shapes=4, precision=det_precision
            )
            eng.text_cls.infer = openvino_runtime.OpenVinoModel(cls, threads)
            eng.text_rec.session = openvino_runtime.OpenVinoModel(rec, threads, precision=rec_precision)
        else:
            eng.text_det.infer.session = _session(det, threads)
            eng.text_cls.infer.session = _session(cls, threads)
            eng.text_rec.session.session = _session(rec, threads)
    return eng


def read_legacy(bgr) -> list[tuple[str, float]]:
    """RapidOCR's whole pipeline with its default settings (connote's output before recorded settings)."""
    with _lock:  # RapidOCR's __call__ keeps per-call state in the engine
        result, _ = engine(0)(bgr)
    return [(text, float(score)) for _box, text, score in (result or [])]


def _normalise(det, pixels):
    """RapidOCR's detector normalisation of a BGR uint8 array -> (1, 3, H, W) float32.

    (x / 255 - mean) / std per channel, computed in float32 one channel at a time (RapidOCR's own goes
    through float64 for the whole image; the results agree to float32 rounding)."""
    import numpy as np

    h, w = pixels.shape[:2]
    out = np.empty((1, 3, h, w), dtype=np.float32)
    for c in range(3):
        scale = np.float32(1.0 / (255.0 * det.std[c]))
        shift = np.float32(det.mean[c] / det.std[c])
        np.multiply(pixels[:, :, c], scale, out=out[0, c], casting="unsafe")
        out[0, c] -= shift
    return out


def _detect(eng, bgr, settings: OcrSettings):
    """Text boxes (4 points each, in ``bgr``'s pixels) in reading order; [] when none."""
    import cv2
    import numpy as np

    det = eng.text_det
    h, w = bgr.shape[:2]
    if settings.scout_side > 0:
        sh, sw = scout_size(h, w, settings.scout_side)
        scout = det.infer(_normalise(det, cv2.resize(bgr, (sw, sh))))[0][0, 0]
        ys, xs = np.nonzero(scout > settings.scout_threshold)
        if len(ys) == 0:
            return []
    elif settings.regions_only:
        raise ValueError("regions_only needs the scout pass (scout_side > 0)")
    rh, rw = rapidocr_det_size(h, w)
    full = cv2.resize(bgr, (rw, rh))
    if settings.regions_only:
        marked = np.zeros((rh // CELL, rw // CELL), dtype=bool)
        marked[((ys + 0.5) * rh / sh / CELL).astype(int), ((xs + 0.5) * rw / sw / CELL).astype(int)] = True
        pred = np.zeros((1, 1, rh, rw), dtype=np.float32)
        for top, left, bottom, right in regions(marked, settings.margin_cells):
            y0, x0, y1, x1 = top * CELL, left * CELL, bottom * CELL, right * CELL
            part = det.infer(_normalise(det, full[y0:y1, x0:x1]))[0]
            np.maximum(pred[:, :, y0:y1, x0:x1], part, out=pred[:, :, y0:y1, x0:x1])
    else:
        pred = det.infer(_normalise(det, full))[0]
    boxes, _scores = det.postprocess_op(pred, (h, w))
    boxes = det.filter_tag_det_res(boxes, (h, w))
    if len(boxes) == 0:
        return []
    return eng.sorted_boxes(boxes)


def rec_width(height: int, width: int, step: int, model_height: int = 48, min_width: int = 320) -> int:
    """The recognition input width of one line: its own width at the model's height (at least RapidOCR's
    minimum of 320 px), rounded up to a multiple of ``step`` (0: not rounded)."""
    own = max(min_width, int(model_height * width / height))
    return -(-own // step) * step if step > 0 else own


def _recognise(rec, crop, step: int) -> tuple[str, float]:
    """One line through RapidOCR's recogniser, padded to :func:`rec_width` (RapidOCR's own resizing,
    normalisation and CTC decoding)."""
    _c, model_height, min_width = rec.rec_image_shape[:3]
    h, w = crop.shape[:2]
    ratio = rec_width(h, w, step, model_height, min_width) / model_height
    batch = rec.resize_norm_img(crop, ratio)[None].astype("float32")
    preds = rec.session(batch)[0]
    return rec.postprocess_op(preds, False, wh_ratio_list=[w / h], max_wh_ratio=ratio)[0]


def read(bgr, settings: OcrSettings, threads: int = 1) -> list[tuple[str, float]]:
    """The text lines of one BGR uint8 image with ``settings``; recognition only where text was found."""
    import numpy as np

    eng = engine(threads, settings.runtime, settings.rec_precision, settings.det_precision)
    bgr, _rh, _rw = eng.preprocess(np.ascontiguousarray(bgr))  # RapidOCR's size limits (2000 / 30 px)
    bgr, _record = eng.maybe_add_letterbox(bgr, {})  # very flat or very low images: padded as RapidOCR does
    boxes = _detect(eng, bgr, settings)
    if not boxes:
        return []
    crops = eng.get_crop_img_list(bgr, boxes)
    if settings.angle:
        crops, _cls, _t = eng.text_cls(crops)
    if settings.rec_per_line:
        recognised = [_recognise(eng.text_rec, crop, settings.rec_width_step) for crop in crops]
    else:
        recognised, _t = eng.text_rec(crops)
    return [(text, float(score)) for text, score, *_ in recognised if float(score) >= RAPIDOCR_TEXT_SCORE]
