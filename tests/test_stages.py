"""Stages follow scikit-learn's conventions (get_params, checks in fit, fitted state with '_'), options are
checked, defaults are defined once, and a run is stored once even when two processes make it at once."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

from connote import registry
from connote.clustering import HDBSCANClusterer
from connote.defaults import DEFAULT_REDUCE, DEFAULT_SEED
from connote.errors import UserError
from connote.params import recorded_params
from connote.reduce import PCAReducer, UMAPReducer
from connote.study import Study, text_key
from tests.conftest import cli_env, connote_cmd


def test_get_params_and_checked_options():
    u = UMAPReducer(n_components=3, n_neighbors=7)
    assert u.get_params() == {
        "n_components": 3,
        "n_neighbors": 7,
        "metric": "cosine",
        "min_dist": 0.1,
        "random_state": DEFAULT_SEED,
    }
    assert u.set_params(n_neighbors=9) is u and u.n_neighbors == 9
    with pytest.raises(
        UserError, match="unknown UMAPReducer option 'n_neighbours'.*did you mean 'n_neighbors'"
    ):
        u.set_params(n_neighbours=9)
    with pytest.raises(
        UserError, match=r"unknown reduce option 'componentz' in 'umap:componentz=5'.*components"
    ):
        registry.reducer("umap:componentz=5")
    with pytest.raises(TypeError):
        HDBSCANClusterer(min_clustr_size=5)
    # Values are checked when fitting (and when a spec string is read), not when the object is made.
    bad = PCAReducer(n_components=0)
    with pytest.raises(UserError, match="at least 1 component"):
        bad.fit_transform(np.zeros((5, 3)))
    with pytest.raises(UserError, match="eom or leaf"):
        HDBSCANClusterer(min_cluster_size=3, cluster_selection_method="biggest").fit_predict(np.zeros((5, 2)))
    with pytest.raises(UserError, match="min samples"):
        HDBSCANClusterer(min_cluster_size=3, min_samples=0).fit_predict(np.zeros((5, 2)))


def test_hdbscan_fills_data_dependent_defaults_when_fitted():
    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(c, 0.2, (40, 2)) for c in (0, 5, 10)])
    clu = HDBSCANClusterer()
    labels = clu.fit_predict(X)
    assert clu.min_cluster_size is None and clu.min_cluster_size_ == 5  # about 1% of 120, at least 5
    assert clu.cluster_selection_method_ == "leaf"  # the default at every size
    assert (clu.labels_ == labels).all() and clu.probabilities_.shape == (120,)
    assert clu.resolved(120).get_params()["min_cluster_size"] == 5


def test_reducers_declare_their_spec_options_once():
    """Registered in registry.REDUCERS like the other stages; each class's spec_options name its __init__
    arguments (checked when a class is defined: a wrong one is a TypeError)."""
    from connote.reduce import Reducer

    for kind, target in registry.REDUCERS.items():
        cls = registry._load(target)
        assert issubclass(cls, Reducer) and cls.kind == kind
        assert {arg for arg, _ in cls.spec_options.values()} <= set(cls.param_names())
    with pytest.raises(TypeError, match="n_neighbours"):

        class Wrong(Reducer):  # noqa: F841 - defining it is the test
            spec_options = {"neighbours": ("n_neighbours", int)}

            def __init__(self, n_neighbors: int = 15):
                self.n_neighbors = n_neighbors


def test_registry_and_spec_strings_agree_on_defaults():
    a, b = registry.reducer("umap"), registry.reducer("umap:components=5,neighbors=15")
    assert a.get_params() == b.get_params() == UMAPReducer().get_params()
    assert a.random_state == DEFAULT_SEED
    assert registry.reducer(DEFAULT_REDUCE).get_params() == UMAPReducer().get_params()


class Custom:
    """A user's own reducer: no get_params, a repr with a memory address."""

    def __init__(self):
        self.scale = 2.0
        self.helper = object()

    def fit_transform(self, X):
        return np.asarray(X)[:, :2] * self.scale


def test_recorded_params_never_hold_a_memory_address():
    rec = recorded_params(Custom())
    assert rec["class"].endswith("test_stages.Custom") and rec["scale"] == 2.0
    text = json.dumps(rec)
    assert not re.search(r"0x[0-9a-f]{4,}", text)
    assert recorded_params(Custom()) == rec  # the same in every process: such a run is found again
    assert recorded_params(UMAPReducer())["class"] == "connote.reduce.UMAPReducer"


def _vector_study(path, n=300, dim=16, k=4, seed=0) -> Study:
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, k, n)
    X = rng.normal(0, 6, (k, dim))[truth] + rng.normal(0, 1, (n, dim))
    study = Study.create(path)
    set_id = study.description_set("synthetic", "synthetic", None, None, {})
    for i, v in enumerate(X):
        study.put_description(set_id, f"{i:064x}", f"item {i}")
        study.save_vector("text:minilm", text_key(f"item {i}"), v)
    study.register_embedder("text:minilm", "text", "minilm", dim, {})
    return study


