"""The pipeline as plain functions over a study folder: the same names and defaults as the CLI.

    >>> import connote
    >>> study = connote.init("study", images="photos/")
    >>> connote.describe(study)                       # S1 (offline describer by default)
    >>> connote.embed(study)                          # S2 all-MiniLM-L6-v2
    >>> run_id = connote.cluster(study)               # S3 UMAP + S4 HDBSCAN
    >>> connote.explain(study, run_id)                # S5 TF-IDF keywords
    >>> connote.report(study)                         # study/report/index.html (every run)

Each step reads what it needs from the study and writes its results back; re-running a step reuses what
is already there.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from connote import registry
from connote.clustering import HDBSCANClusterer
from connote.defaults import (
    DEFAULT_DESCRIBER,
    DEFAULT_IMAGE_EMBEDDER,
    DEFAULT_REDUCE,
    DEFAULT_SEED,
    DEFAULT_SEEDS,
    DEFAULT_TEXT_EMBEDDER,
    DEFAULT_TOP_K,
)
from connote.describers.base import PAPER_PROMPT
from connote.errors import UserError
from connote.evaluate.stability import SeedStability, seed_stability
from connote.executors import executor_scope
from connote.explaining import explain
from connote.features import features
from connote.safe_write import check_output, replacing
from connote.seeds import ClusterResult, cluster_seeded, takes_seed
from connote.study import Study
from connote.study.runs import usable_set


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
    if Path(study_dir).resolve() == root.resolve():
        raise UserError(
            f"{study_dir}: the study folder cannot be the images folder itself (its report would be scanned "
            "as images); use a folder beside it or inside it"
        )
    study = Study.create(study_dir, root)
    records = images_mod.scan(root, progress=progress)
    study.upsert_images(records)
    found = {r["path"] for r in records}
    study.remove_images(r["path"] for r in study.images(status=None) if r["path"] not in found)
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
    describer=DEFAULT_DESCRIBER,
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
    cancel_batch: bool = False,
    executor=None,
    **describer_options,
):
    """S1: describe every distinct image that has no description in the set yet. Returns a summary
    (a DescribeEstimate with ``dry_run``: nothing is sent). ``batch`` uses the OpenAI Batch API;
    ``cancel_batch`` cancels the set's batch in flight and stores what it had finished (sends nothing else).
    ``executor``: 'local' (default), 'ray' or 'ray:ADDRESS' (batches on Ray workers; see executors/)."""
    from connote.describers.runner import DescribeRunner

    study = Study.of(study)
    if not study.has_images():
        raise UserError(
            f"{study.path}: no readable images; add some with `connote init {study.path} --images DIR`"
        )
    options = {k: v for k, v in describer_options.items() if v is not None}
    d = registry.describer(describer, **options)
    runner = DescribeRunner(d, prompt=prompt or PAPER_PROMPT, name=name, max_cost=max_cost, check=_checker())
    if dry_run:
        return runner.estimate(study, retry_flagged=retry_flagged, batch=batch)
    study.require_writable("describe")  # before anything is sent (and paid for)
    if cancel_batch:
        from connote.describers.batch import cancel_batch as cancel

        return cancel(study, runner)
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
    if executor not in (None, "local"):  # batches on Ray workers; the runner and the store stay here
        with executor_scope(executor) as ex:
            runner.describer = ex.describer(d, describer, options)
            return runner.run(study, retry_flagged=retry_flagged, progress=progress)
    return runner.run(study, retry_flagged=retry_flagged, progress=progress)


def import_descriptions(
    study: Study | str | os.PathLike,
    path: str | os.PathLike,
    *,
    name: str | None = None,
    check: bool = False,
    exclude_flagged: bool = False,
):
    """Descriptions made elsewhere (CSV or JSONL with columns image,text) as a description set.

    Stored as given. ``check`` runs the output checks, which flag texts (they stay in use);
    ``exclude_flagged`` (implies ``check``) keeps the flagged ones apart.
    """
    from connote.describers.importer import import_file

    checker = _checker() if check or exclude_flagged else None
    return import_file(Study.of(study), path, name=name, check=checker, exclude_flagged=exclude_flagged)


def _checker():
    from connote.describers.checks import check_description  # imported when a step needs it

    return check_description


# ---------------------------------------------------------------------------------------------- S2
def embed(
    study: Study | str | os.PathLike,
    text: str | None = DEFAULT_TEXT_EMBEDDER,
    image: str | None = None,
    *,
    description_set: str | None = None,
    progress: bool = True,
    executor=None,
    text_options: dict | None = None,
    image_options: dict | None = None,
    **options,
):
    """S2: embed the descriptions (``text``) and/or the pixels (``image``). Returns a list of summaries.

    ``options`` go to the one embedder asked for; asking for both, give ``text_options`` and
    ``image_options`` instead. An option an embedder does not take is refused by name. ``executor``:
    'local' (default), 'ray' or 'ray:ADDRESS' (Ray Data batch inference, one model per worker)."""
    if text and image and options:
        raise UserError(
            f"options ({', '.join(sorted(options))}) for which embedder? Give text_options= and image_options="
        )
    from connote import embedders as embed_mod

    study = Study.of(study)
    study.require_writable("embed")
    out = []
    with executor_scope(executor) as ex:
        if text:
            ds = usable_set(study, description_set)
            emb = registry.text_embedder(text, **(text_options or options)).for_study(study)
            emb = emb.prepare(study)  # e.g. no API key: one clear error before anything is sent
            # read from the study a chunk at a time, each chunk's vectors stored before the next is read
            out.append(embed_mod.embed_description_set(study, emb, ds["id"], progress=progress, executor=ex))
        if image:
            emb = registry.image_embedder(image, **(image_options or ({} if text else options)))
            emb = emb.prepare(study)  # loads the weights; may fall back to another model (with a notice)
            summary = embed_mod.embed_images(study, emb, progress=progress, executor=ex)
            summary.notice = emb.notice
            out.append(summary)
    if not out:
        raise UserError("nothing to embed: give a text embedder, an image embedder, or both")
    return out


# ---------------------------------------------------------------------------------------------- S3 + S4
def cluster(
    study: Study | str | os.PathLike,
    features_kind: str = "text",
    *,
    reduce: str | object = DEFAULT_REDUCE,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    selection: str | None = None,
    seed: int | None = None,
    seeds=None,
    text: str = DEFAULT_TEXT_EMBEDDER,
    image: str = DEFAULT_IMAGE_EMBEDDER,
    description_set: str | None = None,
    label: str | None = None,
    clusterer: object | None = None,
) -> ClusterResult:
    """S3 + S4: reduce the features and cluster them with HDBSCAN. The run (every parameter, seed, method
    and package version) is stored; an identical earlier run is returned instead of computed again.
    Each run is planned, computed and stored as the sweep's are (:mod:`connote.fitting`): one key, one result.

    With ``seed``: exactly one run. Without: one run per seed of ``seeds`` (default
    :data:`connote.defaults.DEFAULT_SEEDS`), each stored as an ordinary run, sharing the features and the
    neighbour graph; the result is the *representative* run, the seed whose labels agree best with the
    others' (highest mean ARI; ties to the first seed), with the seeds' stability and the cluster-wise
    stability of its clusters (:mod:`connote.evaluate.stability`), recorded with the run."""
    study = Study.of(study)
    feats = features(study, features_kind, text=text, image=image, description_set=description_set)
    feats.require_enough()
    if selection not in (None, "eom", "leaf"):
        raise UserError(f"unknown cluster selection {selection!r}; use eom or leaf")
    if seed is not None and seeds is not None:
        raise UserError("give one seed (exactly one run) or several seeds, not both")
    if seed is None and seeds is None and not takes_seed(reduce):
        seed = DEFAULT_SEED  # a reducer object without a random state: nothing to vary, one run
    seed_list = [seed] if seed is not None else list(dict.fromkeys(DEFAULT_SEEDS if seeds is None else seeds))
    if not seed_list:
        raise UserError("give at least one seed")
    clusterer = clusterer or HDBSCANClusterer(
        min_cluster_size=min_cluster_size, min_samples=min_samples, cluster_selection_method=selection
    )  # its defaults for this many items are filled in by the run's plan (connote.fitting.plan_run)
    return cluster_seeded(study, feats, reduce, clusterer, seed_list, label=label)


@dataclass
class SeedsResult:
    """One setting clustered with several seeds, and how far the seeds agree."""

    runs: list[ClusterResult]
    stability: SeedStability

    def to_dict(self) -> dict:
        return {"runs": [r.to_dict() for r in self.runs], "stability": self.stability.to_dict()}


def cluster_seeds(
    study: Study | str | os.PathLike,
    features_kind: str = "text",
    *,
    seeds=DEFAULT_SEEDS,
    reduce: str | object = DEFAULT_REDUCE,
    **options,
) -> SeedsResult:
    """:func:`cluster` with several seeds, as its runs and their seed stability: the adjusted Rand index
    between every two seeds' labels and the range of cluster counts; ``unstable`` when the mean ARI is
    below 0.5 (:mod:`connote.evaluate.stability`). ``kept`` is the representative seed."""
    seeds = list(dict.fromkeys(seeds))
    if not seeds:
        raise UserError("give at least one seed")
    res = cluster(study, features_kind, seeds=seeds, reduce=reduce, **options)
    if res.stability is None:  # one seed
        labels: dict[Hashable, Mapping[str, int]] = {res.seed: Study.of(study).assignments(res.run_id)}
        return SeedsResult([res], seed_stability(labels))
    return SeedsResult(res.runs, res.stability)


def sweep(study: Study | str | os.PathLike, grid="paper", **options):
    """S3 + S4 over a whole grid (the paper's by default): every setting becomes an ordinary run; see
    :func:`connote.sweeps.sweep` for the options (features, seeds, workers, ...)."""
    from connote.sweeps import sweep as _sweep

    return _sweep(Study.of(study), grid, **options)


# ---------------------------------------------------------------------------------------------- S5


# ---------------------------------------------------------------------------------------------- output
def report(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    runs=None,
    progress: bool = True,
) -> Path:
    """Write the HTML report. With ``run_id``: that run's pages (STUDY/report/run-N/index.html, returned)
    and the study index. Without: the study index (STUDY/report/index.html, returned) and the pages of
    ``runs`` ("all" by default, or a list of run ids)."""
    from connote.reports import render_report, render_study

    study = Study.of(study)
    if run_id is not None:
        return render_report(study, run_id, progress=progress)
    return render_study(study, "all" if runs is None else runs, progress=progress)


def runs(study: Study | str | os.PathLike) -> list[dict]:
    """One dict per run (see :func:`connote.listing.run_listing`): its settings and results, the run
    it was derived from, and ``seed_stability``, the agreement of the runs of its setting that differ
    only by seed."""
    from connote.listing import run_listing

    return run_listing(Study.of(study))


EXPORT_COLUMNS = ("image", "cluster", "keywords", "description")


def export_rows(study: Study, run_id: int | None = None) -> list[dict]:
    """One row per image file: path relative to the images root, cluster (-1 outlier), keywords, description;
    then the cluster's stability when the run's setting has other seeds (mean best Jaccard over them;
    empty for outliers), the cluster's label and summary when the run has labels, and the study's metadata
    columns.

    Images left out of the run (skipped files, images without a description) have an empty cluster.
    """
    _, chunks = iter_export_rows(study, run_id)
    return [row for chunk in chunks for row in chunk]


def iter_export_rows(study: Study, run_id: int | None = None, chunk: int = 4096):
    """:func:`export_rows` a chunk at a time: (the columns, an iterator of lists of rows). Only one
    chunk's rows (and their descriptions and metadata) are read at once."""
    from connote.listing import run_cluster_stability
    from connote.metadata import export_columns

    run = study.get_run(run_id)
    keywords = study.keywords(run["id"])
    # each cluster's stability against the other seeds of the run's setting; no column without other seeds
    stability = run_cluster_stability(study, run["id"])
    own = ["cluster_stability"] if stability is not None else []
    set_id = None
    if run["description_set"]:
        set_id = study.resolve_description_set(run["description_set"])["id"]
    added, fill = export_columns(study, run["id"], EXPORT_COLUMNS)

    def chunks():
        for part in study.iter_export(run["id"], set_id, chunk):
            rows = [
                {
                    "image": path,
                    "cluster": c,
                    "keywords": ", ".join(keywords.get(c, [])) if c is not None and c != -1 else "",
                    "description": text or "",
                }
                for path, c, text in part
            ]
            if own:
                for r in rows:
                    r["cluster_stability"] = stability.get(r["cluster"]) if r["cluster"] is not None else None
            fill(rows)
            yield rows

    return [*EXPORT_COLUMNS, *own, *added], chunks()


def export(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    format: str = "csv",
    path: str | os.PathLike | None = None,
) -> Path:
    """Write the run's assignments as CSV or Parquet; returns the file written."""
    study = Study.of(study)
    run = study.get_run(run_id)
    columns, chunks = iter_export_rows(study, run["id"])  # written chunk by chunk
    from connote.metadata import export_columns

    # number columns by their name in the file (a metadata column 'cluster' is written as meta_cluster)
    numbers = {
        c for c, kind in export_columns(study, run["id"], EXPORT_COLUMNS)[0].items() if kind == "number"
    }
    if format not in ("csv", "parquet"):
        raise UserError(f"unknown export format {format!r}; use csv or parquet")
    path = Path(path) if path else study.path / f"run-{run['id']}.{format}"
    check_output(path, images_root=study.get_meta("images_root"))  # never over the study or its images
    path.parent.mkdir(parents=True, exist_ok=True)
    with replacing(path) as tmp:
        _write_export(tmp, format, columns, chunks, numbers)
    return path


def _write_export(tmp: Path, format: str, columns: list[str], chunks, numbers: set[str]) -> None:
    if format == "csv":
        import csv

        with open(tmp, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=columns)
            writer.writeheader()
            for rows in chunks:
                for r in rows:  # a whole number reads as one (5, not 5.0), as the user wrote it
                    cells = {
                        k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in r.items()
                    }
                    writer.writerow({**cells, "cluster": "" if r["cluster"] is None else r["cluster"]})
    else:
        try:
            import pyarrow as pa
            import pyarrow.parquet as pq
        except ImportError:
            raise UserError("Parquet export needs pyarrow: pip install 'connote[parquet]'") from None
        floats = numbers | {"cluster_stability"}
        types = {"cluster": pa.int64(), **{c: pa.float64() for c in columns if c in floats}}
        schema = pa.schema([(c, types.get(c, pa.string())) for c in columns])
        with pq.ParquetWriter(tmp, schema) as writer:  # one row group per chunk
            for rows in chunks:
                writer.write_table(pa.table({c: [r[c] for r in rows] for c in columns}, schema=schema))


# ---------------------------------------------------------------------------------------------- all
@dataclass
class RunResult:
    """What :func:`run` did, stage by stage. Unpacks as ``study, run_id, report_path``."""

    study: Study
    init: InitSummary
    describe: object  # the describe runner's summary
    cluster: ClusterResult
    keywords: dict[int, list[tuple[str, float]]]
    report: Path

    @property
    def run_id(self) -> int:
        return self.cluster.run_id

    def __iter__(self):
        return iter((self.study, self.cluster.run_id, self.report))


def run(  # noqa: PLR0913 (every option of `connote run` is a parameter)
    images: str | os.PathLike,
    out: str | os.PathLike,
    *,
    describer=DEFAULT_DESCRIBER,
    prompt: str | None = None,
    text: str = DEFAULT_TEXT_EMBEDDER,
    reduce: str | object = DEFAULT_REDUCE,
    min_cluster_size: int | None = None,
    min_samples: int | None = None,
    selection: str | None = None,
    seed: int | None = None,
    seeds=None,
    top_k: int = DEFAULT_TOP_K,
    keep_common: bool = False,
    max_cost: float | None = None,
    progress: bool = True,
    on_stage: Callable[[str, object], None] | None = None,
    **describer_options,
) -> RunResult:
    """The whole pipeline: init, describe, embed, cluster, explain, report (what ``connote run`` does).

    ``on_stage(name, result)`` is called after each stage ('init', 'describe', 'embed', 'cluster',
    'explain', 'report') with that stage's result, e.g. to print it as soon as it is known. Returns a
    :class:`RunResult` (``study, run_id, report_path = connote.run(...)`` works too)."""
    tell = on_stage or (lambda _name, _result: None)
    study = init(out, images, progress=progress)
    summary = init_summary(study)
    tell("init", summary)
    if summary.ok == 0:
        raise UserError(f"no usable images under {images}")
    described = describe(
        study, describer, prompt=prompt, max_cost=max_cost, progress=progress, **describer_options
    )
    tell("describe", described)
    tell("embed", embed(study, text, progress=progress))
    res = cluster(
        study,
        "text",
        reduce=reduce,
        min_cluster_size=min_cluster_size,
        min_samples=min_samples,
        selection=selection,
        seed=seed,
        seeds=seeds,
        text=text,
    )
    tell("cluster", res)
    keywords = explain(study, res.run_id, top_k=top_k, keep_common=keep_common)
    tell("explain", keywords)
    path = report(study, res.run_id, progress=progress)
    tell("report", path)
    return RunResult(study, summary, described, res, keywords, path)
