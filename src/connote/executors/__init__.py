"""Where the heavy steps run: in this process tree (``local``, the default) or on a Ray cluster (``ray``).

An executor is chosen with ``--executor local | ray | ray:ADDRESS`` (``ray`` alone uses ``RAY_ADDRESS``
when it is set, else starts Ray on this machine; ADDRESS is ``HOST:PORT`` of a cluster's head, or
``ray://HOST:10001`` through Ray Client). Every executor offers the same two things:

* ``embed(embedder, kind, chunks, batch_size)``: ``chunks`` are lists of ``(key, text or image path)``
  as the caller reads them from the study (never every input at once); yields batches of ``(keys,
  vectors, failures)`` as they are computed, stored by the caller (the driver) the moment they arrive;
* ``describer(describer, spec, options)``: a describer to hand to the describe runner; with Ray its batches run
  on workers (one describer, e.g. one ``hf:`` model, per worker) while retries, the call log, the budget
  and storing stay with the driver, so resume and "never pay twice" hold as locally.

A remote executor (``remote = True``: Ray) also offers ``map_unordered(fn, jobs, shared)``:
``fn(*shared, *job)`` for each job, yielded as each finishes (``(index, result)``), the ``shared`` arrays
sent to the workers once (the sweep's vectors and kNN graphs). A local sweep runs its jobs in its own
worker processes (:mod:`connote.sweep_pool`): one way to run them here, not two.

Results do not depend on the executor: the same jobs run the same code with the same seeds.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from connote.errors import UserError

EXECUTORS = ("local", "ray")


def parse(spec: str | None) -> tuple[str, str | None]:
    """'local' | 'ray' | 'ray:ADDRESS' -> (kind, address)."""
    spec = (spec or "local").strip()
    kind, _, address = spec.partition(":")
    if kind not in EXECUTORS:
        raise UserError(
            f"unknown executor {spec!r}; use local, ray or ray:ADDRESS (HOST:PORT or ray://HOST:PORT)"
        )
    if kind == "local" and address:
        raise UserError(f"executor 'local' takes no address (got {spec!r})")
    return kind, address or None


def get_executor(spec=None, **options):
    """An executor object from a spec string (or the object itself when one is passed)."""
    if spec is not None and not isinstance(spec, str):
        return spec
    kind, address = parse(spec)
    if kind == "ray":
        from connote.executors.ray import RayExecutor

        return RayExecutor(address, **options)
    from connote.executors.local import LocalExecutor

    return LocalExecutor(**options)


@contextmanager
def executor_scope(spec=None, **options) -> Iterator:
    """The executor named by ``spec``, closed afterwards if made here (an object passed is left open)."""
    ex = get_executor(spec, **options)
    try:
        yield ex
    finally:
        if ex is not spec:
            ex.close()


__all__ = ["EXECUTORS", "executor_scope", "get_executor", "parse"]
