"""The Ray executor: sweep settings as Ray tasks, embedding as Ray Data batch inference, describe batches
on Ray actors. The driver (the process that runs the connote command) keeps the study: it stores every
result the moment it arrives, so a worker or node that dies mid-run loses only what was in flight.

Pointing connote at a cluster: ``--executor ray:HOST:PORT`` (the head's GCS address, as given to
``ray start --address``), ``--executor ray:ray://HOST:10001`` (Ray Client), or ``--executor ray`` with
``RAY_ADDRESS`` set; ``--executor ray`` without it starts Ray on this machine. Every node needs connote
installed (the same version) and, for ``describe`` and image ``embed``, the images at the same path (a
shared file system), as usual for Ray.

* ``map_unordered``: the shared arrays (vectors, kNN graph) are put in the object store once; each job is
  a task (one CPU) that reads them zero-copy. Tasks are retried by Ray if their worker dies (they are pure).
* ``embed``: ``ray.data`` ``map_batches`` with an actor pool (one embedder, hence one model, per actor; a
  GPU each when the cluster has GPUs); batches stream back to the driver, which stores them.
* ``describer``: a proxy describer whose ``describe`` runs on one of N actors (one describer each, so an
  ``hf:`` model loads once per worker). The describe runner in the driver keeps retries, the call log,
  the ``--max-cost`` budget (worst-case cost reserved per batch before it is sent to any worker) and the
  store; a :class:`Gate` actor shares rate-limit pauses (Retry-After) across all workers. A worker that
  dies mid-call gives a transient error for its batch: the runner asks again (Ray itself never retries a
  describe call, so nothing is sent twice behind the runner's back), and Ray restarts the actor.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator

import numpy as np

from connote.errors import DescribeError, UserError

#: Environment variables handed to describe workers (API keys are read from the environment at call
#: time; workers started by `ray start` elsewhere may not have them). Kept in memory only.
FORWARD_ENV = ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "HF_HUB_OFFLINE", "CONNOTE_PRICES")
#: Seconds to wait for a describe actor that died to be restarted before its batch is asked again.
RESTART_WAIT = 120.0
#: Items handed to Ray Data per dataset (bounds the driver's memory on millions of inputs; each dataset
#: starts its actor pool, so one model load per worker per this many items).
EMBED_CHUNK = 20000


def _import_ray():
    try:
        import ray
    except ImportError:
        raise UserError("the Ray executor needs Ray: pip install 'connote[ray]'") from None
    return ray


def _build_describer(spec: str, options: dict):
    from connote import registry

    return registry.describer(spec, **options)


def _reachable(address: str | None) -> None:
    """A HOST:PORT (or ray://HOST:PORT) that nothing listens at is a clear error now, not minutes of
    Ray's reconnect attempts."""
    if not address or address == "auto":
        return
    hostport = address.split("://", 1)[-1]
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise UserError(f"Ray address {address!r}: expected HOST:PORT or ray://HOST:PORT")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=10):
            pass
    except OSError as exc:
        raise UserError(
            f"cannot reach a Ray cluster at {address} ({exc.strerror or exc}); start one with "
            f"`ray start --head --port={port}` there, or check the address"
        ) from None


def _call(fn: Callable, *args):
    return fn(*args)


