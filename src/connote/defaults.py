"""The pipeline's defaults, defined once: the CLI, the Python API (:mod:`connote.steps`), the sweep and the
stages themselves all read them from here."""

from __future__ import annotations

#: Seed of every random step (UMAP's layout, PCA's randomised solvers, sampling) unless told otherwise.
DEFAULT_SEED = 42

#: Seeds a sweep (and a seed-stability check) runs unless told otherwise: one seed can be a lucky one.
DEFAULT_SEEDS = (42, 48, 112)

#: S3: the paper's most used setting (UMAP's components and neighbours, also UMAPReducer's defaults).
DEFAULT_UMAP_COMPONENTS = 5
DEFAULT_UMAP_NEIGHBORS = 15
DEFAULT_REDUCE = f"umap:components={DEFAULT_UMAP_COMPONENTS},neighbors={DEFAULT_UMAP_NEIGHBORS}"

#: S3: PCA's components when neither a number nor a share of the variance is given (the paper's other size).
DEFAULT_PCA_COMPONENTS = 10

#: S1 and S2.
DEFAULT_DESCRIBER = "offline"
DEFAULT_TEXT_EMBEDDER = "minilm"
DEFAULT_IMAGE_EMBEDDER = "efficientnet-lite0"

#: S5: keywords per cluster.
DEFAULT_TOP_K = 10

#: Labels: the typical descriptions of a cluster shown to the LLM that names it.
DEFAULT_LABEL_DESCRIPTIONS = 5

#: assign-outliers --method knn: the neighbours an outlier's cluster is voted by.
DEFAULT_OUTLIER_NEIGHBORS = 10

#: The validation's samples, as in the study: image pairs rated (RQ1), image sets per cluster and
#: images per set matched (RQ2).
DEFAULT_PAIRS = 500
DEFAULT_SETS_PER_CLUSTER = 5
DEFAULT_SET_SIZE = 3


def default_min_cluster_size(n: int) -> int:
    """S4: about 1% of the collection, at least 5 (the paper used 50-200 for 11,873 images), and never more
    than a third of a very small collection."""
    if n < 6:
        return 2
    return int(max(2, min(max(5, round(n / 100)), n // 3)))


def default_selection(n: int) -> str:
    """S4: HDBSCAN's cluster selection for ``n`` items: 'leaf' at every size. Measured
    (benchmarks/results/default_selection.md): with excess of mass ('eom', the paper's and hdbscan's
    default) every seed of the MultiClimate frames' transcripts put 90% of the clustered texts in one of
    two clusters, and the seeds of the frames' offline descriptions agreed at mean ARI 0.43; 'leaf' gave
    16-18 clusters (largest 23%) and 0.60, and 0.54. On COCO-128's captions and on generated collections
    of 1,000 to 100,000 items with known groups the two did about equally well. Its price is a higher
    outlier share (the run page says so when it is high)."""
    return "leaf"
