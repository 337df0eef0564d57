"""S2: turn descriptions (text) or pixels (image) into vectors, cached in the study by content hash.

The runners here do the caching, the progress bar and the call log for every embedder; an embedder only
maps a batch of texts or images to an array (:mod:`connote.embedders.base`) and reports the model calls it
made (API embedders), which the runner logs as the describe runner does. Batches run where an executor puts
them (:mod:`connote.executors`: here, or on Ray workers).
"""

from __future__ import annotations

import hashlib
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from connote.embedders.base import Embedder
from connote.errors import UserError
from connote.paid import PaidWork
from connote.params import recorded_params
from connote.study import Study, text_key
from connote.study.calls import log_calls
from connote.study.claims import scope as claims_scope


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
    elsewhere: int = 0  # embedded by another process on the study at the same time (not paid here)


def _damage_line(name: str, damaged: dict[str, str]) -> str | None:
    if not damaged:
        return None
    keys = list(damaged)
    shown = ", ".join(k[:12] for k in keys[:5]) + (", ..." if len(keys) > 5 else "")
    reasons = "; ".join(sorted(set(damaged.values()))[:3])
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


#: Texts (or images) read from the study, checked against the store and handed on at a time: what one
#: step holds at once, whatever the size of the study.
CHUNK = 4096


@dataclass
class _Progress:
    """What a streaming embed has done so far (small: no list of every key)."""

    computed: int = 0
    damaged: dict = field(default_factory=dict)  # key -> reason, of stored vectors found damaged
    failed: list = field(default_factory=list)  # (label, reason) of inputs that could not be read
    pending: dict = field(default_factory=dict)  # key -> label, handed on and not stored yet
    deferred: dict = field(default_factory=dict)  # key -> value, claimed by another process (paid API)
    elsewhere: int = 0  # computed by another process at the same time
    seen: list = field(default_factory=list)  # 64-bit digests of the keys met (to count distinct ones)

    def distinct(self) -> int:
        return int(np.unique(np.concatenate(self.seen)).size) if self.seen else 0


