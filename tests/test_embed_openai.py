"""OpenAI text embeddings against the loopback fake server: batched, resumable, cost logged, key not stored."""

from __future__ import annotations

import pytest

from connote import steps
from connote.embedders.openai_text import OpenAITextEmbedder
from connote.errors import UserError
from connote.study import Study, text_key

pytest.importorskip("openai")
fake = pytest.importorskip("connote.testing.fake_openai")

KEY = "sk-test-never-stored-123"
SPEC = "openai:text-embedding-3-small,dimensions=64,batch_size=4"


def make_study(path, n=10):
    study = Study.create(path)
    set_id = study.description_set("texts", "synthetic", None, None, {})
    for i in range(n):
        study.put_description(
            set_id, f"{i:064x}", f"The image evokes theme number {i} and some feeling {i % 3}."
        )
    return study


@pytest.fixture(autouse=True)
def _key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)


def test_batched_cost_logged_cached_and_key_not_stored(tmp_path):
    study = make_study(tmp_path / "s")
    with fake.FakeOpenAI(api_key=KEY) as srv:
        s = steps.embed(study, SPEC, base_url=srv.base_url, progress=False)[0]
        assert (s.embedder, s.total, s.computed, s.dim) == (
            "text:openai:text-embedding-3-small@64",
            10,
            10,
            64,
        )
        reqs = [r for r in srv.requests if r["path"] == "embeddings"]
        assert [r["n"] for r in reqs] == [4, 4, 2]

        calls = study.calls("embed")
        assert len(calls) == 3 and all(c["status"] == "ok" and c["backend"] == "openai" for c in calls)
        assert all(c["input_tokens"] > 0 for c in calls)
        tokens = sum(c["input_tokens"] for c in calls)
        assert study.total_cost() == pytest.approx(tokens * 0.02 / 1e6)

        # The vectors are the server's, in input order.
        texts = study.descriptions(study.resolve_description_set()["id"])
        t = texts[f"{3:064x}"]
        v = study.load_vectors(s.embedder, [text_key(t)])[0]
        assert v == pytest.approx(fake.unit_vector(t, 64), abs=1e-6)

        # A second run reuses every vector: no request.
        again = steps.embed(study, SPEC, base_url=srv.base_url, progress=False)[0]
        assert (again.computed, again.reused) == (0, 10)
        assert len([r for r in srv.requests if r["path"] == "embeddings"]) == 3

    feats = steps.features(study, "text", text=SPEC)
    assert feats.X.shape == (10, 64)
    # The key is nowhere in the study.
    for f in study.path.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f


def test_resumes_after_a_failure(tmp_path, monkeypatch):
    study = make_study(tmp_path / "s")
    with fake.FakeOpenAI(api_key=KEY) as srv:
        original = OpenAITextEmbedder.embed_texts

        def first_batch_then_server_dies(self, texts):
            out = original(self, texts)
            self._client, self.base_url = None, "http://127.0.0.1:9/v1"  # the next request finds nobody
            return out

        monkeypatch.setattr(OpenAITextEmbedder, "embed_texts", first_batch_then_server_dies)
        with pytest.raises(UserError, match="again to continue"):
            steps.embed(study, SPEC, base_url=srv.base_url, max_retries=0, progress=False)
    monkeypatch.undo()
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    assert [c["status"] for c in study.calls("embed")] == ["ok", "error"]

    with fake.FakeOpenAI(api_key=KEY) as srv:
        s = steps.embed(study, SPEC, base_url=srv.base_url, progress=False)[0]
        assert (s.computed, s.reused) == (6, 4)
        assert [r["n"] for r in srv.requests if r["path"] == "embeddings"] == [4, 2]


def test_transient_errors_are_retried(tmp_path):
    study = make_study(tmp_path / "s", n=3)
    with fake.FakeOpenAI(api_key=KEY) as srv:
        faults = [(429, {"Retry-After": "0.01"}), (500, None)]
        serve = srv._embeddings

        def flaky(h, raw):  # the first two embedding requests fail as a busy API does
            if faults:
                status, headers = faults.pop(0)
                srv._log({"path": "embeddings", "image": None, "status": status})
                h._error(status, "try again", headers)
                return
            serve(h, raw)

        srv._embeddings = flaky
        s = steps.embed(study, SPEC, base_url=srv.base_url, progress=False)[0]
        assert s.computed == 3
        assert [r["status"] for r in srv.requests if r["path"] == "embeddings"] == [429, 500, 200]
    assert [c["status"] for c in study.calls("embed")] == ["ok"]


def test_key_problems_are_clear(tmp_path, monkeypatch):
    study = make_study(tmp_path / "s", n=2)
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(UserError, match="OPENAI_API_KEY"):
        steps.embed(study, SPEC, progress=False)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-wrong")
    with fake.FakeOpenAI(api_key=KEY) as srv, pytest.raises(UserError, match="Check OPENAI_API_KEY"):
        steps.embed(study, SPEC, base_url=srv.base_url, progress=False)
    assert not study.vector_dir("text:openai:text-embedding-3-small@64").exists()
    with pytest.raises(UserError, match="unknown openai embedding option"):
        OpenAITextEmbedder("text-embedding-3-small,dims=3")
