"""Read queries the reports need (no SQL in ``connote.reports``), and the feature matrix a run was
clustered on, rebuilt from the stored vectors (the 2-D map of it is :mod:`connote.layout`'s)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from connote.errors import UserError
from connote.study import text_key


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


#: kind -> (samples table, items table, answers table, who answers): connote's own SQL names, never input
_SAMPLES = {
    "pairs": ("pair_samples", "pairs", "ratings", "coder"),
    "sets": ("set_samples", "image_sets", "set_answers", "evaluator"),
}


def validation_progress(study) -> list[dict]:
    """One row per validation sample: kind, name, run (RQ2), size, how much is rated or answered."""
    rows = []
    for kind, (samples, items, answers, who) in _SAMPLES.items():
        run = "run_id" if kind == "sets" else "NULL"
        for s in study.con.execute(f"SELECT id, name, {run} FROM {samples} ORDER BY id").fetchall():
            size, done, people = study.con.execute(
                f"""SELECT (SELECT COUNT(*) FROM {items} WHERE sample_id=:s),
                           (SELECT COUNT(DISTINCT pos) FROM {answers} WHERE sample_id=:s),
                           (SELECT COUNT(DISTINCT {who}) FROM {answers} WHERE sample_id=:s)""",
                {"s": s[0]},
            ).fetchone()
            rows.append(
                {"kind": kind, "name": s[1], "run_id": s[2], "size": size, "done": done, "people": people}
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
        wanted, key_of = set(shas), dict[str, str]()
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


def run_record(run) -> dict:
    try:
        return json.loads(run["params"] or "{}")
    except (TypeError, ValueError):
        return {}