def _digests(keys) -> np.ndarray:
    return np.fromiter(
        (int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") for k in keys),
        dtype=np.uint64,
    )


def _todo(study: Study, embedder, chunks, state: _Progress, bar, label=None, work=None):
    """For each chunk of ``(key, value)`` items: those whose vector is not stored intact and not already
    on its way (a chunk is checked against the store when it is read, so resume keeps what is stored).
    With ``work`` (an API embedder: every call is paid), the items are claimed first: those another
    process is embedding are left to it, waited for at the end and taken over if it dies."""

    def still_todo(key: str) -> bool:
        return key in state.damaged or not study.vectors.has(embedder.name, key)

    for rows in chunks:
        items = dict(rows)
        state.seen.append(_digests(items))
        check = study.vectors.check(embedder.name, list(items))
        state.damaged.update(check.damaged)
        todo = [(k, v) for k, v in items.items() if k not in check.good and k not in state.pending]
        if bar:
            bar.update(len(rows) - len(todo))
        # Paid: claimed a batch at a time, just before it is sent, so that two processes share the chunk.
        step = max(1, embedder.batch_size) if work is not None else max(1, len(todo))
        for i in range(0, len(todo), step):
            part = todo[i : i + step]
            if work is not None:
                n = len(part)
                part = _claim(work, part, still_todo, state)
                if bar:
                    bar.update(n - len(part))
            for k, v in part:
                state.pending[k] = label(v) if label else k
            state.computed += len(part)
            if part:
                yield part
    if work is not None and state.deferred:
        mine = set(work.wait_for_others(list(state.deferred), still_todo))
        todo = [(k, v) for k, v in state.deferred.items() if k in mine]
        state.elsewhere += len(state.deferred) - len(todo)
        for k, v in todo:
            state.pending[k] = label(v) if label else k
        state.computed += len(todo)
        if todo:
            yield todo


def _claim(work, todo: list, still_todo, state: _Progress) -> list:
    """The items of ``todo`` this process may embed (claimed); those another process holds are deferred."""
    mine, busy = work.claim([k for k, _ in todo], still_todo)
    taken, held = set(mine), {c.key for c in busy}
    state.deferred.update((k, v) for k, v in todo if k in held)
    state.elsewhere += sum(1 for k, _ in todo if k not in taken and k not in held)
    return [(k, v) for k, v in todo if k in taken]


def _run(study: Study, embedder, kind: str, chunks, total_rows: int, progress: bool, executor, label=None):
    """Embed what ``chunks`` hold that is not stored yet, chunk by chunk; each batch is stored (and its
    calls logged) the moment it arrives. Returns the summary."""
    executor = executor or _local()
    if getattr(executor, "remote", False) and _reports_calls(embedder):
        executor = _local()  # an API embedder's calls are logged in the study: it runs here
    unit = "text" if kind == "text" else "img"
    bar = _bar(progress, total_rows, f"Embedding {kind}s ({embedder.spec})", unit)
    state = _Progress()
    # Paid calls (an API embedder) go through the paid-call path's claims: two processes share the texts.
    paid = _reports_calls(embedder)
    work = (
        PaidWork(study, claims_scope("embed", embedder.name), stage="embed", journal=False) if paid else None
    )
    batches = executor.embed(
        embedder, kind, _todo(study, embedder, chunks, state, bar, label, work), max(1, embedder.batch_size)
    )
    dim = None
    try:
        for done, vectors, bad in batches:
            log_calls(study, "embed", _calls(embedder))  # each request is logged before its vectors
            if done:
                study.save_vectors(embedder.name, done, vectors)
                dim = vectors.shape[1]
            if work is not None:
                with study.transaction():
                    work.stored([*done, *(key for key, _ in bad)])
            for key in done:
                state.pending.pop(key, None)
            state.failed.extend((state.pending.pop(key, key), reason) for key, reason in bad)
            if bar:
                bar.update(len(done) + len(bad))
    finally:
        log_calls(study, "embed", _calls(embedder))
        if work is not None:
            work.close()
    if bar:
        bar.close()
    study.register_embedder(embedder.name, kind, embedder.spec, dim, recorded_params(embedder))
    total = state.distinct()
    return EmbedSummary(
        embedder.name,
        kind,
        total,
        state.computed,
        total - state.computed,
        dim,
        state.failed,
        repaired=len(state.damaged),
        damage=_damage_line(embedder.name, state.damaged),
        elsewhere=state.elsewhere,
    )


def embed_texts(
    study: Study, embedder, texts: dict[str, str], *, progress: bool = True, executor=None, chunk: int = CHUNK
) -> EmbedSummary:
    """Embed ``{anything: text}``; vectors are stored under the text's sha256, so equal texts share one.

    Stored vectors are checked (checksums) first: a damaged one is computed again, not reused. Batches
    run where ``executor`` puts them (here by default, or on Ray workers); each is stored as it arrives."""
    values = list(texts.values())
    chunks = ([(text_key(t), t) for t in values[i : i + chunk]] for i in range(0, len(values), chunk))
    return _run(study, embedder, "text", chunks, len(values), progress, executor)


def embed_description_set(
    study: Study, embedder, set_id: int, *, progress: bool = True, executor=None, chunk: int = CHUNK
) -> EmbedSummary:
    """Embed the usable descriptions of one set, read from the study ``chunk`` at a time (the set is never
    held in memory at once); otherwise as :func:`embed_texts`."""
    chunks = (
        [(text_key(t), t) for _, t in rows] for rows in study.iter_descriptions(set_id, chunk=max(1, chunk))
    )
    return _run(study, embedder, "text", chunks, study.count_descriptions(set_id), progress, executor)


def embed_images(
    study: Study, embedder, *, progress: bool = True, executor=None, chunk: int = CHUNK
) -> EmbedSummary:
    """Embed every distinct readable image of the study, read ``chunk`` at a time; vectors are stored
    under the image's sha256."""
    n = study.con.execute("SELECT COUNT(DISTINCT sha256) FROM images WHERE status='ok'").fetchone()[0]
    if not n:
        raise UserError(f"{study.path}: no readable images to embed")
    root = study.images_root
    chunks = (
        [(r["sha256"], str(study.image_file(r["path"]))) for r in rows]
        for rows in study.iter_unique_images(chunk=max(1, chunk))
    )

    def label(value: str) -> str:  # the image's path under the images root, as the study names it
        with suppress(ValueError):
            return Path(value).relative_to(root).as_posix()
        return value

    return _run(study, embedder, "image", chunks, n, progress, executor, label)


def _bar(progress: bool, total: int, desc: str, unit: str):
    if not progress or total == 0:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
