"""The pages of one run: the run page with its map (``run-N/index.html``), one page per cluster (paged:
``cluster-C.html``, ``cluster-C-2.html`` ...), the outliers' page, and the data files the map reads.

Data for the browser is written as JavaScript files (``window.CONNOTE_... = {...}``) loaded by classic
``<script>`` tags, because Chromium refuses ``fetch()`` and module imports of local files over file://:

- ``maps/<key>.js``: one per feature set (shared by every run clustered on it): the 2-D coordinates, file
  names, thumbnails and the start of each description;
- ``run-N/run.js``: the run's labels (aligned with its map), its clusters (keywords, label, page) and any
  extra columns to colour by;
- ``details/<set>/<xx>.js``: full descriptions and their model calls, in 256 chunks by the first two hex
  digits of the image hash, loaded when an image is opened on the map.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path, PurePosixPath
from urllib.parse import quote

import numpy as np

from connote import layout
from connote.metadata import map_columns
from connote.reports.typical import centroids, closeness, nearest_other, typical_order, unit_rows
from connote.study import reporting

OUTLIER = -1
SNIPPET = 160


def js_file(var: str, data) -> bytes:
    return f"window.{var} = {json.dumps(data, ensure_ascii=False, separators=(',', ':'))};\n".encode()


def js_call(fn: str, *args) -> bytes:
    inner = ",".join(json.dumps(a, ensure_ascii=False, separators=(",", ":")) for a in args)
    return f"{fn}({inner});\n".encode()


def cluster_page(c: int, page: int = 1) -> str:
    base = "outliers" if c == OUTLIER else f"cluster-{c}"
    return f"{base}.html" if page == 1 else f"{base}-{page}.html"


def _pct(part: int, whole: int) -> str:
    return f"{100 * part / whole:.1f}%" if whole else "0%"


def _file_uris(study):
    """rel path -> absolute file:// URL (percent-encoded), with the root converted once."""
    try:
        root = study.images_root.absolute().as_uri().rstrip("/")
    except ValueError:
        return lambda rel: None
    return lambda rel: f"{root}/{quote(rel, safe='/')}"


def _cost(x) -> str | None:
    if x is None:
        return None
    return f"${x:.4f}" if x < 1 else f"${x:.2f}"


def _call_info(d: dict | None) -> dict | None:
    """The model call that wrote a description, for display (None fields stay None)."""
    if not d:
        return None
    return {
        "call_id": d.get("call_id"),
        "backend": d.get("backend"),
        "model": d.get("model"),
        "tokens": None
        if d.get("input_tokens") is None and d.get("output_tokens") is None
        else f"{d.get('input_tokens') or 0} in / {d.get('output_tokens') or 0} out",
        "cost": _cost(d.get("cost_usd")),
        "when": d.get("started"),
        "status": d.get("status"),
        "reason": d.get("reason"),
    }


#: From this share of outliers on, the run page says so and points to ``connote assign-outliers``.
HIGH_OUTLIER_SHARE = 0.4


