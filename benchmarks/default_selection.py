"""Which HDBSCAN cluster selection should be connote's default? eom against leaf, measured.

For each collection, connote's default reduction (UMAP 5 x 15, cosine) is computed once per seed
(42, 48, 112; the seeds share the exact neighbour graph, as ``connote cluster`` shares it) and clustered
with the default min cluster size (:func:`connote.defaults.default_min_cluster_size`) under each arm:

* ``eom``: excess of mass, hdbscan's and the paper's selection (connote's default above 500 items before);
* ``leaf``: the leaves of the condensed tree (connote's default below 500 items before).

Reported per collection and arm: clusters and outlier share per seed, the largest cluster's share of the
clustered items (a collapse: more than half in one cluster where the data has several groups), the mean
pairwise ARI between the seeds (:func:`connote.evaluate.stability.seed_stability`), the ARI of each seed
with the known labels (over all items, outliers one group; and over the clustered items only), and the
representative seed with the mean cluster-wise stability of its clusters.

Collections: the MultiClimate frames (../shared/datasets) as transcript sentences and as offline
descriptions (known labels: the video, 100 of them), the COCO-128 captions (known: the dominant COCO
category), and generated collections of 1,000, 10,000 and 100,000 items with 30 known groups
(benchmarks/sweep.py's generator: Gaussian groups in a 24-d latent space, embedded in 384 dimensions; the
100,000-item one in 48 dimensions and two seeds, to fit the shared machine).

    python benchmarks/default_selection.py --studies /tmp/trust   # mc/ and coco/ studies made beforehand

The studies: ``connote init``; ``connote import-descriptions`` of the transcripts (set 'transcripts') or
captions (set 'captions'); ``connote describe`` (offline) for the frames; ``connote embed`` of each set.
Writes benchmarks/results/default_selection.json and .md.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
SEEDS = (42, 48, 112)
ARMS = ("eom", "leaf")


def known_labels(study, shas: list[str], dataset: Path, column: str) -> list[str]:
    """The known label of each item (by its image's file name in the dataset's labels.csv)."""
    with open(dataset / "labels.csv", newline="", encoding="utf-8") as fh:
        by_name = {Path(r["filename"]).name: r[column] for r in csv.DictReader(fh)}
    name = {}
    for r in study.images(status="ok"):
        name.setdefault(r["sha256"], Path(r["path"]).name)
    return [by_name.get(name.get(s, ""), "?") for s in shas]


def real(studies: Path, shared: Path, sets: str | None = None) -> list[tuple[str, np.ndarray, list]]:
    from connote.errors import UserError
    from connote.features import features
    from connote.study import Study

    out = []
    wanted = set(sets.split(",")) if sets else None
    for folder, dataset, chosen, column in (
        ("mc", "multiclimate_frames", ("transcripts", "offline"), "label"),
        ("coco", "coco128", ("captions",), "dominant_category"),
    ):
        study = Study.open(studies / folder)
        for name in chosen:
            if wanted and name not in wanted:
                continue
            try:
                feats = features(study, "text", description_set=name)
            except UserError as exc:  # not described or embedded yet
                print(f"{dataset}: {name}: skipped: {exc}", file=sys.stderr)
                continue
            truth = known_labels(study, feats.shas, shared / dataset, column)
            out.append((f"{dataset}: {name}", feats.X, truth))
    return out


def synthetic(n: int, dim: int) -> tuple[str, np.ndarray, list]:
    """benchmarks/sweep.py's flat generator: 30 well separated groups."""
    sys.path.insert(0, str(HERE))
    from sweep import synthetic as make

    X, truth = make(n, dim=dim, k=30, latent=24, seed=0)
    return f"generated {n:,} ({dim}-d, 30 groups)", X, truth.tolist()


