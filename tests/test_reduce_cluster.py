"""S3 (PCA, UMAP, spec strings) and S4 (HDBSCAN, relabelling, default min cluster size)."""

from __future__ import annotations

import numpy as np
import pytest

from connote import registry
from connote.clustering import HDBSCANClusterer, default_min_cluster_size, relabel_by_size
from connote.errors import UserError
from connote.reduce import PCAReducer, UMAPReducer


def anisotropic(n: int = 200, d: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    scales = np.array([10, 7, 5, 3, 2, 1.5, 1, 0.8, 0.5, 0.3, 0.2, 0.1])[:d]
    rotation, _ = np.linalg.qr(rng.normal(size=(d, d)))
    return (rng.normal(size=(n, d)) * scales) @ rotation + 5.0


def blobs(sizes=(30, 20, 10), d: int = 8, spread: float = 0.3, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = np.eye(d)[: len(sizes)] * 20.0
    X = np.vstack([c + rng.normal(scale=spread, size=(k, d)) for c, k in zip(centres, sizes, strict=True)])
    truth = np.repeat(np.arange(len(sizes)), sizes)
    return X, truth


# ------------------------------------------------------------------------------------------ PCA
def test_pca_components():
    X = anisotropic()
    red = PCAReducer(n_components=4)
    Y = red.fit_transform(X)
    assert Y.shape == (200, 4) and Y.dtype == np.float32
    assert red.n_components_ == 4
    # the same subspace as numpy's SVD of the centred data (up to the sign of each component)
    Xc = X - X.mean(axis=0)
    U, S, _ = np.linalg.svd(Xc, full_matrices=False)
    ref = U[:, :4] * S[:4]
    for j in range(4):
        assert min(np.abs(Y[:, j] - ref[:, j]).max(), np.abs(Y[:, j] + ref[:, j]).max()) < 1e-3


@pytest.mark.parametrize("share", [0.5, 0.8, 0.95])
def test_pca_variance_picks_the_fewest_components(share):
    X = anisotropic()
    S = np.linalg.svd(X - X.mean(axis=0), compute_uv=False)
    ratios = np.cumsum(S**2) / np.sum(S**2)
    want = int(np.argmax(ratios >= share)) + 1  # fewest components reaching the share
    assert ratios[want - 1] >= share and (want == 1 or ratios[want - 2] < share)
    red = PCAReducer(n_components=None, variance=share)
    Y = red.fit_transform(X)
    assert red.n_components_ == want
    assert Y.shape == (200, want)
    assert red.explained_variance_ == pytest.approx(ratios[want - 1], rel=1e-6)


def test_pca_with_more_components_than_items_is_capped_with_a_note():
    X = anisotropic(n=6)
    red = PCAReducer(n_components=10)
    Y = red.fit_transform(X)
    assert Y.shape == (6, 6)
    assert red.notes_ and "6 components" in red.notes_[0]


def test_spec_strings():
    r = registry.reducer("pca:components=7", seed=3)
    assert isinstance(r, PCAReducer) and r.n_components == 7 and r.random_state == 3
    assert r.spec == "pca:components=7"
    r = registry.reducer("pca:variance=0.8")
    assert r.variance == 0.8 and r.n_components is None and r.spec == "pca:variance=0.8"
    u = registry.reducer("umap")
    assert isinstance(u, UMAPReducer) and u.spec == "umap:components=5,neighbors=15"
    u = registry.reducer("umap:components=10,neighbours=30,metric=euclidean,min_dist=0.0", seed=None)
    assert (u.n_components, u.n_neighbors, u.metric, u.min_dist, u.random_state) == (
        10,
        30,
        "euclidean",
        0.0,
        None,
    )
    assert u.spec == "umap:components=10,neighbors=30,metric=euclidean,min_dist=0"
    assert isinstance(registry.reducer("pca:components=2"), PCAReducer)
    obj = PCAReducer(3)
    assert registry.reducer(obj) is obj


@pytest.mark.parametrize(
    "spec, message",
    [
        ("tsne", "unknown reduction"),
        ("umap:foo=1", "unknown reduce option"),
        ("umap:components=five", "bad number"),
        ("umap:variance=0.5", "PCA option"),
        ("pca:neighbors=5", "PCA takes"),
        ("pca:components=5,variance=0.8", "either components"),
        ("pca:variance=1.5", "between 0 and 1"),
        ("pca:variance=0", "between 0 and 1"),
        ("pca:variance=lots", "bad number"),
        ("pca:components", "key=value"),
    ],
)
def test_spec_errors_are_user_errors(spec, message):
    with pytest.raises(UserError, match=message):
        registry.reducer(spec)


# ------------------------------------------------------------------------------------------ HDBSCAN
def test_hdbscan_finds_well_separated_blobs_largest_first():
    X, truth = blobs()
    X = np.vstack([X, np.full((1, X.shape[1]), 100.0)])  # one far-away point
    clu = HDBSCANClusterer(min_cluster_size=5)
    labels = clu.fit_predict(X)
    assert labels[-1] == -1
    assert set(labels[:-1]) == {0, 1, 2}
    # clusters numbered by size: the 30-point blob is 0, the 20-point blob 1, the 10-point blob 2
    assert np.array_equal(labels[:-1], truth)
    assert clu.probabilities_.shape == (61,)
    assert clu.get_params()["min_cluster_size"] == 5 and clu.min_cluster_size_ == 5


def test_hdbscan_small_and_invalid_inputs():
    X, _ = blobs(sizes=(3,))
    labels = HDBSCANClusterer(min_cluster_size=5).fit_predict(X)
    assert labels.tolist() == [-1, -1, -1]
    with pytest.raises(UserError, match="at least 2"):
        HDBSCANClusterer(min_cluster_size=1).fit_predict(X)


def test_relabel_by_size():
    assert relabel_by_size(np.array([5, 5, 2, -1, 2, 2, 7])).tolist() == [1, 1, 0, -1, 0, 0, 2]
    assert relabel_by_size(np.array([3, 3, 1, 1])).tolist() == [0, 0, 1, 1]  # ties: first seen first
    assert relabel_by_size(np.array([-1, -1])).tolist() == [-1, -1]
    assert relabel_by_size(np.array([], dtype=int)).tolist() == []


@pytest.mark.parametrize(
    "n, want",
    [
        (1, 2),
        (4, 2),
        (5, 2),
        (6, 2),
        (9, 3),
        (12, 4),
        (15, 5),
        (30, 5),
        (500, 5),
        (1000, 10),
        (11_873, 119),
        (100_000, 1000),
    ],
)
def test_default_min_cluster_size(n, want):
    assert default_min_cluster_size(n) == want


# ------------------------------------------------------------------------------------------ UMAP
@pytest.mark.slow
def test_umap_on_a_small_set_keeps_blobs_apart():
    X, truth = blobs(sizes=(12, 12, 12), d=10, spread=0.5, seed=1)
    red = registry.reducer("umap:components=2,neighbors=8", seed=42)
    Y = red.fit_transform(X)
    assert Y.shape == (36, 2) and Y.dtype == np.float32 and np.isfinite(Y).all()
    centres = np.array([Y[truth == k].mean(axis=0) for k in range(3)])
    within = max(np.linalg.norm(Y[truth == k] - centres[k], axis=1).max() for k in range(3))
    between = min(np.linalg.norm(centres[a] - centres[b]) for a in range(3) for b in range(a + 1, 3))
    assert between > within
    # too few items for the asked components and neighbours: shrunk, with a note
    tiny = UMAPReducer(n_components=5, n_neighbors=15)
    assert tiny.effective(6) == (4, 5)
    assert tiny.effective(100) == (5, 15)
    with pytest.raises(UserError, match="at least 4"):
        tiny.fit_transform(X[:3])


@pytest.mark.parametrize(
    "spec", ["pca:components=0", "pca:components=-3", "umap:components=0", "umap:neighbors=1"]
)
def test_out_of_range_numbers_are_user_errors(spec):
    with pytest.raises(UserError):
        registry.reducer(spec)


# ------------------------------------------------------------------------------------------ MST
def _hdbscan_reference(X, m, method="eom"):
    import hdbscan

    model = hdbscan.HDBSCAN(
        min_cluster_size=m, cluster_selection_method=method, algorithm="prims_kdtree", core_dist_n_jobs=1
    )
    return relabel_by_size(model.fit_predict(X)), model.probabilities_


def test_mst_of_a_textbook_example():
    # Four points on a line at 0, 1, 3, 7 with core distances 0: the MST is the three gaps.
    from connote.mst import mutual_reachability_mst

    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    mst = mutual_reachability_mst(X, np.zeros(4))
    assert [(int(a), int(b), float(w)) for a, b, w in mst] == [(0, 1, 1.0), (1, 2, 2.0), (2, 3, 4.0)]
    # Core distances lift edges to max(core(a), core(b), distance).
    mst = mutual_reachability_mst(X, np.array([5.0, 0.0, 0.0, 0.0]))
    assert sorted(mst[:, 2].tolist()) == [2.0, 4.0, 5.0]


def test_core_distances_count_the_point_itself_first():
    from connote.mst import core_distances

    X = np.array([[0.0], [1.0], [3.0], [7.0]])
    core = core_distances(X, [1, 2])
    assert core[1].tolist() == [1.0, 1.0, 2.0, 4.0]
    assert core[2].tolist() == [3.0, 2.0, 3.0, 6.0]


@pytest.mark.parametrize("dims", [2, 5, 20])
def test_prims_gives_hdbscans_own_labels(dims):
    """connote's Prim's builds hdbscan's prims_kdtree tree edge for edge: the same labels and
    probabilities, also with ties (duplicates and points on an integer grid)."""
    rng = np.random.default_rng(dims)
    centres = rng.normal(0, 4, (4, dims))
    X = np.vstack([c + rng.normal(0, 1, (60, dims)) for c in centres] + [rng.uniform(-12, 12, (30, dims))])
    X[::7] = np.round(X[::7])  # ties
    X[-5:] = X[:5]  # duplicates
    for m, method in [(5, "eom"), (15, "eom"), (10, "leaf")]:
        clu = HDBSCANClusterer(min_cluster_size=m, cluster_selection_method=method)
        assert clu.resolved_algorithm(*X.shape) == "prims"
        labels = clu.fit_predict(X)
        ref_labels, ref_probs = _hdbscan_reference(X, m, method)
        assert np.array_equal(labels, ref_labels)
        assert np.allclose(clu.probabilities_, ref_probs)


def test_hdbscan_at_sizes_shares_one_neighbour_search(monkeypatch):
    from connote import mst
    from connote.clustering import hdbscan_at_sizes

    X, _ = blobs()
    calls = []
    real = mst.core_distances
    monkeypatch.setattr(mst, "core_distances", lambda X, ks: calls.append(sorted(ks)) or real(X, ks))
    out = hdbscan_at_sizes(X, [3, 5, 8], min_samples=None, selection="eom")
    assert calls == [[3, 5, 8]]
    for m in (3, 5, 8):
        alone = HDBSCANClusterer(min_cluster_size=m).fit_predict(X)
        assert np.array_equal(out[m][0], alone)
        assert out[m][1].shape == (len(X),)


def test_auto_leaves_large_or_non_euclidean_data_to_hdbscan():
    from connote.clustering import PRIMS_MAX_N

    assert HDBSCANClusterer().resolved_algorithm(PRIMS_MAX_N + 1, 5) == "best"
    assert HDBSCANClusterer(metric="manhattan").resolved_algorithm(100, 5) == "best"
    assert HDBSCANClusterer(algorithm="boruvka_kdtree").resolved_algorithm(100, 5) == "boruvka_kdtree"
    X, truth = blobs()
    labels = HDBSCANClusterer(min_cluster_size=5, algorithm="boruvka_kdtree").fit_predict(X)
    assert np.array_equal(labels, truth)
