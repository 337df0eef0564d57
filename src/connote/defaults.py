"""The pipeline's defaults, defined once: the CLI, the Python API (:mod:`connote.steps`), the sweep and the
stages themselves all read them from here."""

from __future__ import annotations

#: Seed of every random step (UMAP's layout, PCA's randomised solvers, sampling) unless told otherwise.
DEFAULT_SEED = 42

#: Seeds a sweep (and a seed-stability check) runs unless told otherwise: one seed can be a lucky one.
DEFAULT_SEEDS = (42, 48, 112)

#: S3: the paper's most used setting.
DEFAULT_REDUCE = "umap:components=5,neighbors=15"

#: S1 and S2.
DEFAULT_DESCRIBER = "offline"
DEFAULT_TEXT_EMBEDDER = "minilm"
DEFAULT_IMAGE_EMBEDDER = "efficientnet-lite0"

#: S5: keywords per cluster.
DEFAULT_TOP_K = 10

#: Below this many items the default HDBSCAN cluster selection is 'leaf': excess-of-mass ('eom', the paper's
#: and hdbscan's default) tends to keep a small collection in two or three large clusters.
LEAF_BELOW = 500


def default_min_cluster_size(n: int) -> int:
    """S4: about 1% of the collection, at least 5 (the paper used 50-200 for 11,873 images), and never more
    than a third of a very small collection."""
    if n < 6:
        return 2
    return int(max(2, min(max(5, round(n / 100)), n // 3)))


def default_selection(n: int) -> str:
    """S4: HDBSCAN's cluster selection for ``n`` items: 'leaf' below :data:`LEAF_BELOW`, else 'eom'."""
    return "leaf" if n < LEAF_BELOW else "eom"
