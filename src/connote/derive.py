"""Runs derived from a run, as the paper's analysts corrected their clusters: near-twin clusters merged
(suggested with their evidence first) and outliers assigned to their nearest cluster.

A derived run is an ordinary run (exported, reported, scored like any) that records its parent and what
was done; the parent is never changed. Asking for the same derivation again returns the stored run.

The math is in small pure functions over arrays (:func:`centroids`, :func:`similarity_matrix`,
:func:`nearest_pairs`, :func:`keyword_overlap`, :func:`resolve_merges`, :func:`assign`); the rest reads
and writes the study.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field

import numpy as np

from connote import numbers
from connote.defaults import DEFAULT_OUTLIER_NEIGHBORS, DEFAULT_TOP_K
from connote.errors import UserError
from connote.study import Study, text_key

METHODS = ("centroid", "soft", "knn")


# ---------------------------------------------------------------------------------------------- pure math
def unit(X: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero)."""
    X = np.asarray(X, dtype=float)
    norms = np.linalg.norm(X, axis=1, keepdims=True)
    return np.divide(X, norms, out=np.zeros_like(X), where=norms > 0)


def centroids(X: np.ndarray, labels: np.ndarray) -> tuple[list[int], np.ndarray]:
    """(clusters in order, their mean unit vectors, each scaled to length 1); outliers (-1) left out."""
    labels = np.asarray(labels)
    clusters = sorted(int(c) for c in set(labels.tolist()) - {-1})
    U = unit(X)
    C = np.stack([U[labels == c].mean(axis=0) for c in clusters]) if clusters else np.zeros((0, U.shape[1]))
    return clusters, unit(C)


def similarity_matrix(C: np.ndarray) -> np.ndarray:
    """Cosine similarities between the rows of ``C``."""
    U = unit(C)
    return U @ U.T


#: Similarities computed at once (rows x columns) before work is split into blocks of rows: bounds memory
#: for large collections (about 40 MB of float64 per block).
BLOCK = 5_000_000


