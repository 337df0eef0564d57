"""numba's compiled code (UMAP, pynndescent, connote's own kernels) kept on disk across processes, and
umap-learn imported so that all of its compiled code is cached: a leaf module that everything using numba
can import."""

from __future__ import annotations

__all__ = ["import_umap", "numba_cache"]


def numba_cache() -> str:
    """Keep numba's compiled code (UMAP, pynndescent) on disk across processes: NUMBA_CACHE_DIR, or
    ~/.cache/connote/numba (XDG_CACHE_HOME respected) when unset. Call before umap is imported; the one
    place connote sets it."""
    import os

    if not os.environ.get("NUMBA_CACHE_DIR"):
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        os.environ["NUMBA_CACHE_DIR"] = os.path.join(base, "connote", "numba")
    return os.environ["NUMBA_CACHE_DIR"]


_UMAP_READY = False


def import_umap():
    """Import umap-learn with all of its compiled code cached on disk across processes.

    umap-learn and pynndescent mark only some of their numba functions ``cache=True``; the others are
    compiled again in every new process (about a minute on two cores). Caching is switched on for those
    too, before their first compilation, so that only the first process on a machine pays for it.
    """
    global _UMAP_READY
    numba_cache()
    import umap

    if not _UMAP_READY:
        import contextlib
        import sys
        import warnings

        from numba.core.errors import NumbaWarning

        try:
            from numba.core.registry import CPUDispatcher
        except ImportError:  # pragma: no cover - older numba
            CPUDispatcher = ()
        warnings.filterwarnings("ignore", category=NumbaWarning, message=".*[Cc]annot cache.*")
        for name, module in list(sys.modules.items()):
            if not name.startswith(("umap", "pynndescent")) or module is None:
                continue
            for obj in list(vars(module).values()):
                if isinstance(obj, CPUDispatcher) and type(obj._cache).__name__ == "NullCache":
                    # a function numba cannot cache just stays uncached
                    with contextlib.suppress(Exception):
                        obj.enable_caching()
        _UMAP_READY = True
    return umap
