"""Streaming embed: a description set (or the images) is read from the study's SQLite a chunk at a time,
each chunk's vectors stored before the next is read; a run killed mid-way keeps what it stored. And the
fake server's opt-in near-unique paragraphs, which the scale benchmark embeds."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from connote import embedders as embed_mod
from connote.embedders.base import ImageEmbedder, TextEmbedder
from connote.study import Study, text_key
from connote.testing import make_images

SRC = str(Path(__file__).parents[1] / "src")


def hash_vector(text: str, dim: int = 8) -> np.ndarray:
    digest = hashlib.sha256(text.encode()).digest()
    return np.frombuffer(digest[: dim * 4], dtype=np.uint32).astype(np.float32) / 2**32


class Recording(TextEmbedder):
    """A deterministic text embedder that records every batch it is given."""

    name = "text:recording"
    spec = "recording"

    def __init__(self, batch_size: int = 1000):
        self.batch_size = batch_size
        self.batches: list[list[str]] = []

    def embed_texts(self, texts):
        self.batches.append(list(texts))
        return np.stack([hash_vector(t) for t in texts])


def texts_of(n: int) -> list[str]:
    """``n`` descriptions with some repeated texts (equal texts share one vector)."""
    return [f"description number {i % (n - 4)} of a test image" for i in range(n)]


def study_with_texts(path: Path, texts: list[str]) -> tuple[Study, int]:
    study = Study.create(path, images_root=path.parent)
    set_id = study.description_set("s", "import", None, None, {})
    with study.transaction():
        for i, t in enumerate(texts):
            study.put_description(set_id, hashlib.sha256(str(i).encode()).hexdigest(), t)
    return study, set_id


def stored(study: Study, name: str, texts) -> np.ndarray:
    return study.load_vectors(name, [text_key(t) for t in texts])


def test_embed_reads_the_set_a_chunk_at_a_time(tmp_path, monkeypatch):
    texts = texts_of(23)
    study, set_id = study_with_texts(tmp_path / "chunked", texts)
    monkeypatch.setattr(Study, "descriptions", lambda *a, **k: pytest.fail("the whole set was loaded"))
    emb = Recording(batch_size=1000)  # a batch larger than a chunk: the chunk bounds what it sees
    s = embed_mod.embed_description_set(study, emb, set_id, progress=False, chunk=5)
    assert max(len(b) for b in emb.batches) <= 5 and len(emb.batches) >= 4
    seen = [t for b in emb.batches for t in b]
    assert sorted(seen) == sorted(set(texts))  # every distinct text once, none twice across chunks
    assert (s.total, s.computed, s.reused) == (19, 19, 0)
    monkeypatch.undo()

    whole, whole_id = study_with_texts(tmp_path / "whole", texts)
    one = Recording(batch_size=1000)
    embed_mod.embed_description_set(whole, one, whole_id, progress=False, chunk=10_000)
    assert len(one.batches) == 1
    assert np.array_equal(stored(study, emb.name, texts), stored(whole, one.name, texts))
    assert np.array_equal(stored(study, emb.name, texts), np.stack([hash_vector(t) for t in texts]))

    again = Recording()
    s2 = embed_mod.embed_description_set(study, again, set_id, progress=False, chunk=5)
    assert again.batches == [] and (s2.computed, s2.reused) == (0, 19)


KILLED = """
import hashlib, os, signal, sys
import numpy as np
from connote import embedders as embed_mod
from connote.embedders.base import TextEmbedder
from connote.study import Study

class Dies(TextEmbedder):
    name, spec, batch_size = "text:recording", "recording", 3
    calls = 0
    def embed_texts(self, texts):
        Dies.calls += 1
        if Dies.calls == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        out = []
        for t in texts:
            d = hashlib.sha256(t.encode()).digest()
            out.append(np.frombuffer(d[:32], dtype=np.uint32).astype(np.float32) / 2**32)
        return np.stack(out)