def test_two_identical_cluster_commands_at_once_share_one_run(tmp_path):
    """Two real processes make the same run at the same moment: both succeed, both print the one run id
    (before: one crashed with sqlite3.IntegrityError UNIQUE constraint failed: runs.key)."""
    study = _vector_study(tmp_path / "s")
    cmd = connote_cmd("cluster", study.path, "--reduce", "pca:components=4", "--min-cluster-size", "20")
    for attempt in range(2):  # a second round: both find the stored run
        procs = [
            subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env())
            for _ in range(2)
        ]
        outs = [p.communicate(timeout=300) for p in procs]
        for p, (_out, err) in zip(procs, outs):
            assert p.returncode == 0, err
            assert "Traceback" not in err and "IntegrityError" not in err
        assert outs[0][0].strip() == outs[1][0].strip()
        assert len(study.runs()) == 3  # one per default seed, the same three for both
        if attempt == 1:
            assert all("Reused run" in err for _, err in outs)


def test_steps_run_takes_every_option_of_connote_run():
    """`connote run` and `steps.run` are one pipeline: every option of the command is a parameter."""
    import inspect

    from connote import steps
    from connote.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")  # argparse keeps subparsers here
    run = sub.choices["run"]
    rendering = ("help", "quiet", "func", "json")  # how the result is shown, not what is computed
    options = {a.dest for a in run._actions if a.dest not in rendering}
    renamed = {"output": "out"}
    params = set(inspect.signature(steps.run).parameters)
    assert {renamed.get(o, o) for o in options} <= params, sorted(
        {renamed.get(o, o) for o in options} - params
    )


def test_bad_values_are_refused_before_any_reduction(tmp_path):
    """A min cluster size of 1 is named before the (possibly long) reduction runs; --seeds '' is an error."""
    from connote import fitting, steps
    from connote.cli import main as cli_main
    from connote.features import features

    study = _vector_study(tmp_path / "s", n=40)
    calls = []

    class Spy(PCAReducer):
        def fit_transform(self, X):
            calls.append(1)
            return super().fit_transform(X)

    with pytest.raises(UserError, match="at least 2"):
        steps.cluster(study, reduce=Spy(3), min_cluster_size=1)
    assert calls == []
    with pytest.raises(UserError, match="at least 1 component"):
        fitting.plan_run(features(study), PCAReducer(n_components=0), HDBSCANClusterer(), 42)
    assert cli_main(["cluster", str(study.path), "--seeds", "", "-q"]) == 2


def test_a_run_is_planned_once_each_stage_checked_and_asked_how_it_computes_once(tmp_path, monkeypatch):
    """One plan per run (connote.fitting.plan_run): each stage's check and method once while planning; the
    estimators' own guard in fit_transform / fit_predict once more when the run is computed, not when it is
    found again."""
    from collections import Counter

    from connote import steps

    study = _vector_study(tmp_path / "s", n=40)
    calls: Counter = Counter()
    for cls in (UMAPReducer, HDBSCANClusterer):
        for name in ("check", "method"):
            real = getattr(cls, name)

            def counted(self, *args, _real=real, _key=f"{cls.__name__}.{name}"):
                calls[_key] += 1
                return _real(self, *args)

            monkeypatch.setattr(cls, name, counted)
    made = steps.cluster(study, reduce="umap:components=2,neighbors=5", seed=42)
    assert not made.reused
    assert calls == {
        "UMAPReducer.check": 2,  # the spec read while planning; fit_transform's own guard
        "UMAPReducer.method": 1,  # for the key and the reduction cache alike
        "HDBSCANClusterer.check": 2,  # the plan's resolved clusterer; fit_predict's own guard
        "HDBSCANClusterer.method": 1,
    }, calls
    calls.clear()
    again = steps.cluster(study, reduce="umap:components=2,neighbors=5", seed=42)
    assert again.reused and again.run_id == made.run_id
    assert calls == {k: 1 for k in ("UMAPReducer.check", "UMAPReducer.method", "HDBSCANClusterer.check",
                                    "HDBSCANClusterer.method")}, calls  # fmt: skip


def test_an_embedders_name_does_not_load_its_model():
    """Reading the name a run's vectors are stored under (connote.features) builds the embedder object
    only: no model is loaded, neither torch nor sentence-transformers is imported."""
    code = (
        "import sys; from connote import registry; "
        "names = [registry.text_embedder('minilm').name, registry.image_embedder('efficientnet-lite0').name]; "
        "print(names, [m for m in ('torch', 'sentence_transformers') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "['text:minilm-openvino', 'image:efficientnet-lite0'] []", (
        out.stdout + out.stderr
    )