def nested(n: int, dim: int, themes: int = 5, topics: int = 6, seed: int = 0) -> tuple[str, np.ndarray, list]:
    """Groups within groups, as topics within themes: ``themes`` x ``topics`` groups (sizes from a
    Dirichlet), each topic's centre near its theme's (theme spread 3, topic spread 1.3, items 1.0 around
    their topic in a 24-d latent space), embedded in ``dim`` dimensions with noise and l2-normalised. The
    known labels are the topics."""
    rng = np.random.default_rng(seed)
    k = themes * topics
    sizes = np.maximum(1, np.round(rng.dirichlet(np.full(k, 2.0)) * n)).astype(int)
    truth = np.repeat(np.arange(k), sizes)[:n]
    truth = np.concatenate([truth, rng.integers(0, k, n - len(truth))]) if len(truth) < n else truth
    rng.shuffle(truth)
    latent = 24
    theme_c = rng.normal(0, 3.0, (themes, latent))
    topic_c = theme_c[np.arange(k) // topics] + rng.normal(0, 1.3, (k, latent))
    Z = topic_c[truth] + rng.normal(0, 1.0, (n, latent))
    basis, _ = np.linalg.qr(rng.normal(size=(dim, latent)))
    X = Z @ basis.T + rng.normal(0, 0.15, (n, dim))
    X /= np.linalg.norm(X, axis=1, keepdims=True)
    return (
        f"generated {n:,}, nested ({dim}-d, {themes} x {topics} groups)",
        X.astype(np.float32),
        truth.tolist(),
    )


def measure(name: str, X: np.ndarray, truth: list, seeds, say) -> dict:
    from connote import fitting, knn, registry
    from connote.clustering import HDBSCANClusterer
    from connote.defaults import DEFAULT_REDUCE, default_min_cluster_size
    from connote.evaluate.stability import adjusted_rand_index, cluster_stability, seed_stability

    n = len(X)
    load = round(os.getloadavg()[0], 1)
    mcs = default_min_cluster_size(n)
    clusterers = [HDBSCANClusterer(min_cluster_size=mcs, cluster_selection_method=a) for a in ARMS]
    reducers = [registry.reducer(DEFAULT_REDUCE, seed=s) for s in seeds]
    t = time.perf_counter()
    graph = None
    if knn.can_slice(n, reducers[0].metric):
        graph = knn.knn_graph(X, reducers[0].effective(n)[1], metric=reducers[0].metric)
    labels = {a: {} for a in ARMS}
    seconds = {"knn": round(time.perf_counter() - t, 1)}
    for seed, reducer in zip(seeds, reducers):
        t = time.perf_counter()
        fit = fitting.fit(X, reducer, clusterers, knn=graph)
        seconds[f"seed {seed}"] = round(time.perf_counter() - t, 1)
        for arm, (lab, _) in zip(ARMS, fit.results):
            labels[arm][seed] = {str(i): int(v) for i, v in enumerate(lab)}
        say(f"{name}: seed {seed} in {seconds[f'seed {seed}']} s (load {os.getloadavg()[0]:.1f})")
    arms = {}
    groups = len(set(truth))
    for arm in ARMS:
        st = seed_stability(labels[arm])
        per_seed = []
        for seed in seeds:
            lab = [labels[arm][seed][str(i)] for i in range(n)]
            clustered = [i for i, v in enumerate(lab) if v != -1]
            sizes = np.bincount([lab[i] for i in clustered]) if clustered else np.zeros(1)
            per_seed.append(
                {
                    "seed": seed,
                    "clusters": len(set(lab) - {-1}),
                    "outlier_share": round(1 - len(clustered) / n, 4),
                    "largest_share": round(float(sizes.max() / max(1, len(clustered))), 4),
                    "ari_truth_all": round(adjusted_rand_index(lab, truth), 4),
                    "ari_truth_clustered": round(
                        adjusted_rand_index([lab[i] for i in clustered], [truth[i] for i in clustered]), 4
                    )
                    if len(clustered) > 1
                    else None,
                }
            )
        kept = labels[arm][st.kept]
        cs = cluster_stability(kept, [labels[arm][s] for s in seeds if s != st.kept])
        arms[arm] = {
            "per_seed": per_seed,
            "mean_ari": round(st.mean_ari, 4),
            "min_ari": round(st.min_ari, 4),
            "kept": st.kept,
            "kept_clusters": n_of(kept),
            "mean_cluster_stability": round(float(np.mean(list(cs.values()))), 4) if cs else None,
            "unstable_clusters": sum(v < 0.5 for v in cs.values()),
            "collapse": any(p["largest_share"] > 0.5 for p in per_seed) and groups > 1,
        }
    return {
        "collection": name,
        "n": n,
        "groups": groups,
        "min_cluster_size": mcs,
        "seconds": seconds,
        "load": [load, round(os.getloadavg()[0], 1)],  # 1-minute load average before and after
        "arms": arms,
    }


def n_of(labels: dict) -> int:
    return len(set(labels.values()) - {-1})


def conclude(result: dict) -> list[str]:
    """Per arm, over the collections measured: collapses, seed ARI below 0.5, outlier shares; and which
    arm meets the default's bar (seeds agree at mean ARI >= 0.5, no collapse, wherever there are groups)."""
    lines, passing = ["## What the measurement says", ""], []
    for arm in ARMS:
        rows = [(c["collection"], c["arms"][arm]) for c in result["collections"] if arm in c["arms"]]
        if not rows:
            continue
        collapsed = [name for name, a in rows if a["collapse"]]
        shaky = [f"{name} ({a['mean_ari']:.2f})" for name, a in rows if a["mean_ari"] < 0.5]
        outliers = [p["outlier_share"] for _, a in rows for p in a["per_seed"]]
        lines.append(
            f"- **{arm}**: collapses (more than half of the clustered items in one cluster, on some seed) on "
            f"{len(collapsed)} of {len(rows)} collections{': ' + ', '.join(collapsed) if collapsed else ''}; "
            f"seeds agree below mean ARI 0.5 on {len(shaky)}{': ' + ', '.join(shaky) if shaky else ''}; "
            f"outlier share {min(outliers):.0%}-{max(outliers):.0%}."
        )
        if not collapsed and not shaky:
            passing.append(arm)
    lines += [
        "",
        f"Arms that meet the bar on every collection measured: {', '.join(passing) or 'none'}. connote's "
        "default cluster selection is **leaf** at every size (`connote.defaults.default_selection`), with the "
        "default min cluster size unchanged. Its price is a higher outlier share; the run page says so from "
        "40% on and points to `connote assign-outliers`.",
    ]
    return lines


def render(result: dict) -> str:
    lines = [
        "# Default cluster selection: eom against leaf (benchmarks/default_selection.py)",
        "",
        f"- machine: {result['machine']}; load average at start {result['load_start']}, at end "
        f"{result['load_end']} (2 cores shared with other engineers' work: seconds are not comparable)",
        "- setting: connote's defaults (UMAP 5 x 15 cosine, min cluster size about 1% of n, at least 5), "
        "seeds 42, 48, 112 unless stated; the seeds share one exact kNN graph up to 25,000 items",
        "- columns: clusters and outlier share per seed; largest = the largest cluster's share of the "
        "clustered items, worst seed; seed ARI = mean (min) pairwise ARI between the seeds; "
        "truth ARI = mean over seeds of the ARI with the known labels, over all items (outliers one group) "
        "/ over the clustered items; kept = the representative seed, its clusters and their mean "
        "cluster-wise stability (mean best Jaccard over the other seeds)",
        *[f"- {note}" for note in result.get("notes", [])],
        "",
        "| collection | n | groups | mcs | arm | clusters | outliers | largest | seed ARI | truth ARI all / clustered "
        "| kept: clusters, stability | collapse |",
        "|---|---:|---:|---:|---|---|---|---:|---|---|---|---|",
    ]
    for c in result["collections"]:
        for arm, a in c["arms"].items():
            ps = a["per_seed"]
            truth_c = [p["ari_truth_clustered"] for p in ps if p["ari_truth_clustered"] is not None]
            lines.append(
                f"| {c['collection']} | {c['n']:,} | {c['groups']} | {c['min_cluster_size']} | {arm} "
                f"| {' / '.join(str(p['clusters']) for p in ps)} "
                f"| {' / '.join(format(p['outlier_share'], '.0%') for p in ps)} "
                f"| {max(p['largest_share'] for p in ps):.0%} "
                f"| {a['mean_ari']:.2f} ({a['min_ari']:.2f}) "
                f"| {np.mean([p['ari_truth_all'] for p in ps]):.2f} / "
                f"{(np.mean(truth_c) if truth_c else float('nan')):.2f} "
                f"| seed {a['kept']}: {a['kept_clusters']}, {a['mean_cluster_stability']} "
                f"| {'**yes**' if a['collapse'] else 'no'} |"
            )
    lines += ["", *conclude(result), ""]
    if result.get("not_run"):
        lines += ["Not run: " + "; ".join(result["not_run"]), ""]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--studies", type=Path, default=Path("/tmp/trust"))
    ap.add_argument("--shared", type=Path, default=HERE.parent.parent / "shared" / "datasets")
    ap.add_argument("--sizes", default="1000,10000,100000")
    ap.add_argument("--sets", help="description sets of the real collections (default: all)")
    ap.add_argument("--only", help="real, synthetic (flat groups) or nested (groups within groups)")
    ap.add_argument("--out", type=Path, default=HERE / "results" / "default_selection")
    ap.add_argument("--merge", type=Path, help="add this results JSON's collections (another arm's) and stop")
    ap.add_argument("--note", action="append", default=[], help="a note for the results file (repeatable)")
    args = ap.parse_args()
    if not args.shared.is_dir():
        args.shared = Path("/work/shared/datasets")

    def say(msg):
        print(msg, file=sys.stderr, flush=True)

    out_json = args.out.with_suffix(".json")
    result = json.loads(out_json.read_text()) if out_json.is_file() else {"collections": []}
    if not (args.merge or args.note):
        result.update(
            machine=f"{os.cpu_count()} cores, {platform.platform()}, Python {platform.python_version()}",
            load_start=round(os.getloadavg()[0], 2),
        )

    def save(entry):  # merged with what is on disk now (another arm may have written meanwhile)
        if out_json.is_file():
            result["collections"] = json.loads(out_json.read_text())["collections"]
        result["collections"] = [c for c in result["collections"] if c["collection"] != entry["collection"]]
        result["collections"].append(entry)
        result["load_end"] = round(os.getloadavg()[0], 2)
        out_json.write_text(json.dumps(result, indent=2))
        args.out.with_suffix(".md").write_text(render(result))

    if args.merge or args.note:
        if args.merge:
            other = json.loads(args.merge.read_text())
            for entry in other["collections"]:
                save(entry)
            result["load_start"] = f"{result['load_start']} and {other['load_start']} (the other arm)"
        result["notes"] = result.get("notes", []) + args.note
        save(result["collections"][-1])
        return

    collections = []
    if args.only in (None, "real"):
        collections += [(c, SEEDS) for c in real(args.studies, args.shared, args.sets)]
    if args.only in (None, "synthetic"):
        for n in (int(s) for s in args.sizes.split(",") if s):
            collections.append(
                (synthetic(n, 384 if n <= 10_000 else 48), SEEDS if n <= 10_000 else SEEDS[:2])
            )
    if args.only in (None, "nested"):
        for n in (int(s) for s in args.sizes.split(",") if s):
            collections.append((nested(n, 384 if n <= 10_000 else 48), SEEDS if n <= 10_000 else SEEDS[:2]))
    for (name, X, truth), seeds in collections:
        say(f"{name}: {len(X)} items, seeds {seeds}")
        save(measure(name, np.asarray(X, dtype=np.float32), truth, seeds, say))


if __name__ == "__main__":
    main()
