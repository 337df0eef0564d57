"""Read queries the reports need (no SQL in ``connote.reports``), and the cached 2-D map of a feature set.

The map is a 2-D UMAP (PCA for fewer than :data:`MIN_UMAP_ITEMS` items) of the very features a run was
clustered on. It is computed once per feature set (the feature key a run records) and kept in
``STUDY/cache/map2d/<key>.npz`` (rows in the order of the stored ``shas``), so every run of a sweep that
shares features shares one map.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from connote.errors import UserError
from connote.safe_write import replacing
from connote.study import text_key

MIN_UMAP_ITEMS = 30
MAP_SEED = 42
LAYOUT = "umap:components=2,neighbors=15,min_dist=0.1"  # part of the cache key: a new layout, a new file


def keyword_scores(study, run_id: int) -> dict[int, list[tuple[str, float]]]:
    """cluster -> [(term, score), ...] in rank order."""
    out: dict[int, list[tuple[str, float]]] = {}
    for r in study.con.execute(
        "SELECT cluster, term, score FROM keywords WHERE run_id=? ORDER BY cluster, rank", (run_id,)
    ):
        out.setdefault(int(r[0]), []).append((r[1], float(r[2])))
    return out


def memberships(study, run_id: int) -> dict[str, tuple[int, float | None]]:
    """sha256 -> (cluster, HDBSCAN membership strength or None)."""
    return {
        r[0]: (int(r[1]), None if r[2] is None else float(r[2]))
        for r in study.con.execute(
            "SELECT sha256, cluster, probability FROM assignments WHERE run_id=?", (run_id,)
        )
    }


def image_paths(study) -> dict[str, list[str]]:
    """sha256 -> every readable file with that content (relative to the images root), sorted."""
    out: dict[str, list[str]] = {}
    for r in study.con.execute("SELECT sha256, path FROM images WHERE status='ok'"):
        out.setdefault(r[0], []).append(r[1])
    for paths in out.values():
        paths.sort(key=lambda p: (p.casefold(), p))
    return out


def description_set_row(study, name: str | None):
    if name is None:
        return None
    return study.con.execute("SELECT * FROM description_sets WHERE name=?", (name,)).fetchone()


def description_details(study, set_id: int) -> dict[str, dict]:
    """sha256 -> the description and the model call that wrote it (None fields where it was imported)."""
    out = {}
    for r in study.con.execute(
        """SELECT d.sha256, d.text, d.status, d.reason, d.call_id, c.backend, c.model, c.prompt,
                  c.input_tokens, c.output_tokens, c.cost_usd, c.latency_s, c.started
           FROM descriptions d LEFT JOIN calls c ON c.id = d.call_id
           WHERE d.set_id=? AND d.text IS NOT NULL""",
        (set_id,),
    ):
        row = dict(r)
        out[row.pop("sha256")] = row
    return out


def keyword_table(study) -> dict[int, dict[int, list[str]]]:
    """run -> cluster -> terms, for every run (one query)."""
    out: dict[int, dict[int, list[str]]] = {}
    for r in study.con.execute("SELECT run_id, cluster, term FROM keywords ORDER BY run_id, cluster, rank"):
        out.setdefault(int(r[0]), {}).setdefault(int(r[1]), []).append(r[2])
    return out


def validation_progress(study) -> list[dict]:
    """One row per validation sample: kind, name, run (RQ2), size, how much is rated or answered."""
    rows = []
    for s in study.con.execute("SELECT id, name FROM pair_samples ORDER BY id").fetchall():
        n = study.con.execute("SELECT COUNT(*) FROM pairs WHERE sample_id=?", (s[0],)).fetchone()[0]
        rated = study.con.execute(
            "SELECT COUNT(DISTINCT pos) FROM ratings WHERE sample_id=?", (s[0],)
        ).fetchone()[0]
        coders = study.con.execute(
            "SELECT COUNT(DISTINCT coder) FROM ratings WHERE sample_id=?", (s[0],)
        ).fetchone()[0]
        rows.append(
            {"kind": "pairs", "name": s[1], "run_id": None, "size": n, "done": rated, "people": coders}
        )
    for s in study.con.execute("SELECT id, name, run_id FROM set_samples ORDER BY id").fetchall():
        n = study.con.execute("SELECT COUNT(*) FROM image_sets WHERE sample_id=?", (s[0],)).fetchone()[0]
        answered = study.con.execute(
            "SELECT COUNT(DISTINCT pos) FROM set_answers WHERE sample_id=?", (s[0],)
        ).fetchone()[0]
        people = study.con.execute(
            "SELECT COUNT(DISTINCT evaluator) FROM set_answers WHERE sample_id=?", (s[0],)
        ).fetchone()[0]
        rows.append(
            {"kind": "sets", "name": s[1], "run_id": s[2], "size": n, "done": answered, "people": people}
        )
    return rows


# ---------------------------------------------------------------------------------------------- features
@dataclass
class RunFeatures:
    shas: list[str]  # one per row of X, sorted
    X: np.ndarray
    key: str  # the features' content key (the same as a run's ``features_key``)


def run_features(study, run) -> RunFeatures | None:
    """The feature matrix a run was clustered on, rebuilt from the stored vectors; None when some are
    missing (e.g. the vectors folder was deleted)."""
    shas = sorted(memberships(study, int(run["id"])))
    if not shas:
        return None
    embedder = run["embedder"]
    if run["features"] == "text":
        ds = description_set_row(study, run["description_set"])
        if ds is None:
            return None
        wanted, key_of = set(shas), {}
        for rows in study.iter_descriptions(ds["id"]):  # a chunk of texts at a time; only keys are kept
            key_of.update((sha, text_key(t)) for sha, t in rows if sha in wanted)
        if len(key_of) < len(wanted):
            return None
        keys = [key_of[s] for s in shas]
    else:
        keys = shas
    if len(study.vectors.present(embedder, keys)) < len(set(keys)):
        return None
    try:
        X = study.load_vectors(embedder, keys)
    except (UserError, OSError, ValueError):  # damaged vectors: no map until `connote embed` repairs them
        return None
    key = hashlib.sha256(("\n".join(keys) + embedder).encode()).hexdigest()
    return RunFeatures(shas, np.asarray(X, dtype=np.float32), key)


def map_cache_path(study, key: str) -> Path:
    name = hashlib.sha256(f"{key}\n{LAYOUT}\n{MAP_SEED}".encode()).hexdigest()[:24]
    return study.path / "cache" / "map2d" / f"{name}.npz"


def compute_layout(X: np.ndarray, seed: int = MAP_SEED) -> tuple[np.ndarray, str]:
    """2-D coordinates for a feature matrix, scaled into [0, 1] x [0, 1], and the method used."""
    n = len(X)
    if n >= MIN_UMAP_ITEMS:
        from connote.reduce import UMAPReducer

        Y = UMAPReducer(n_components=2, n_neighbors=15, min_dist=0.1, random_state=seed).fit_transform(X)
        method = LAYOUT
    elif n >= 2:
        Xc = X - X.mean(axis=0)
        _, _, vt = np.linalg.svd(Xc, full_matrices=False)
        Y = Xc @ vt[:2].T
        if Y.shape[1] < 2:
            Y = np.hstack([Y, np.zeros((n, 2 - Y.shape[1]))])
        method = "pca:components=2 (too few items for UMAP)"
    else:
        Y = np.zeros((n, 2))
        method = "none"
    Y = np.asarray(Y, dtype=np.float64)
    if n:
        lo, hi = Y.min(axis=0), Y.max(axis=0)
        span = max(float((hi - lo).max()), 1e-12)
        Y = (Y - lo) / span  # one scale for both axes: distances keep their meaning
    return Y.astype(np.float32), method


def map_layout(study, feats: RunFeatures) -> tuple[np.ndarray, str]:
    """The cached 2-D map of ``feats`` (rows in ``feats.shas`` order), computed on first use."""
    path = map_cache_path(study, feats.key)
    if path.is_file():
        try:
            with np.load(path, allow_pickle=False) as z:
                if list(z["shas"]) == feats.shas:
                    return z["xy"], str(z["method"])
        except (OSError, ValueError, KeyError):
            pass  # damaged: computed again below
    xy, method = compute_layout(feats.X)
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, xy=xy, shas=np.array(feats.shas), method=np.array(method))
    return xy, method


def run_record(run) -> dict:
    try:
        return json.loads(run["params"] or "{}")
    except (TypeError, ValueError):
        return {}