class RayExecutor:
    name = "ray"
    remote = True

    def __init__(self, address: str | None = None, workers: int | None = None, **_ignored):
        self.address = address
        self.workers = workers
        self._started = False
        self._actors: list = []

    def __repr__(self) -> str:
        return f"RayExecutor({self.address or os.environ.get('RAY_ADDRESS') or 'local'!r})"

    # ------------------------------------------------------------------ the cluster
    def connect(self):
        ray = _import_ray()
        if not ray.is_initialized():
            address = self.address or os.environ.get("RAY_ADDRESS") or None
            _reachable(address)
            try:
                ray.init(
                    address=address,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    include_dashboard=False if address is None else None,
                    configure_logging=True,
                )
            except (ConnectionError, RuntimeError, ValueError) as exc:
                where = address or "a new local Ray instance"
                raise UserError(f"cannot connect to Ray at {where}: {str(exc).splitlines()[0]}") from None
            self._started = True
            try:
                import ray.data

                ctx = ray.data.DataContext.get_current()
                ctx.enable_progress_bars = False
                ctx.print_on_execution_start = False
                logging.getLogger("ray.data").setLevel(logging.ERROR)
            except (ImportError, AttributeError):
                pass
        return ray

    def n_workers(self) -> int:
        ray = self.connect()
        if self.workers:
            return int(self.workers)
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def n_gpus(self) -> int:
        return int(self.connect().cluster_resources().get("GPU", 0))

    def close(self) -> None:
        if not self._started:
            return
        ray = self.connect()
        for actor in self._actors:
            with contextlib.suppress(Exception):  # already gone
                ray.kill(actor)
        self._actors = []
        ray.shutdown()
        self._started = False

    # ------------------------------------------------------------------ sweep
    def map_unordered(
        self, fn: Callable, jobs: Iterable[tuple], shared: tuple = (), workers: int | None = None
    ) -> Iterator[tuple[int, object]]:
        """``fn(*shared, *job)`` per job as a Ray task; the shared objects go to the object store once."""
        ray = self.connect()
        refs = [ray.put(s) for s in shared]
        task = ray.remote(num_cpus=1, max_retries=3)(_call)
        pending = {task.remote(fn, *refs, *job): i for i, job in enumerate(jobs)}
        try:
            while pending:
                done, _ = ray.wait(list(pending), num_returns=1)
                for ref in done:
                    i = pending.pop(ref)
                    yield i, ray.get(ref)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)

    # ------------------------------------------------------------------ embed
    def embed(self, embedder, kind: str, chunks: Iterable[list[tuple[str, object]]], batch_size: int):
        """Yield ``(keys, vectors, failures)`` per batch computed by Ray Data's actor pool. The caller's
        chunks are cut into the very batches the local executor makes (so a model sees the same inputs
        together, and pads them alike: the same vectors), and gathered into datasets of about
        ``EMBED_CHUNK`` items (each dataset starts its actors, which load the model once), so the driver
        holds one dataset's inputs, never every input."""
        group: list[list] = []
        size = 0
        for chunk in chunks:
            for i in range(0, len(chunk), batch_size):
                group.append(chunk[i : i + batch_size])
                size += len(group[-1])
            if size >= EMBED_CHUNK:
                yield from self._embed_chunk(embedder, kind, group)
                group, size = [], 0
        if group:
            yield from self._embed_chunk(embedder, kind, group)

    def _embed_chunk(self, embedder, kind, batches: list[list]):
        """One Ray Data dataset whose rows are whole batches (one embed call each on a worker)."""
        self.connect()
        import ray.data

        gpus = self.n_gpus()
        n = max(1, min(gpus if gpus else self.n_workers(), len(batches)))
        ds = ray.data.from_items([{"batch": json.dumps([[k, str(v)] for k, v in b])} for b in batches])
        ds = ds.map_batches(
            EmbedWorker,
            fn_constructor_args=(_portable(embedder), kind),
            batch_size=1,
            batch_format="numpy",
            concurrency=n,
            num_cpus=0 if gpus else 1,
            num_gpus=1 if gpus else 0,
        )
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            keys, rows, failed = [], [], []
            for key, vec, err in zip(batch["key"], batch["vector"], batch["error"]):
                if err:
                    failed.append((str(key), str(err)))
                else:
                    keys.append(str(key))
                    rows.append(np.frombuffer(vec, dtype=np.float32))
            yield keys, (np.stack(rows) if rows else np.zeros((0, 0), np.float32)), failed

    # ------------------------------------------------------------------ describe
    def describer(self, describer, spec=None, options: dict | None = None):
        """A proxy describer running ``describe`` on Ray actors (see the module's docs). Each actor builds
        its own from ``spec`` and ``options`` (e.g. loads an hf: model once), or gets a copy of
        ``describer`` when it was given as an object."""
        ray = self.connect()
        factory = functools.partial(_build_describer, spec, options or {}) if isinstance(spec, str) else None
        spec = str(getattr(describer, "spec", ""))
        gpus = self.n_gpus() if spec.startswith("hf:") else 0
        n = gpus or self.n_workers()
        proxy = RayDescriber(ray, describer, factory or (lambda: describer), n, 1 if gpus else 0)
        self._actors += proxy.actors + [proxy.gate]
        return proxy


