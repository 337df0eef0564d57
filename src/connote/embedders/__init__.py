"""S2: turn descriptions (text) or pixels (image) into vectors, cached in the study by content hash.

The runners here do the caching, the progress bar and the call log for every embedder; an embedder only
maps a batch of texts or images to an array (:mod:`connote.embedders.base`) and reports the model calls it
made (API embedders), which the runner logs as the describe runner does. Batches run where an executor puts
them (:mod:`connote.executors`: here, or on Ray workers).
"""

from __future__ import annotations

from dataclasses import dataclass

from connote.embedders.base import Embedder
from connote.errors import UserError
from connote.params import recorded_params
from connote.study import Study, text_key
from connote.study.calls import log_calls


@dataclass
class EmbedSummary:
    embedder: str
    kind: str
    total: int
    computed: int
    reused: int
    dim: int | None
    failed: list[tuple[str, str]]
    repaired: int = 0  # stored vectors that were damaged and were computed again
    damage: str | None = None  # one line naming them
    notice: str | None = None  # why another model stood in for the one asked for


def _damage_line(name: str, check) -> str | None:
    if not check.damaged:
        return None
    keys = list(check.damaged)
    shown = ", ".join(k[:12] for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
    reasons = "; ".join(sorted(set(check.damaged.values()))[:3])
    return f"{len(keys)} stored {name} vector(s) were damaged ({reasons}) and are computed again: {shown}"


def _local():
    from connote.executors.local import LocalExecutor

    return LocalExecutor()


def _reports_calls(embedder) -> bool:
    """An embedder that reports model calls (an API embedder, or a foreign object that may) runs in this
    process, so that the runner logs every call it made."""
    return getattr(type(embedder), "take_calls", Embedder.take_calls) is not Embedder.take_calls


def _calls(embedder) -> list:
    """The calls an embedder reports (none for an object without ``take_calls``: any object with
    ``embed_texts`` or ``embed_images`` is an embedder)."""
    take = getattr(embedder, "take_calls", None)
    return list(take()) if take is not None else []


def _store_batches(study: Study, embedder, batches, on_batch) -> int | None:
    """Store each batch's vectors as it arrives and log the calls the embedder reports (failed ones too)."""
    dim = None
    try:
        for done, vectors, bad in batches:
            log_calls(study, "embed", _calls(embedder))
            if done:
                study.save_vectors(embedder.name, done, vectors)
                dim = vectors.shape[1]
            on_batch(done, bad)
    finally:
        log_calls(study, "embed", _calls(embedder))
    return dim


def embed_texts(
    study: Study, embedder, texts: dict[str, str], *, progress: bool = True, executor=None
) -> EmbedSummary:
    """Embed ``{anything: text}``; vectors are stored under the text's sha256, so equal texts share one.

    Stored vectors are checked (checksums) first: a damaged one is computed again, not reused. Batches
    run where ``executor`` puts them (here by default, or on Ray workers); each is stored as it arrives."""
    keys = {text_key(t): t for t in texts.values()}
    check = study.vectors.check(embedder.name, keys)
    todo = [k for k in keys if k not in check.good]
    executor = executor or _local()
    if getattr(executor, "remote", False) and _reports_calls(embedder):
        executor = _local()  # an API embedder's calls are logged in the study: it runs here
    bar = _bar(progress, len(todo), f"Embedding texts ({embedder.spec})", "text")
    batches = executor.embed(embedder, "text", ((k, keys[k]) for k in todo), max(1, embedder.batch_size))
    dim = _store_batches(study, embedder, batches, lambda done, bad: bar and bar.update(len(done)))
    return _finish(study, embedder, "text", bar, len(keys), len(todo), dim, [], check)


def embed_images(study: Study, embedder, *, progress: bool = True, executor=None) -> EmbedSummary:
    """Embed every distinct readable image of the study; vectors are stored under the image's sha256."""
    rows = study.unique_images()
    if not rows:
        raise UserError(f"{study.path}: no readable images to embed")
    check = study.vectors.check(embedder.name, [r["sha256"] for r in rows])
    todo = [r for r in rows if r["sha256"] not in check.good]
    path_of = {r["sha256"]: r["path"] for r in todo}
    executor = executor or _local()
    if getattr(executor, "remote", False) and _reports_calls(embedder):
        executor = _local()
    bar = _bar(progress, len(todo), f"Embedding images ({embedder.spec})", "img")
    failed: list[tuple[str, str]] = []

    def on_batch(done, bad):
        failed.extend((path_of.get(sha, sha), reason) for sha, reason in bad)
        if bar:
            bar.update(len(done) + len(bad))

    items = ((r["sha256"], str(study.image_file(r["path"]))) for r in todo)
    batches = executor.embed(embedder, "image", items, max(1, embedder.batch_size))
    dim = _store_batches(study, embedder, batches, on_batch)
    return _finish(study, embedder, "image", bar, len(rows), len(todo), dim, failed, check)


def _finish(study, embedder, kind: str, bar, total: int, computed: int, dim, failed, check) -> EmbedSummary:
    """Close the progress bar, register the embedder in the study and say what was done."""
    if bar:
        bar.close()
    study.register_embedder(embedder.name, kind, embedder.spec, dim, recorded_params(embedder))
    return EmbedSummary(
        embedder.name,
        kind,
        total,
        computed,
        total - computed,
        dim,
        failed,
        repaired=len(check.damaged),
        damage=_damage_line(embedder.name, check),
    )


def _bar(progress: bool, total: int, desc: str, unit: str):
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
