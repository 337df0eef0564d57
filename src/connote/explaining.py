"""S5 as a step: the top terms of each of a run's clusters, computed from the study's descriptions and
stored with the run (the math is in :mod:`connote.keywords`). :func:`connote.steps.explain` is this
function; the commands that need keywords first (``sets sample``, derived runs, labels) call it here, so
that they need not import :mod:`connote.steps`."""

from __future__ import annotations

import os
from typing import Any

from connote import numbers, registry
from connote.defaults import DEFAULT_TOP_K
from connote.errors import UserError
from connote.study import Study

__all__ = ["Keywords", "explain"]


class Keywords(dict):
    """cluster -> [(term, score), ...] as :func:`explain` stores them, with ``common``: the terms left out
    of every cluster's list as common to the whole run, ``common_in``: each of them with the clusters
    whose list had it, and ``rule``: the rule that found them (None with ``keep_common``)."""

    def __init__(self, lists=(), common_in=None, rule: str | None = None):
        super().__init__(lists)
        self.common_in = dict(common_in or {})
        self.common, self.rule = list(self.common_in), rule


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
    keep_common: bool = False,
) -> Keywords:
    """S5: the top terms of each cluster's joined descriptions, stored with the run: the paper's TF-IDF
    (``method='tfidf'``) or class-based TF-IDF (``'ctfidf'``), re-ranked for ``diversity`` (0-1, maximal
    marginal relevance) when above 0. Terms in half or more of the clusters' lists are left out of each
    list and named once as common to the run (:func:`connote.keywords.distinct_keywords`) unless
    ``keep_common``. The method, diversity and that rule are recorded with the keywords."""
    from connote.keywords import METHODS, cluster_keywords, common_rule, distinct_keywords, stop_words

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
    options: dict[str, Any] = dict(
        top_k=top_k,
        stop=stop_words([*extra_stop_words, *template_words], filler=filler),
        method=method,
        diversity=float(diversity),
    )
    docs, labels = [texts[s] for s in shas], [assign[s] for s in shas]
    if keep_common:
        keywords = Keywords(cluster_keywords(docs, labels, **options))
    else:
        keywords = Keywords(*distinct_keywords(docs, labels, **options), rule=common_rule(top_k))
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
            "common_terms": keywords.common,  # left out of every cluster's list (none with keep_common)
            "common_in": keywords.common_in,  # term -> the clusters whose list had it
            "common_rule": keywords.rule,
            "keep_common": keep_common,
        },
    )
    return keywords


def _describer_stop_words(spec: str) -> tuple[str, ...]:
    cls = registry.describer_class(spec)
    return tuple(getattr(cls, "keyword_stop_words", ()))
