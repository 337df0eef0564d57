"""S5 as a step: the top terms of each of a run's clusters, computed from the study's descriptions and
stored with the run (the math is in :mod:`connote.keywords`). :func:`connote.steps.explain` is this
function; the commands that need keywords first (``sets sample``, derived runs, labels) call it here, so
that they need not import :mod:`connote.steps`."""

from __future__ import annotations

import os

from connote import numbers, registry
from connote.defaults import DEFAULT_TOP_K
from connote.errors import UserError
from connote.study import Study

__all__ = ["explain"]


def explain(
    study: Study | str | os.PathLike,
    run_id: int | None = None,
    *,
    top_k: int = DEFAULT_TOP_K,
    extra_stop_words: list[str] | tuple[str, ...] = (),
    filler: bool = True,
    description_set: str | None = None,
    method: str = "tfidf",
    diversity: float = 0.0,
) -> dict[int, list[tuple[str, float]]]:
    """S5: the top terms of each cluster's joined descriptions, stored with the run: the paper's TF-IDF
    (``method='tfidf'``) or class-based TF-IDF (``'ctfidf'``), re-ranked for ``diversity`` (0-1, maximal
    marginal relevance) when above 0. The method and diversity are recorded with the keywords."""
    from connote.keywords import METHODS, cluster_keywords, stop_words

    if method not in METHODS:
        raise UserError(f"unknown keyword method {method!r}; use {' or '.join(METHODS)}")
    top_k = numbers.whole(top_k, "--top-k", low=1)  # 0 would store no keywords, -1 every term
    if not 0.0 <= float(diversity) <= 1.0:
        raise UserError(f"--diversity must be between 0 and 1, not {diversity}")

    study = Study.of(study)
    run = study.get_run(run_id)
    set_name = description_set or run["description_set"]
    ds = study.resolve_description_set(set_name)
    texts = study.descriptions(ds["id"])
    assign = study.assignments(run["id"])
    shas = [s for s in assign if s in texts]
    if not shas:
        raise UserError(f"run {run['id']}: none of its images has a description in set {ds['name']!r}")
    # A describer can name words of its own fixed phrasing that say nothing about a cluster (the offline
    # describer's colour words); they are left out with the filler words.
    template_words = _describer_stop_words(ds["describer"]) if filler else ()
    keywords = cluster_keywords(
        [texts[s] for s in shas],
        [assign[s] for s in shas],
        top_k=top_k,
        stop=stop_words([*extra_stop_words, *template_words], filler=filler),
        method=method,
        diversity=float(diversity),
    )
    study.set_keywords(
        run["id"],
        keywords,
        {
            "method": method,
            "diversity": float(diversity),
            "top_k": top_k,
            "description_set": ds["name"],
            "extra_stop_words": list(extra_stop_words),
            "describer_stop_words": list(template_words),
            "filler": filler,
        },
    )
    return keywords


def _describer_stop_words(spec: str) -> tuple[str, ...]:
    cls = registry.describer_class(spec)
    return tuple(cls.keyword_stop_words) if cls is not None else ()
