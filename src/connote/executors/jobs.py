"""Jobs as remote executors run them: plain functions that take their shared data as arguments."""

from __future__ import annotations


def sweep_job(X, graphs, reducer, clusterers, Y):
    """One sweep job (a reduction, unless ``Y`` is given, and its clusterings) on ``X`` and the shared
    kNN graphs: what :func:`connote.sweep_pool.work` does in a local worker process."""
    from connote import sweep_pool

    sweep_pool.one_thread_per_worker()
    sweep_pool.share(X, graphs)
    try:
        return sweep_pool.work(reducer, clusterers, Y)
    finally:
        sweep_pool.share(None, None)