class RunPages:
    """Builds every page and data file of one run into ``out`` (the report folder)."""

    def __init__(self, study, run, out: Path, *, thumbs_for, write, env, per_page: int = 120, labels=None):
        self.study, self.run, self.out = study, run, out
        self.thumbs_for, self.write, self.env = thumbs_for, write, env
        self.per_page = per_page
        from connote.derive import report_context

        # labels, parent, assigned outliers, suggested merges, metadata breakdowns (connote.derive)
        self.derived = report_context(study, run)
        self.run_id = int(run["id"])
        # cluster -> label (given, or the latest stored by `connote label`), shown wherever a cluster is named
        stored = study.labels(self.run_id)
        self.labels = labels if labels is not None else {c: r["label"] for c, r in stored.items()}
        self.summaries = {c: r["summary"] for c, r in stored.items() if r["summary"]}
        self.dir = out / f"run-{self.run_id}"
        self.file_uri = _file_uris(study)
        from connote.listing import run_cluster_stability

        # cluster -> stability against the other seeds of the setting; None: one seed, or a derived run
        self.stability = run_cluster_stability(study, self.run_id)
        from connote.evoc import layer_runs

        self.layers = layer_runs(study, self.run_id)  # an EVoC layer: its finer clusters ({} otherwise)

    # ---------------------------------------------------------------------------------------- data
    def collect(self, common: dict) -> dict:
        study, run = self.study, self.run
        member = reporting.memberships(study, self.run_id)
        paths = reporting.image_paths(study)
        feats = reporting.run_features(study, run)
        shas = feats.shas if feats is not None else sorted(member)
        n = len(shas)
        labels = np.array([member[s][0] for s in shas], dtype=int)
        probs = [member[s][1] for s in shas]
        names = [paths[s][0] if s in paths else s[:12] for s in shas]

        # descriptions: the run's own set, or (image features) the latest set, to show beside the images
        set_row = reporting.description_set_row(study, run["description_set"])
        if set_row is None and study.description_sets():
            set_row = study.description_sets()[-1]
        details = reporting.description_details(study, set_row["id"]) if set_row is not None else {}

        close = np.full(n, np.nan)
        other = np.full(n, OUTLIER, dtype=int)
        margin = np.full(n, np.nan)
        xy, map_method = None, None
        if feats is not None and n:
            U = unit_rows(feats.X)
            cents = centroids(U, labels)
            close = closeness(U, labels, cents)
            other, margin = nearest_other(U, labels, cents)
            xy, map_method = layout.map_layout(study, feats)

        keywords = reporting.keyword_scores(study, self.run_id)
        members: dict[int, list[int]] = {}
        for i, c in enumerate(labels.tolist()):
            members.setdefault(c, []).append(i)
        order = sorted((c for c in members if c != OUTLIER), key=lambda c: (-len(members[c]), c))
        if OUTLIER in members:
            order.append(OUTLIER)
        # members most typical first; outliers (no centre of their own) nearest a cluster first
        ranked = {
            c: [
                members[c][j]
                for j in typical_order(
                    [None if c == OUTLIER else probs[i] for i in members[c]],
                    [margin[i] if c == OUTLIER else close[i] for i in members[c]],
                    [names[i] for i in members[c]],
                )
            ]
            for c in order
        }
        # thumbnails for every image: the map's hover and the cluster pages show them
        thumbs = self.thumbs_for({s: study.image_file(paths[s][0]) for s in shas if s in paths})

        return {
            "shas": shas,
            "labels": labels,
            "probs": probs,
            "names": names,
            "paths": paths,
            "set_row": set_row,
            "details": details,
            "close": close,
            "other": other,
            "margin": margin,
            "xy": xy,
            "map_method": map_method,
            "map_key": feats.key if feats is not None else None,
            "keywords": keywords,
            "members": members,
            "order": order,
            "ranked": ranked,
            "thumbs": thumbs,
            "common": common,
        }

    # ---------------------------------------------------------------------------------------- pages
    def cluster_title(self, c: int) -> str:
        if c == OUTLIER:
            return "Outliers"
        label = self.labels.get(c)
        return f"Cluster {c}: {label}" if label else f"Cluster {c}"

    def tile(self, d: dict, i: int, prefix: str = "../") -> dict:
        sha = d["shas"][i]
        ps = d["paths"].get(sha, [])
        det = d["details"].get(sha)
        p = d["probs"][i]
        cl = d["close"][i]
        oth = int(d["other"][i])
        return {
            "sha": sha,
            "thumb": prefix + d["thumbs"][sha] if sha in d["thumbs"] else None,
            "title": ps[0] if ps else f"(no file for {sha[:12]})",
            "name": PurePosixPath(ps[0]).name if ps else sha[:12],
            "copies": [{"path": x, "href": self.file_uri(x)} for x in ps],
            "text": det["text"] if det else None,
            "call": _call_info(det),
            "strength": None if p is None else f"{p:.2f}",
            "closeness": None if math.isnan(cl) else f"{cl:.3f}",
            "near": None if oth == OUTLIER else {"id": oth, "href": cluster_page(oth)},
            "assigned": f"{self.derived['assigned'][sha][1]:.3f}"
            if sha in self.derived["assigned"]
            else None,
        }

    def write_all(self, common: dict) -> Path:
        d = self.collect(common)
        self.dir.mkdir(parents=True, exist_ok=True)
        clusters = self.cluster_summaries(d)
        self.write_data(d, clusters)
        for cl in clusters:
            self.write_cluster_pages(d, cl, clusters)
        return self.write_run_page(d, clusters)

    def cluster_summaries(self, d: dict) -> list[dict]:
        n = len(d["shas"])
        biggest = max((len(d["members"][c]) for c in d["order"]), default=0)
        out = []
        for c in d["order"]:
            size = len(d["members"][c])
            out.append(
                {
                    "id": c,
                    "outlier": c == OUTLIER,
                    "title": self.cluster_title(c),
                    "label": self.labels.get(c),
                    "summary": self.summaries.get(c),
                    "breakdowns": {
                        name: {
                            **{k: b[k] for k in ("column", "type", "unit")},
                            "values": b["clusters"].get(c, {}),
                            "missing": b["missing"].get(c, 0),
                        }
                        for name, b in self.derived["breakdowns"].items()
                    },
                    "href": cluster_page(c),
                    **self.cluster_stability(c),
                    "size": size,
                    "share": _pct(size, n),
                    "bar": round(100 * size / biggest, 2) if biggest else 0,
                    "keywords": d["keywords"].get(c, []),
                    "pages": max(1, math.ceil(size / self.per_page)),
                    "preview": [self.tile(d, i) for i in d["ranked"][c][:6]],
                }
            )
        return out

    def cluster_stability(self, c: int) -> dict:
        """The cluster's stability against the other seeds (None where unknown) and whether it is below
        :data:`~connote.evaluate.stability.CLUSTER_UNSTABLE_BELOW`."""
        from connote.evaluate.stability import CLUSTER_UNSTABLE_BELOW

        value = None if self.stability is None or c == OUTLIER else self.stability.get(c)
        return {"stability": value, "unstable": value is not None and value < CLUSTER_UNSTABLE_BELOW}

    def write_data(self, d: dict, clusters: list[dict]) -> None:
        out = self.out
        set_row = d["set_row"]
        set_dir = f"details/set-{set_row['id']}" if set_row is not None else None
        if d["xy"] is not None:
            snippets = []
            for s in d["shas"]:
                det = d["details"].get(s)
                t = (det["text"] or "") if det else ""
                snippets.append(t[:SNIPPET] + ("…" if len(t) > SNIPPET else ""))
            data = {
                "key": d["map_key"],
                "method": d["map_method"],
                "shas": d["shas"],
                "x": [round(float(v), 5) for v in d["xy"][:, 0]],
                "y": [round(float(v), 5) for v in d["xy"][:, 1]],
                "names": d["names"],
                "thumbs": [1 if s in d["thumbs"] else 0 for s in d["shas"]],  # thumbs/<sha>.jpg exists
                "snippets": snippets,
                "details": set_dir,
                "root": self.file_uri(""),  # file:// URL of the images root; an image's URL is root + name
            }
            self.write(out / "maps" / f"{d['map_key'][:24]}.js", js_file("CONNOTE_MAP", data))
        if set_row is not None:
            chunks: dict[str, dict] = {}
            for s, det in d["details"].items():  # the whole set: every run of it shares the chunks
                chunks.setdefault(s[:2], {})[s] = {"text": det["text"], **(_call_info(det) or {})}
            head = {k: set_row[k] for k in ("name", "describer", "model", "prompt")}
            for prefix, items in chunks.items():
                self.write(
                    out / str(set_dir) / f"{prefix}.js", js_call("connoteDetails", prefix, head, items)
                )
        run_data = {
            "id": self.run_id,
            "map": d["map_key"][:24] if d["map_key"] else None,
            "labels": d["labels"].tolist(),
            "clusters": {
                str(cl["id"]): {
                    "title": cl["title"],
                    "label": cl["label"],
                    "keywords": [k for k, _ in cl["keywords"][:4]],
                    "size": cl["size"],
                    "href": cl["href"],
                    "stability": cl["stability"],
                    "unstable": cl["unstable"],
                }
                for cl in clusters
            },
            "columns": map_columns(self.study, d["shas"]),  # name -> category per item (metadata)
        }
        self.write(self.dir / "run.js", js_file("CONNOTE_RUN", run_data))

    def write_cluster_pages(self, d: dict, cl: dict, clusters: list[dict]) -> None:
        c = cl["id"]
        ranked = d["ranked"][c]
        quotes = []
        for i in ranked[: 0 if c == OUTLIER else 5]:
            det = d["details"].get(d["shas"][i])
            if det and det["text"]:
                quotes.append({"text": det["text"], "name": d["names"][i], "sha": d["shas"][i]})
        border = []
        if c != OUTLIER:
            cand = [i for i in ranked if not math.isnan(d["margin"][i]) and d["other"][i] != OUTLIER]
            cand.sort(key=lambda i: d["margin"][i])
            border = [self.tile(d, i) for i in cand[: min(12, len(ranked) // 4)]]
        pages = cl["pages"]
        index = {x["id"]: x for x in clusters}
        for page in range(1, pages + 1):
            chunk = ranked[(page - 1) * self.per_page : page * self.per_page]
            ctx = {
                **d["common"],
                "run": self.run_summary(d),
                "cluster": cl,
                "keywords": cl["keywords"],
                "quotes": quotes if page == 1 else [],
                "border": border if page == 1 else [],
                "tiles": [self.tile(d, i) for i in chunk],
                "first_rank": (page - 1) * self.per_page + 1,
                "page": page,
                "pages": [{"n": p, "href": cluster_page(c, p)} for p in range(1, pages + 1)],
                "clusters": clusters,
                "index": index,
                "desc_set": self.desc_set(d),
                "keyword_method": self.derived["keyword_method"],
                "finer": self.finer_clusters(c),
            }
            html = self.env.get_template("cluster.html.j2").render(**ctx)
            self.write(self.dir / cluster_page(c, page), html.encode("utf-8", errors="replace"))

    def finer_clusters(self, c: int) -> dict | None:
        """For a cluster of an EVoC layer: the clusters of the next finer layer's run inside it."""
        kids = self.layers.get("children", {}).get(c)
        if not kids:
            return None
        run = self.layers["finer"]
        return {
            "run": run,
            "layer": self.layers["layer"] - 1,
            "clusters": [{"id": k, "href": f"../run-{run}/{cluster_page(k)}"} for k in kids],
        }

    def desc_set(self, d: dict) -> dict | None:
        r = d["set_row"]
        return None if r is None else {k: r[k] for k in ("name", "describer", "model", "prompt")}

    def flagged(self, d: dict) -> list[dict]:
        """The flagged descriptions of the run's description set (reason, text, in use or left out)."""
        from connote.study import flags

        if self.run["features"] != "text" or d["set_row"] is None:
            return []
        return [f.as_dict() for f in flags.flagged(self.study, d["set_row"]["name"])]

    def run_summary(self, d: dict) -> dict:
        run = self.run
        n = len(d["shas"])
        n_out = len(d["members"].get(OUTLIER, []))
        return {
            "id": self.run_id,
            "n_items": n,
            "n_clusters": sum(1 for c in d["order"] if c != OUTLIER),
            "n_outliers": n_out,
            "outlier_share": _pct(n_out, n),
            "features": run["features"],
            "description_set": run["description_set"],
            "embedder": run["embedder"],
            "reduce": run["reduce"],
            "min_cluster_size": run["min_cluster_size"],
            "seed": run["seed"],
        }

    def seed_context(self, record: dict, d: dict) -> dict:
        """What the run page says about seeds and stability: of several seeds, which ran, which was kept
        and why; the unstable clusters; a high outlier share and what to do about it."""
        from connote.evaluate.stability import SeedStability

        seeds = record.get("seeds") if isinstance(record, dict) else None
        n = len(d["shas"])
        n_out = len(d["members"].get(OUTLIER, []))
        unstable = sorted(c for c, v in (self.stability or {}).items() if v < 0.5)
        sizes = [len(m) for c, m in d["members"].items() if c != OUTLIER]
        largest = max(sizes, default=0) / max(1, sum(sizes))
        return {
            # one cluster holds more than half of the clustered images: said, not hidden
            "collapse": f"{largest:.0%}" if largest > 0.5 else None,
            "seeds": seeds,
            "seed_text": SeedStability.from_dict(seeds["seed_stability"]).describe() if seeds else None,
            "has_stability": self.stability is not None,
            "unstable_clusters": unstable,
            "high_outliers": bool(n) and n_out / n >= HIGH_OUTLIER_SHARE,
            "assign_cmd": f"connote assign-outliers {shlex.quote(str(self.study.path))} {self.run_id}",
            "common_terms": self.derived.get("common_terms") or {},
        }

    def write_run_page(self, d: dict, clusters: list[dict]) -> Path:
        run = self.run
        record = reporting.run_record(run)
        params = [
            ("features", run["features"]),
            ("description set", run["description_set"] or "—"),
            ("embedder", run["embedder"]),
            ("reduce", run["reduce"]),
            ("min_cluster_size", run["min_cluster_size"]),
            ("min_samples", "auto" if run["min_samples"] is None else run["min_samples"]),
            ("seed", "none" if run["seed"] is None else run["seed"]),
            ("created", run["created"]),
            ("run key", run["key"]),
        ]
        if run["label"]:
            params.append(("label", run["label"]))
        origin = self.study.derivation(self.run_id)
        if origin:
            params.insert(0, ("derived from", f"run {origin['parent']} ({origin['kind']})"))
        try:
            pretty = json.dumps(json.loads(run["params"]), indent=2, sort_keys=True, ensure_ascii=False)
        except (TypeError, ValueError):
            pretty = str(run["params"])
        desc_note = None
        if run["features"] == "image":
            desc_note = "this run clustered image features; descriptions are shown for reading only"
            if d["set_row"] is None:
                desc_note = "this run clustered image features; it used no descriptions"
        elif d["set_row"] is None:
            desc_note = "this run records no description set"
        map_note = None
        if d["xy"] is None:
            map_note = (
                "No map: the feature vectors this run was clustered on are not in the study any more "
                f"(run `connote embed {shlex.quote(str(self.study.path))}` again)."
            )
        ctx = {
            **d["common"],
            "run": self.run_summary(d),
            "params": [(k, str(v)) for k, v in params],
            "record": pretty,
            "notes": record.get("notes", []) if isinstance(record, dict) else [],
            "clusters": clusters,
            "desc_set": self.desc_set(d),
            "desc_note": desc_note,
            "flagged": self.flagged(d),
            "left_out": (record.get("left_out") or {}).get("total") if isinstance(record, dict) else None,
            "accept_cmd": f"connote describe {shlex.quote(str(self.study.path))} --accept IMAGE",
            "has_keywords": bool(d["keywords"]),
            "explain_cmd": f"connote explain {shlex.quote(str(self.study.path))} {self.run_id}",
            "map_note": map_note,
            "map_src": f"../maps/{d['map_key'][:24]}.js" if d["xy"] is not None else None,
            "map_method": d["map_method"],
            "n_files": sum(len(d["paths"].get(s, [])) for s in d["shas"]),
            "derived": self.derived["derived"],
            "suggestions": self.derived["suggestions"],
            "n_assigned": len(self.derived["assigned"]),
            **self.seed_context(record, d),
        }
        html = self.env.get_template("run.html.j2").render(**ctx)
        target = self.dir / "index.html"
        self.write(target, html.encode("utf-8", errors="replace"))
        return target
