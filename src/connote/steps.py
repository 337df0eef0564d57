"""The pipeline as plain functions over a study folder: the same names and defaults as the CLI.

    >>> import connote
    >>> study = connote.init("study", images="photos/")
    >>> connote.describe(study)                       # S1 (offline describer by default)
    >>> connote.embed(study)                          # S2 all-MiniLM-L6-v2
    >>> run_id = connote.cluster(study)               # S3 UMAP + S4 HDBSCAN
    >>> connote.explain(study, run_id)                # S5 TF-IDF keywords
    >>> connote.report(study, run_id)                 # study/report/index.html

Each step reads what it needs from the study and writes its results back; re-running a step reuses what
is already there.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connote import registry
from connote.clustering import HDBSCANClusterer, default_min_cluster_size, default_selection
from connote.describers.base import PAPER_PROMPT
from connote.errors import UserError
from connote.study import Study, text_key

DEFAULT_REDUCE = "umap:components=5,neighbors=15"
DEFAULT_SEED = 42


def _study(study: Study | str | os.PathLike) -> Study:
    return study if isinstance(study, Study) else Study.open(study)


# ---------------------------------------------------------------------------------------------- init
@dataclass
class InitSummary:
    found: int
    ok: int
    distinct: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def init(study_dir: str | os.PathLike, images: str | os.PathLike, *, progress: bool = True) -> Study:
    """Make (or update) a study folder and register every image under ``images``.

    Unreadable files are recorded as skipped with their reason (see ``Study.images(status='skipped')``).
    """
    from connote import images as images_mod

    root = Path(images)
    if not root.exists():
        raise UserError(f"{root}: no such folder")
    if not root.is_dir():
        raise UserError(f"{root}: not a folder")
    study = Study.create(study_dir, root)
    records = images_mod.scan(root, progress=progress)
    study.upsert_images(records)
    found = {r["path"] for r in records}
    stale = [r["path"] for r in study.images(status=None) if r["path"] not in found]
    if stale:
        with study.transaction() as con:
            con.executemany("DELETE FROM images WHERE path=?", [(p,) for p in stale])
    return study


def init_summary(study: Study) -> InitSummary:
    rows = study.images(status=None)
    ok = [r for r in rows if r["status"] == "ok"]
    return InitSummary(
        found=len(rows),
        ok=len(ok),
        distinct=len({r["sha256"] for r in ok}),
        skipped=[(r["path"], r["reason"]) for r in rows if r["status"] == "skipped"],
    )


# ---------------------------------------------------------------------------------------------- S1
def describe(
    study: Study | str | os.PathLike,
    describer="offline",
    *,
    prompt: str | None = None,
    name: str | None = None,
    retry_flagged: bool = False,
    max_cost: float | None = None,
    progress: bool = True,
    dry_run: bool = False,
    batch: bool = False,
    batch_poll: float = 30.0,
    batch_wait: bool = True,
    **describer_options,
):
    """S1: describe every distinct image that has no description in the set yet. Returns a summary
    (a DescribeEstimate with ``dry_run``: nothing is sent). ``batch`` uses the OpenAI Batch API."""
    from connote.describers.runner import DescribeRunner

    study = _study(study)
    if not study.unique_images():
        raise UserError(
            f"{study.path}: no readable images; add some with `connote init {study.path} --images DIR`"
        )
    d = registry.describer(describer, **{k: v for k, v in describer_options.items() if v is not None})
    runner = DescribeRunner(d, prompt=prompt or PAPER_PROMPT, name=name, max_cost=max_cost, check=_checker())
    if dry_run:
        return runner.estimate(study, retry_flagged=retry_flagged, batch=batch)
    if batch:
        from connote.describers.batch import run_batch

        return run_batch(
            study,
            runner,
            retry_flagged=retry_flagged,
            poll_interval=batch_poll,
            wait=batch_wait,
            progress=progress,
        )
    return runner.run(study, retry_flagged=retry_flagged, progress=progress)


def import_descriptions(
    study: Study | str | os.PathLike, path: str | os.PathLike, *, name: str | None = None, check: bool = True
):
    """Descriptions made elsewhere (CSV or JSONL with columns image,text) as a description set."""
    from connote.describers.importer import import_file

    return import_file(_study(study), path, name=name, check=_checker() if check else None)


def _checker():
    try:
        from connote.describers.checks import check_description
    except ImportError:
        return None
    return check_description


# ---------------------------------------------------------------------------------------------- S2
def _text_inputs(study: Study, description_set: str | None) -> tuple[dict, dict[str, str]]:
    ds = study.resolve_description_set(description_set)
    texts = study.descriptions(ds["id"])
    if not texts:
        raise UserError(
            f"description set {ds['name']!r} has no usable descriptions yet; run `connote describe`"
        )
    return ds, texts


def embed(
    study: Study | str | os.PathLike,
    text: str | None = "minilm",
    image: str | None = None,
    *,
    description_set: str | None = None,
    progress: bool = True,
    text_options: dict | None = None,
    image_options: dict | None = None,
    **options,
):
    """S2: embed the descriptions (``text``) and/or the pixels (``image``). Returns a list of summaries.

    ``options`` go to the one embedder asked for; asking for both, give ``text_options`` and
    ``image_options`` instead. An option an embedder does not take is refused by name."""
    if text and image and options:
        raise UserError(
            f"options ({', '.join(sorted(options))}) for which embedder? Give text_options= and image_options="
        )
    from connote import embedders as embed_mod

    study = _study(study)
    out = []
    if text:
        _, texts = _text_inputs(study, description_set)
        emb = registry.text_embedder(text, **(text_options or options))
        emb = emb.prepare(study)  # e.g. no API key: one clear error before anything is sent
        out.append(embed_mod.embed_texts(study, emb, texts, progress=progress))
    if image:
        emb = registry.image_embedder(image, **(image_options or ({} if text else options)))
        emb = emb.prepare(study)  # loads the weights; may fall back to another model (with a notice)
        summary = embed_mod.embed_images(study, emb, progress=progress)
        summary.notice = emb.notice
        out.append(summary)
    if not out:
        raise UserError("nothing to embed: give a text embedder, an image embedder, or both")
    return out


# ---------------------------------------------------------------------------------------------- S3 + S4
@dataclass
class Features:
    kind: str  # 'text' | 'image'
    embedder: str  # embedder cache name, e.g. 'text:minilm'
    description_set: str | None
    shas: list[str]  # one per row of X
    X: np.ndarray
    key: str  # content hash of the feature matrix's inputs


def features(
    study: Study,
    kind: str = "text",
    *,
    text: str = "minilm",
    image: str = "efficientnet-lite0",
    description_set: str | None = None,
) -> Features:
    """The feature matrix a clustering runs on, rows in the order of ``shas``."""
    if kind == "text":
        ds, texts = _text_inputs(study, description_set)
        emb = registry.text_embedder(text)
        shas = sorted(texts)
        keys = [text_key(texts[s]) for s in shas]
        X = study.load_vectors(emb.name, keys)
        key = hashlib.sha256(("\n".join(keys) + emb.name).encode()).hexdigest()
        return Features("text", emb.name, ds["name"], shas, X, key)
    if kind == "image":
        emb = registry.image_embedder(image)
        shas = sorted({r["sha256"] for r in study.unique_images() if study.has_vector(emb.name, r["sha256"])})
        if not shas:
            raise UserError(f"no {emb.name} vectors yet; run `connote embed {study.path} --image {image}`")
        X = study.load_vectors(emb.name, shas)
        key = hashlib.sha256(("\n".join(shas) + emb.name).encode()).hexdigest()
        return Features("image", emb.name, None, shas, X, key)
    raise UserError(f"unknown features {kind!r}; use text or image")


def reduce_cache_path(study: Study, feats: Features, reducer) -> Path:
    """Where the reduction of ``feats`` by ``reducer`` is cached (STUDY/cache/reduce/KEY.npy)."""
    params = reducer.params() if hasattr(reducer, "params") else {"repr": repr(reducer)}
    key = hashlib.sha256(json.dumps([feats.key, params], sort_keys=True, default=str).encode()).hexdigest()[
        :24
    ]
    return study.path / "cache" / "reduce" / f"{key}.npy"


def run_key(feats: Features, reducer_params: dict, cluster_params: dict, seed: int | None) -> str:
    """The key a run is stored (and found again) under: features, reducer, clusterer and seed."""
    return hashlib.sha256(
        json.dumps([feats.key, reducer_params, cluster_params, seed], sort_keys=True, default=str).encode()
    ).hexdigest()


def reduce_cached(
    study: Study, feats: Features, reducer, *, knn=None, Y: np.ndarray | None = None
) -> np.ndarray:
    """Reduce once per (features, reducer parameters); later runs with other cluster settings reuse it.

    ``knn`` (indices, distances) is handed to reducers that take a precomputed neighbour graph (UMAP);
    ``Y`` stores a reduction computed elsewhere (e.g. by a sweep worker) under the same key."""
    path = reduce_cache_path(study, feats, reducer)
    if path.is_file():
        return np.load(path)
    if Y is None:
        Y = reducer.fit_transform(feats.X, knn=knn) if knn is not None else reducer.fit_transform(feats.X)
    Y = np.asarray(Y, dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as fh:
        np.save(fh, Y)
    os.replace(tmp, path)
    return Y


@dataclass
class ClusterResult:
    run_id: int
    reused: bool
    n_items: int
    n_clusters: int
    n_outliers: int
    min_cluster_size: int
    notes: list[str]


def cluster(
    study: Study | str | os.PathLike,
    features_kind: str = "text",
    *,
    reduce: str | object = DEFAULT_REDUCE,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    selection: str | None = None,
    seed: int | None = DEFAULT_SEED,
    text: str = "minilm",
    image: str = "efficientnet-lite0",
    description_set: str | None = None,
    label: str | None = None,
    clusterer: object | None = None,
) -> ClusterResult:
    """S3 + S4: reduce the features and cluster them with HDBSCAN. The run (every parameter, seed and
    package version) is stored; an identical earlier run is returned instead of computed again."""

    study = _study(study)
    feats = features(study, features_kind, text=text, image=image, description_set=description_set)
    n = len(feats.shas)
    if n < 4:
        raise UserError(f"only {n} items to cluster; need at least 4")
    notes: list[str] = []
    if min_cluster_size is None:
        min_cluster_size = default_min_cluster_size(n)
        notes.append(
            f"min cluster size {min_cluster_size} (default for {n} items; set with --min-cluster-size)"
        )
    if selection is None and clusterer is None:
        selection = default_selection(n)
        notes.append(
            f"cluster selection '{selection}' (default for {n} items; set with --selection eom|leaf)"
        )
    if selection not in (None, "eom", "leaf"):
        raise UserError(f"unknown cluster selection {selection!r}; use eom or leaf")
    reducer = registry.reducer(reduce, seed=seed)
    clusterer = clusterer or HDBSCANClusterer(
        min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_method=selection
    )
    reduce_spec = getattr(reducer, "spec", type(reducer).__name__)
    cluster_params = clusterer.params() if hasattr(clusterer, "params") else {"repr": repr(clusterer)}
    reducer_params = reducer.params() if hasattr(reducer, "params") else {"repr": repr(reducer)}
    key = run_key(feats, reducer_params, cluster_params, seed)
    old = study.find_run(key)
    if old is not None:
        return ClusterResult(
            old["id"],
            True,
            old["n_items"],
            old["n_clusters"],
            old["n_outliers"],
            old["min_cluster_size"],
            notes,
        )

    Y = reduce_cached(study, feats, reducer)
    labels = np.asarray(clusterer.fit_predict(Y), dtype=int)
    notes += list(getattr(reducer, "notes", []))
    probs = getattr(clusterer, "probabilities_", None)
    run_id = store_run(
        study,
        feats,
        key=key,
        reduce_spec=reduce_spec,
        reducer_params=reducer_params,
        cluster_params=cluster_params,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        seed=seed,
        labels=labels,
        probabilities=probs,
        notes=notes,
        label=label,
    )
    return ClusterResult(
        run_id,
        False,
        n,
        len(set(labels.tolist()) - {-1}),
        int(np.sum(labels == -1)),
        int(min_cluster_size),
        notes,
    )


def store_run(
    study: Study,
    feats: Features,
    *,
    key: str,
    reduce_spec: str,
    reducer_params: dict,
    cluster_params: dict,
    min_cluster_size: int,
    min_samples: int | None,
    seed: int | None,
    labels: np.ndarray,
    probabilities: np.ndarray | None,
    notes: list[str],
    label: str | None,
    environment: dict | None = None,
) -> int:
    """Store one clustering as a run: its labels and the full record (parameters, seed, package versions)."""
    from connote.provenance import environment as current_environment

    labels = np.asarray(labels, dtype=int)
    record = {
        "key": key,
        "features": feats.kind,
        "description_set": feats.description_set,
        "embedder": feats.embedder,
        "reduce": reduce_spec,
        "min_cluster_size": int(min_cluster_size),
        "min_samples": min_samples,
        "seed": seed,
        "n_items": len(feats.shas),
        "n_clusters": len(set(labels.tolist()) - {-1}),
        "n_outliers": int(np.sum(labels == -1)),
        "label": label,
        "params": json.dumps(
            {
                "reducer": reducer_params,
                "clusterer": cluster_params,
                "seed": seed,
                "features_key": feats.key,
                "notes": notes,
                "environment": environment or current_environment(),
            },
            sort_keys=True,
            default=str,
        ),
    }
    prob_map = {s: float(p) for s, p in zip(feats.shas, probabilities)} if probabilities is not None else None
    return study.add_run(record, dict(zip(feats.shas, labels.tolist())), prob_map)


def sweep(study: Study | str | os.PathLike, grid="paper", **options):
    """S3 + S4 over a whole grid (the paper's by default): every setting becomes an ordinary run; see
    :func:`connote.sweeps.sweep` for the options (features, seeds, workers, ...)."""
    from connote.sweeps import sweep as _sweep

    return _sweep(_study(study), grid, **options)


# ---------------------------------------------------------------------------------------------- S5
def explain(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    top_k: int = 10,
    extra_stop_words: list[str] | tuple[str, ...] = (),
    filler: bool = True,
    description_set: str | None = None,
) -> dict[int, list[tuple[str, float]]]:
    """S5: the top TF-IDF terms of each cluster's joined descriptions, stored with the run."""
    from connote.keywords import cluster_keywords, stop_words

    study = _study(study)
    run = study.get_run(run_id)
    set_name = description_set or run["description_set"]
    ds = study.resolve_description_set(set_name)
    texts = study.descriptions(ds["id"])
    assign = study.assignments(run["id"])
    shas = [s for s in assign if s in texts]
    if not shas:
        raise UserError(f"run {run['id']}: none of its images has a description in set {ds['name']!r}")
    # A describer can name words of its own fixed phrasing that say nothing about a cluster (the offline
    # describer's colour words); they are left out with the filler words.
    template_words = _describer_stop_words(ds["describer"]) if filler else ()
    keywords = cluster_keywords(
        [texts[s] for s in shas],
        [assign[s] for s in shas],
        top_k=top_k,
        stop=stop_words([*extra_stop_words, *template_words], filler=filler),
    )
    study.set_keywords(
        run["id"],
        keywords,
        {
            "top_k": top_k,
            "description_set": ds["name"],
            "extra_stop_words": list(extra_stop_words),
            "describer_stop_words": list(template_words),
            "filler": filler,
        },
    )
    return keywords


def _describer_stop_words(spec: str) -> tuple[str, ...]:
    cls = registry.describer_class(spec)
    return tuple(cls.keyword_stop_words) if cls is not None else ()


# ---------------------------------------------------------------------------------------------- output
def report(study: Study | str | os.PathLike, run_id: int | None = None, *, progress: bool = True) -> Path:
    """Write the static HTML report (STUDY/report/index.html) for a run (latest by default)."""
    from connote.reports import render_report

    return render_report(_study(study), run_id, progress=progress)


def runs(study: Study | str | os.PathLike) -> list[dict]:
    """One dict per run: id, features, describer, embedder, reduce, min_cluster_size, seed, n_clusters,
    n_outliers, created."""
    study = _study(study)
    sets = {r["name"]: r["describer"] for r in study.description_sets()}
    out = []
    for r in study.runs():
        out.append(
            {
                "id": r["id"],
                "features": r["features"],
                "description_set": r["description_set"],
                "describer": sets.get(r["description_set"]) if r["description_set"] else None,
                "embedder": r["embedder"],
                "reduce": r["reduce"],
                "min_cluster_size": r["min_cluster_size"],
                "min_samples": r["min_samples"],
                "seed": r["seed"],
                "n_items": r["n_items"],
                "n_clusters": r["n_clusters"],
                "n_outliers": r["n_outliers"],
                "label": r["label"],
                "created": r["created"],
            }
        )
    return out


EXPORT_COLUMNS = ("image", "cluster", "keywords", "description")


def export_rows(study: Study, run_id: int | None = None) -> list[dict]:
    """One row per image file: path relative to the images root, cluster (-1 outlier), keywords, description.

    Images left out of the run (skipped files, images without a description) have an empty cluster.
    """
    run = study.get_run(run_id)
    assign = study.assignments(run["id"])
    keywords = study.keywords(run["id"])
    texts: dict[str, str] = {}
    if run["description_set"]:
        texts = study.descriptions(study.resolve_description_set(run["description_set"])["id"])
    rows = []
    for img in study.images(status="ok"):
        c = assign.get(img["sha256"])
        rows.append(
            {
                "image": img["path"],
                "cluster": c,
                "keywords": ", ".join(keywords.get(c, [])) if c is not None and c != -1 else "",
                "description": texts.get(img["sha256"], ""),
            }
        )
    return rows


def export(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    format: str = "csv",
    path: str | os.PathLike | None = None,
) -> Path:
    """Write the run's assignments as CSV or Parquet; returns the file written."""
    study = _study(study)
    run = study.get_run(run_id)
    rows = export_rows(study, run["id"])
    if format not in ("csv", "parquet"):
        raise UserError(f"unknown export format {format!r}; use csv or parquet")
    path = Path(path) if path else study.path / f"run-{run['id']}.{format}"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    if format == "csv":
        import csv

        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=EXPORT_COLUMNS)
            writer.writeheader()
            for r in rows:
                writer.writerow({**r, "cluster": "" if r["cluster"] is None else r["cluster"]})
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("Parquet export needs pyarrow: pip install 'connote[parquet]'") from None
        table = pa.table(
            {c: [r[c] for r in rows] for c in EXPORT_COLUMNS},
            schema=pa.schema(
                [
                    ("image", pa.string()),
                    ("cluster", pa.int64()),
                    ("keywords", pa.string()),
                    ("description", pa.string()),
                ]
            ),
        )
        pq.write_table(table, tmp)
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------------------------------------- all
def run(
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    describer="offline",
    text: str = "minilm",
    reduce: str = DEFAULT_REDUCE,
    min_cluster_size: int | None = None,
    selection: str | None = None,
    seed: int | None = DEFAULT_SEED,
    top_k: int = 10,
    progress: bool = True,
    **describer_options,
) -> tuple[Study, int, Path]:
    """The whole pipeline: init, describe, embed, cluster, explain, report. Returns (study, run id, report)."""
    study = init(out, images, progress=progress)
    describe(study, describer, progress=progress, **describer_options)
    embed(study, text, progress=progress)
    res = cluster(
        study,
        "text",
        reduce=reduce,
        min_cluster_size=min_cluster_size,
        selection=selection,
        seed=seed,
        text=text,
    )
    explain(study, res.run_id, top_k=top_k)
    return study, res.run_id, report(study, res.run_id, progress=progress)