def _portable(embedder):
    """The embedder as sent to workers: without a model already loaded here (each worker loads its own)."""
    if getattr(embedder, "_model", None) is not None:
        import copy

        embedder = copy.copy(embedder)
        embedder._model = None
    return embedder


class EmbedWorker:
    """One Ray Data actor: one embedder (its model loaded once, on first use)."""

    def __init__(self, embedder, kind: str):
        self.embedder = embedder
        self.kind = kind

    def __call__(self, rows: dict) -> dict:
        from connote.executors.local import embed_batch

        items = [(str(k), str(v)) for row in rows["batch"] for k, v in json.loads(str(row))]
        keys, X, failed = embed_batch(self.embedder, self.kind, items)
        vec = dict(zip(keys, X))
        err = dict(failed)
        return {
            "key": np.array([k for k, _ in items], dtype=object),
            "vector": np.array(
                [vec[k].astype(np.float32).tobytes() if k in vec else b"" for k, _ in items], dtype=object
            ),
            "error": np.array([err.get(k, "") for k, _ in items], dtype=object),
        }


class Gate:
    """Shared by all describe workers: a pause any worker asks for (a 429's Retry-After) holds them all."""

    def __init__(self):
        self.until = 0.0
        self.pauses = 0

    def pause(self, seconds: float) -> None:
        self.until = max(self.until, time.time() + float(seconds))
        self.pauses += 1

    def wait(self) -> float:
        return max(0.0, self.until - time.time())

    def stats(self) -> dict:
        return {"pauses": self.pauses}


class DescribeWorker:
    """One describe actor: builds its describer once (e.g. loads the hf: model on its GPU)."""

    def __init__(self, factory: Callable, gate, env: dict):
        os.environ.update(env)
        self.describer = factory()
        self.gate = gate

    def pid(self) -> int:
        return os.getpid()

    def describe(self, items, prompt):
        import ray

        wait = ray.get(self.gate.wait.remote())
        if wait > 0:
            time.sleep(wait)
        try:
            out = self.describer.describe(items, prompt)
        except DescribeError as exc:
            out = [exc] * len(items)
        except Exception as exc:  # noqa: BLE001 - reported per item, as the local runner does
            out = [DescribeError(f"{type(exc).__name__}: {exc}", permanent=True)] * len(items)
        pauses = [r.retry_after for r in out if isinstance(r, DescribeError) and r.retry_after]
        if pauses:
            self.gate.pause.remote(max(pauses))
        return out


class RayDescriber:
    """A describer whose batches run on Ray actors; everything else is the wrapped describer's."""

    def __init__(self, ray, inner, factory: Callable, workers: int, gpus_per_worker: int):
        self._ray = ray
        self._inner = inner
        self.workers = workers
        # API describers keep their global in-flight limit; local models get one batch per worker
        self.concurrency = max(int(getattr(inner, "concurrency", 1) or 1), workers)
        per_actor = max(1, -(-self.concurrency // workers))
        env = {k: os.environ[k] for k in FORWARD_ENV if k in os.environ}
        self.gate = ray.remote(num_cpus=0)(Gate).remote()
        actor = ray.remote(
            num_cpus=0 if gpus_per_worker else 1,
            num_gpus=gpus_per_worker,
            max_restarts=-1,
            max_task_retries=0,
            max_concurrency=per_actor,
        )(DescribeWorker)
        self.actors = [actor.remote(factory, self.gate, env) for _ in range(workers)]
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self.lost = 0  # calls whose worker died

    def __getattr__(self, name):
        if name.startswith("__") or name == "_inner":
            raise AttributeError(name)
        return getattr(self._inner, name)

    def describe(self, items, prompt):
        with self._lock:
            actor = self.actors[next(self._turn) % len(self.actors)]
        try:
            return self._ray.get(actor.describe.remote(items, prompt))
        except self._ray.exceptions.RayError as exc:
            self.lost += 1
            why = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            # Ray restarts the actor; the runner's retry should find it alive, so wait for it here
            with contextlib.suppress(self._ray.exceptions.RayError):
                self._ray.get(actor.pid.remote(), timeout=RESTART_WAIT)
            return [DescribeError(f"Ray worker lost mid-call ({why})", permanent=False)] * len(items)