def blocks(n_rows: int, n_cols: int):
    """Slices of ``range(n_rows)`` whose ``rows x n_cols`` similarity block stays under :data:`BLOCK`."""
    step = max(1, BLOCK // max(1, n_cols))
    for start in range(0, n_rows, step):
        yield slice(start, min(n_rows, start + step))


def nearest_pairs(A: np.ndarray, B: np.ndarray, k: int = 3) -> list[tuple[int, int, float]]:
    """The ``k`` closest (row of A, row of B, cosine similarity) pairs, closest first (ties by row)."""
    if len(A) == 0 or len(B) == 0:
        return []
    UA, UB = unit(A), unit(B)
    best: list[tuple[float, int, int]] = []
    for rows in blocks(len(UA), len(UB)):
        S = UA[rows] @ UB.T
        flat = np.argsort(-S, axis=None, kind="stable")[:k]
        for i, j in zip(*np.unravel_index(flat, S.shape), strict=True):
            best.append((-float(S[i, j]), int(i) + rows.start, int(j)))
    best.sort()
    return [(i, j, -s) for s, i, j in best[:k]]


def keyword_overlap(a: list[str], b: list[str]) -> float:
    """Jaccard overlap of two keyword lists (0 when both are empty)."""
    sa, sb = set(a), set(b)
    return len(sa & sb) / len(sa | sb) if sa | sb else 0.0


def parse_merges(text: str) -> dict[int, int]:
    """'7=3,9=3' -> {7: 3, 9: 3} (cluster 7 and 9 go into 3)."""
    out: dict[int, int] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        src, sep, dst = part.partition("=")
        try:
            if not sep:
                raise ValueError
            a, b = int(src), int(dst)
        except ValueError:
            raise UserError(f"merge {part!r}: write FROM=INTO with cluster numbers, e.g. 7=3,9=3") from None
        if a in out and out[a] != b:
            raise UserError(f"cluster {a} is merged into both {out[a]} and {b}")
        out[a] = b
    if not out:
        raise UserError("no merges given: write FROM=INTO, e.g. 7=3,9=3")
    return out


def resolve_merges(merges: dict[int, int], clusters: set[int]) -> dict[int, int]:
    """Merges with chains followed (7=3, 3=1 -> 7=1, 3=1); refuses unknown clusters, outliers and cycles."""
    unknown = sorted((set(merges) | set(merges.values())) - set(clusters))
    if unknown:
        known = ", ".join(map(str, sorted(clusters)))
        raise UserError(f"no cluster {', '.join(map(str, unknown))} in this run (clusters: {known})")
    out = {}
    for a in merges:
        if a == merges[a]:
            raise UserError(f"cluster {a} cannot be merged into itself")
        seen, b = {a}, merges[a]
        while b in merges:
            if b in seen:
                raise UserError(f"the merges go round in a circle through cluster {b}")
            seen.add(b)
            b = merges[b]
        out[a] = b
    return out


def assign(
    X_out: np.ndarray,
    X_in: np.ndarray,
    labels_in: np.ndarray,
    method: str = "centroid",
    *,
    k: int = DEFAULT_OUTLIER_NEIGHBORS,
    exemplars: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """For each row of ``X_out`` (outliers) the nearest cluster of the clustered rows ``X_in`` and a
    closeness score in [0, 1] (higher is closer); ``(clusters, scores)``.

    * ``centroid``: the cluster whose mean unit vector is most similar; the score is that cosine
      similarity (clipped at 0);
    * ``soft``: distance-based membership as HDBSCAN's soft clustering computes it: for each cluster the
      cosine distance to its nearest exemplar (``exemplars`` marks them; all members by default), memberships
      proportional to 1 / distance and summing to 1; the score is the top membership;
    * ``knn``: the majority cluster of the ``k`` most similar clustered items (a tie goes to the cluster
      of the nearest of them); the score is the mean cosine similarity of its items among those ``k``.
    """
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    labels_in = np.asarray(labels_in)
    if len(X_out) == 0:
        return np.zeros(0, dtype=int), np.zeros(0)
    clusters, C = centroids(X_in, labels_in)
    if not clusters:
        raise UserError("the run has no clusters to assign outliers to")
    U_out, U_in = unit(X_out), unit(X_in)
    if method == "centroid":
        S = U_out @ C.T
        best = S.argmax(axis=1)
        return np.array(clusters)[best], np.clip(S[np.arange(len(best)), best], 0.0, 1.0)
    if method == "soft":
        mask = np.ones(len(labels_in), bool) if exemplars is None else np.asarray(exemplars, bool)
        D = np.empty((len(U_out), len(clusters)))
        for j, c in enumerate(clusters):
            members = (labels_in == c) & mask
            if not members.any():
                members = labels_in == c
            E = U_in[members]
            for rows in blocks(len(U_out), len(E)):
                D[rows, j] = np.maximum(1.0 - (U_out[rows] @ E.T).max(axis=1), 1e-9)
        M = 1.0 / D
        M /= M.sum(axis=1, keepdims=True)
        best = M.argmax(axis=1)
        return np.array(clusters)[best], M[np.arange(len(best)), best]
    k = max(1, min(int(k), len(U_in)))
    out_c, out_s = [], []
    for rows in blocks(len(U_out), len(U_in)):
        S = U_out[rows] @ U_in.T
        part = (
            np.argpartition(-S, k - 1, axis=1)[:, :k]
            if k < S.shape[1]
            else np.tile(np.arange(k), (len(S), 1))
        )
        for i, cand in enumerate(part):
            row = cand[np.lexsort((cand, -S[i, cand]))]  # most similar first; ties by position
            votes = labels_in[row]
            values, counts = np.unique(votes, return_counts=True)
            tied = set(values[counts == counts.max()].tolist())
            winner = next(int(v) for v in votes if int(v) in tied)
            out_c.append(winner)
            out_s.append(max(0.0, float(S[i, row[votes == winner]].mean())))
    return np.array(out_c, dtype=int), np.array(out_s)


# ---------------------------------------------------------------------------------------------- the study
def _study(study) -> Study:
    return study if isinstance(study, Study) else Study.open(study)


def run_vectors(study: Study, run) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(shas, feature vectors, cluster labels) of a run's items, in sha order."""
    assign_map = study.assignments(run["id"])
    shas = sorted(assign_map)
    if run["features"] == "text":
        ds = study.resolve_description_set(run["description_set"])
        texts = study.descriptions(ds["id"])
        shas = [s for s in shas if s in texts]
        keys = [text_key(texts[s]) for s in shas]
    else:
        keys = shas
    X = study.load_vectors(run["embedder"], keys)
    return shas, X, np.array([assign_map[s] for s in shas], dtype=int)


#: Members of each cluster searched for the closest pairs of a merge suggestion: those nearest the other
#: cluster's centre (the closest pair is almost always among them); bounds the work on large clusters.
FACING = 2000


def _facing(X: np.ndarray, members: np.ndarray, centre: np.ndarray) -> np.ndarray:
    if len(members) <= FACING:
        return members
    sims = unit(X[members]) @ centre
    return members[np.argsort(-sims, kind="stable")[:FACING]]


@dataclass
class MergeSuggestion:
    a: int
    b: int  # the larger cluster: the one to merge into (a=b in `connote merge`)
    similarity: float  # cosine similarity of the centroids
    keyword_overlap: float  # Jaccard overlap of the keyword lists
    shared_keywords: list[str]
    sizes: tuple[int, int]
    nearest: list[dict]  # the closest member pairs: image paths and similarity

    @property
    def merge(self) -> str:
        return f"{self.a}={self.b}"


def suggest_merges(
    study: Study | str | os.PathLike, run_id: int | None = None, *, top: int = 5, pairs: int = 3
) -> list[MergeSuggestion]:
    """The ``top`` most similar pairs of clusters (centroid cosine similarity of the run's features), with
    their evidence: keyword overlap, and the ``pairs`` closest pairs of members."""
    top = numbers.whole(top, "--top", low=1)
    study = _study(study)
    run = study.get_run(run_id)
    shas, X, labels = run_vectors(study, run)
    clusters, C = centroids(X, labels)
    if len(clusters) < 2:
        return []
    S = similarity_matrix(C)
    keywords = keyword_lists_with_common(study, run["id"])
    paths = {r["sha256"]: r["path"] for r in study.unique_images()}
    order = sorted(
        ((i, j) for i in range(len(clusters)) for j in range(i + 1, len(clusters))),
        key=lambda ij: (-S[ij], ij),
    )
    out = []
    for i, j in order[: max(0, top)]:
        ci, cj = clusters[i], clusters[j]
        mi, mj = np.flatnonzero(labels == ci), np.flatnonzero(labels == cj)
        if len(mi) > len(mj) or (len(mi) == len(mj) and ci < cj):  # the smaller goes into the larger
            ci, cj, mi, mj = cj, ci, mj, mi
        # the closest pairs among the members of each nearest the other's centre (all of a small cluster)
        ni, nj = _facing(X, mi, C[clusters.index(cj)]), _facing(X, mj, C[clusters.index(ci)])
        near = [
            {
                "a": paths.get(shas[ni[p]], shas[ni[p]]),
                "b": paths.get(shas[nj[q]], shas[nj[q]]),
                "similarity": s,
            }
            for p, q, s in nearest_pairs(X[ni], X[nj], pairs)
        ]
        ka, kb = keywords.get(ci, []), keywords.get(cj, [])
        out.append(
            MergeSuggestion(
                ci,
                cj,
                float(S[i, j]),
                keyword_overlap(ka, kb),
                [t for t in ka if t in set(kb)],
                (len(mi), len(mj)),
                near,
            )
        )
    return out


@dataclass
class DerivedRun:
    run_id: int
    parent: int
    kind: str
    reused: bool
    n_clusters: int
    n_outliers: int
    params: dict
    assigned: int = 0  # outliers given a cluster (assign-outliers)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _derive(study: Study, parent, kind: str, params: dict, labels: dict[str, int], **extra) -> DerivedRun:
    key = hashlib.sha256(json.dumps([parent["key"], kind, params], sort_keys=True).encode()).hexdigest()
    old = study.find_run(key)
    if old is not None:
        return DerivedRun(old["id"], parent["id"], kind, True, old["n_clusters"], old["n_outliers"], params)
    record = {
        k: parent[k]
        for k in (
            "features",
            "description_set",
            "embedder",
            "reduce",
            "min_cluster_size",
            "min_samples",
            "seed",
        )
    }
    parent_params = json.loads(parent["params"] or "{}")
    record.update(
        key=key,
        n_items=len(labels),
        n_clusters=len(set(labels.values()) - {-1}),
        n_outliers=sum(1 for c in labels.values() if c == -1),
        label=f"{kind} of run {parent['id']}",
        params=json.dumps({**parent_params, "derived": {"parent": parent["id"], "kind": kind, **params}}),
    )
    run_id, new = study.add_derived_run(
        record, labels, parent_id=parent["id"], kind=kind, params=params, **extra
    )
    if not new:  # another process made the same run a moment ago: it is that run
        old = study.get_run(run_id)
        return DerivedRun(run_id, parent["id"], kind, True, old["n_clusters"], old["n_outliers"], params)
    return DerivedRun(run_id, parent["id"], kind, False, record["n_clusters"], record["n_outliers"], params)


def keyword_lists_with_common(study: Study, run_id: int) -> dict[int, list[str]]:
    """Each cluster's keywords with the terms common to the run that its list had (left out of the stored
    lists, :func:`connote.keywords.distinct_keywords`): twin clusters share just such terms."""
    keywords = study.keywords(run_id)
    common_in = study.keyword_params(run_id).get("common_in") or {}
    for term, clusters in common_in.items():
        for c in clusters:
            keywords.setdefault(int(c), []).append(term)
    return keywords


def _keywords_like_parent(study: Study, parent_id: int, run_id: int) -> None:
    """Keywords for a new derived run, computed as its parent's were (method, diversity, top k)."""
    from connote.explaining import explain

    p = study.keyword_params(parent_id)
    explain(
        study,
        run_id,
        top_k=int(p.get("top_k", DEFAULT_TOP_K)),
        extra_stop_words=p.get("extra_stop_words", ()),
        filler=bool(p.get("filler", True)),
        method=p.get("method", "tfidf"),
        diversity=float(p.get("diversity", 0.0)),
        keep_common=bool(p.get("keep_common", False)),
    )


def merge(study: Study | str | os.PathLike, run_id: int | None, merges: dict[int, int] | str) -> DerivedRun:
    """A derived run in which each cluster ``a`` of ``merges`` ({a: b}, or '7=3,9=3') joins cluster ``b``."""
    study = _study(study)
    parent = study.get_run(run_id)
    wanted = parse_merges(merges) if isinstance(merges, str) else {int(a): int(b) for a, b in merges.items()}
    assignments = study.assignments(parent["id"])
    resolved = resolve_merges(wanted, set(assignments.values()) - {-1})
    labels = {s: resolved.get(c, c) for s, c in assignments.items()}
    params = {"merges": {str(a): b for a, b in sorted(resolved.items())}}
    res = _derive(study, parent, "merge", params, labels, probabilities=study.probabilities(parent["id"]))
    if not res.reused and parent["description_set"]:
        _keywords_like_parent(study, parent["id"], res.run_id)
    return res


def assign_outliers(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    method: str = "centroid",
    threshold: float | None = None,
    k: int = DEFAULT_OUTLIER_NEIGHBORS,
) -> DerivedRun:
    """A derived run in which each outlier joins its nearest cluster (by ``method``) when its closeness
    score reaches ``threshold`` (every outlier by default); the scores are stored with the run."""
    study = _study(study)
    if method not in METHODS:
        raise UserError(f"unknown method {method!r}; use {', '.join(METHODS)}")
    if threshold is not None and not 0.0 <= float(threshold) <= 1.0:
        raise UserError(f"--threshold must be between 0 and 1, not {threshold}")
    k = numbers.whole(k, "--k", low=1)
    parent = study.get_run(run_id)
    shas, X, labels = run_vectors(study, parent)
    out_mask = labels == -1
    if out_mask.all():
        raise UserError(
            f"{study.path}: run {parent['id']} has no clusters (every image is an outlier): there is no "
            "cluster for its outliers to join; cluster again with a smaller --min-cluster-size"
        )
    params = {"method": method, "threshold": threshold, **({"k": int(k)} if method == "knn" else {})}
    notes = []
    if not out_mask.any():
        notes.append(f"run {parent['id']} has no outliers: the derived run equals it")
    probs = study.probabilities(parent["id"])
    exemplars = None
    if method == "soft":
        # HDBSCAN's exemplars are its most persistent members; here: probability 1 where stored
        p = np.array([probs.get(s) if probs.get(s) is not None else 1.0 for s in shas])
        exemplars = p >= 1.0 - 1e-9
    clusters, scores = (
        assign(
            X[out_mask],
            X[~out_mask],
            labels[~out_mask],
            method,
            k=k,
            exemplars=exemplars[~out_mask] if exemplars is not None else None,
        )
        if out_mask.any() and (~out_mask).any()
        else (np.zeros(0, dtype=int), np.zeros(0))
    )
    assignments = study.assignments(parent["id"])
    assigned = {}
    for sha, c, s in zip(np.array(shas)[out_mask].tolist(), clusters.tolist(), scores.tolist(), strict=True):
        if threshold is None or s >= float(threshold):
            assigned[sha] = (int(c), float(s))
    labels_new = {s: (assigned[s][0] if s in assigned else c) for s, c in assignments.items()}
    res = _derive(
        study, parent, "assign-outliers", params, labels_new, assigned=assigned, probabilities=probs
    )
    res.assigned = len(study.assigned_outliers(res.run_id))
    res.notes += notes
    left = int(out_mask.sum()) - res.assigned
    if left and threshold is not None:
        res.notes.append(f"{left} outlier(s) scored below {threshold:g}: still outliers")
    if not res.reused and parent["description_set"]:
        _keywords_like_parent(study, parent["id"], res.run_id)
    return res


# ---------------------------------------------------------------------------------------------- report
def report_context(study: Study, run) -> dict:
    """What the report shows of this module's work for one run: its labels (cluster -> label, summary,
    labeller), where it came from (derived runs), the outliers it assigned (sha -> cluster, score), the
    suggested merges, and each cluster's breakdown by the metadata columns."""
    from connote import metadata

    rid = int(run["id"])
    labels = {
        c: {"label": r["label"], "summary": r["summary"], "labeller": r["labeller"], "status": r["status"]}
        for c, r in study.labels(rid).items()
    }
    origin = study.derivation(rid)
    derived = None
    if origin:
        p = origin["params"]
        what = ", ".join(f"{a} into {b}" for a, b in p.get("merges", {}).items())
        if origin["kind"] == "assign-outliers":
            what = f"outliers assigned by {p.get('method')}" + (
                f" (threshold {p['threshold']:g})" if p.get("threshold") is not None else ""
            )
        derived = {"parent": origin["parent"], "kind": origin["kind"], "what": what}
    try:
        suggestions = [asdict(s) | {"merge": s.merge} for s in suggest_merges(study, rid, top=5)]
    except UserError:  # no vectors for this run any more: no suggestions
        suggestions = []
    kp = study.keyword_params(rid)
    method = {"tfidf": "TF-IDF", "ctfidf": "class-based TF-IDF"}.get(kp.get("method", "tfidf"), "TF-IDF")
    if kp.get("diversity"):
        method += f", diversity {kp['diversity']:g}"
    common = {"terms": kp.get("common_terms") or [], "rule": kp.get("common_rule")}
    return {
        "labels": labels,
        "keyword_method": method,
        "common_terms": common,  # left out of each cluster's keywords as common to the whole run
        "derived": derived,
        "assigned": study.assigned_outliers(rid),
        "suggestions": suggestions,
        "breakdowns": {name: b.to_dict() for name, b in metadata.breakdowns(study, rid).items()},
    }