study = Study.open(sys.argv[1])
embed_mod.embed_description_set(study, Dies(), int(sys.argv[2]), progress=False, chunk=6)
"""


def test_a_run_killed_mid_way_keeps_what_it_stored(tmp_path):
    texts = texts_of(20)
    study, set_id = study_with_texts(tmp_path / "study", texts)
    study.close()
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(KILLED), str(tmp_path / "study"), str(set_id)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": SRC},
    )
    assert proc.returncode == -9, proc.stderr  # killed in its third batch
    study = Study.open(tmp_path / "study")
    first = [t for _, t in next(study.iter_descriptions(set_id, chunk=6))]
    kept = study.vectors.present("text:recording")
    assert kept == {text_key(t) for t in first}  # the first chunk (two batches) was stored
    emb = Recording(batch_size=3)
    s = embed_mod.embed_description_set(study, emb, set_id, progress=False, chunk=6)
    assert not {text_key(t) for b in emb.batches for t in b} & kept  # nothing stored is computed again
    assert (s.computed, s.reused) == (16 - len(kept), len(kept))
    assert np.array_equal(stored(study, emb.name, texts), np.stack([hash_vector(t) for t in texts]))


class Pixels(ImageEmbedder):
    name = "image:pixels"
    spec = "pixels"
    batch_size = 64

    def __init__(self):
        self.batches: list[int] = []

    def embed_images(self, images):
        self.batches.append(len(images))
        return np.stack([np.asarray(im.resize((2, 2)), dtype=np.float32).ravel() for im in images])


def test_images_are_embedded_a_chunk_at_a_time_and_a_broken_one_is_named(tmp_path):
    from connote import steps

    make_images(tmp_path / "images" / "sub", 7)
    study = steps.init(tmp_path / "study", tmp_path / "images", progress=False)
    (tmp_path / "images" / "sub" / "img_004.png").write_bytes(b"not a png any more")
    emb = Pixels()
    s = embed_mod.embed_images(study, emb, progress=False, chunk=3)
    assert max(emb.batches) <= 3 and sum(emb.batches) == 6
    assert s.total == 7 and s.computed == 7 and [p for p, _ in s.failed] == ["sub/img_004.png"]
    assert len(study.vectors.present(emb.name)) == 6


def test_ray_executor_sends_the_local_batches_in_bounded_datasets(monkeypatch):
    from connote.executors import ray as ray_ex
    from connote.executors.local import LocalExecutor

    datasets = []

    def fake_dataset(self, embedder, kind, batches):
        datasets.append([[k for k, _ in b] for b in batches])
        for b in batches:
            yield [k for k, _ in b], np.zeros((len(b), 2), np.float32), []

    monkeypatch.setattr(ray_ex, "EMBED_CHUNK", 10)
    monkeypatch.setattr(ray_ex.RayExecutor, "_embed_chunk", fake_dataset)
    read = []

    def chunks():
        for i in range(0, 30, 5):
            read.append(i)
            yield [(str(j), "t") for j in range(i, min(i + 5, 30))]

    out = ray_ex.RayExecutor("127.0.0.1:1").embed(None, "text", chunks(), 3)
    next(out)
    assert read == [0, 5]  # only what one dataset needs was read
    list(out)
    assert [sum(map(len, d)) for d in datasets] == [10, 10, 10]
    local = Recording(batch_size=3)
    list(
        LocalExecutor().embed(
            local, "text", ([(str(j), str(j)) for j in range(i, i + 5)] for i in range(0, 30, 5)), 3
        )
    )
    assert [b for d in datasets for b in d] == local.batches  # the very batches the local executor makes


def test_the_fake_server_writes_near_unique_paragraphs_when_asked():
    from connote.describers.checks import check_description
    from connote.testing.fake_content import image_text, varied_text
    from connote.testing.fake_openai import FakeOpenAI

    hashes = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(5000)]
    varied = {varied_text(h) for h in hashes}
    assert len(varied) >= 4990 and len({image_text(h) for h in hashes}) <= 800
    assert all(check_description(t) is None for t in list(varied)[:300])

    def url(i: int) -> str:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("RGB", (4, 4), (i, 0, 0)).save(buf, format="PNG")
        return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()

    def ask(srv, i: int) -> str:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": url(i)}}]}],
        }
        req = urllib.request.Request(
            srv.base_url + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", "Authorization": "Bearer sk-x"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)["choices"][0]["message"]["content"]

    with FakeOpenAI() as plain, FakeOpenAI(varied_texts=True) as rich:
        default, opted = [ask(plain, i) for i in range(30)], [ask(rich, i) for i in range(30)]
    url_hashes = [hashlib.sha256(url(i).encode()).hexdigest() for i in range(30)]
    assert default == [image_text(h) for h in url_hashes]  # tests keep the template paragraphs
    assert opted == [varied_text(h) for h in url_hashes] and len(set(opted)) == 30


def test_export_is_written_a_chunk_at_a_time(tmp_path):
    from derived_fixtures import build

    from connote import labels, metadata, steps

    d = build(tmp_path)
    p = d.paths
    (tmp_path / "m.csv").write_text(f"image,likes\n{p[0]},5\n{p[-1]},7\n")
    metadata.import_metadata(d.study, tmp_path / "m.csv")
    labels.label(d.study, d.run_id, progress=False)
    columns, chunks = steps.iter_export_rows(d.study, d.run_id, chunk=4)
    parts = list(chunks)
    assert max(len(c) for c in parts) == 4 and len(parts) >= 3
    rows = [r for c in parts for r in c]
    assert rows == steps.export_rows(d.study, d.run_id) and list(rows[0]) == columns
    likes = {r["image"]: r["likes"] for r in rows}
    assert likes[p[0]] == 5.0 and likes[p[-1]] == 7.0 and sum(v is not None for v in likes.values()) == 2
