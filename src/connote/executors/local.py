"""The local executor: today's behaviour, everything in this process tree.

``map_unordered`` runs the jobs in worker processes (forkserver; the shared arrays handed to each worker
once by its initializer) or, with one worker or one job, in this process. ``embed`` and ``describer`` run
in this process (the describe runner keeps its own thread pool for API calls); ``embed`` takes the
inputs chunk by chunk as the caller reads them from the study.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator

import numpy as np

_SHARED: tuple = ()


def _init(shared: tuple) -> None:
    global _SHARED
    _SHARED = shared


def _run(fn: Callable, i: int, job: tuple):
    return i, fn(*_SHARED, *job)


class LocalExecutor:
    name = "local"
    remote = False

    def __init__(self, workers: int | None = None, **_ignored):
        self.workers = workers

    def __repr__(self) -> str:
        return "LocalExecutor()"

    def record(self) -> dict:
        """What runs record about where they ran."""
        return {"executor": "local"}

    def map_unordered(
        self, fn: Callable, jobs: Iterable[tuple], shared: tuple = (), workers: int | None = None
    ) -> Iterator[tuple[int, object]]:
        jobs = list(jobs)
        workers = workers or self.workers or 1
        if workers <= 1 or len(jobs) <= 1:
            for i, job in enumerate(jobs):
                yield i, fn(*shared, *job)
            return
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor, as_completed

        method = "forkserver" if sys.platform.startswith("linux") else "spawn"
        with ProcessPoolExecutor(
            max_workers=min(workers, len(jobs)),
            mp_context=mp.get_context(method),
            initializer=_init,
            initargs=(shared,),
        ) as pool:
            futures = [pool.submit(_run, fn, i, job) for i, job in enumerate(jobs)]
            try:
                for fut in as_completed(futures):
                    yield fut.result()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise

    def embed(self, embedder, kind: str, chunks: Iterable[list[tuple[str, object]]], batch_size: int):
        """Yield ``(keys, vectors, failures)`` per batch, chunk after chunk (a batch never spans two, so
        the embedder never sees more than one chunk); items are (key, text) or (key, image path)."""
        for chunk in chunks:
            for i in range(0, len(chunk), batch_size):
                yield embed_batch(embedder, kind, chunk[i : i + batch_size])

    def describer(self, describer, spec=None, options: dict | None = None):
        return describer

    def close(self) -> None:
        pass


def embed_batch(embedder, kind: str, batch: list[tuple[str, object]]):
    """One batch: (keys, float32 vectors, [(key, reason)] of images that could not be read)."""
    if kind == "text":
        keys = [k for k, _ in batch]
        return keys, np.asarray(embedder.embed_texts([t for _, t in batch]), dtype=np.float32), []
    from connote.images import ImageError, load_image

    keys, images, failed = [], [], []
    for key, path in batch:
        try:
            images.append(load_image(path, sha256=key))  # the key is the recorded content hash
            keys.append(key)
        except ImageError as exc:
            failed.append((key, str(exc)))
    if not images:
        return [], np.zeros((0, 0), dtype=np.float32), failed
    return keys, np.asarray(embedder.embed_images(images), dtype=np.float32), failed
