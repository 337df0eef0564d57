"""S5: describe each cluster by its top terms.

Two weightings, both over one document per cluster (its descriptions joined):

* ``tfidf`` (the default, the paper's method): scikit-learn's TF-IDF, raw counts times a smoothed
  ``ln((1 + n) / (1 + df)) + 1``, rows l2-normalised;
* ``ctfidf`` (class-based TF-IDF, the weighting BERTopic uses): a term's share of the cluster's words
  times ``ln(1 + A / f)``, with ``A`` the mean number of words per cluster and ``f`` the term's count
  in all clusters together, so a term frequent everywhere weighs little even when every cluster has it.

``diversity`` (0 to 1) re-ranks the best candidates by maximal marginal relevance (Carbonell & Goldstein
1998) so that a cluster's top terms are not near-synonyms: each next term maximises
``(1 - diversity) * relevance - diversity * max similarity to the terms already chosen``, with the
similarity the cosine of term vectors (by default the packaged MiniLM's).

A term that stands in half or more of the clusters' keyword lists (and in at least two) tells nothing
about any one cluster: :func:`distinct_keywords` names such terms once, as common to the whole run, and
leaves them out of each cluster's list, which the next terms fill (as BERTopic's ``reduce_frequent_words``
is meant to keep words frequent everywhere from the topics).

English stop words, contractions ("it's", "don't"), bare numbers and the filler words vision LLMs use in
every answer ("conveys", "suggests", ...) are removed before weighting.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np

from connote.defaults import DEFAULT_TOP_K

#: Words that describe the act of describing, not the image (the paper removes "conveys", "suggests" ...).
FILLER_WORDS = frozenset(
    """image images picture pictures photo photograph photographs scene depicts depict depicted depicting
    shows show showing shown conveys convey conveyed conveying suggests suggest suggesting suggested evokes
    evoke evoking evoked represents represent representing symbolizes symbolize symbolizing symbolic
    symbolises symbolise highlights highlight highlighting emphasizes emphasize emphasizing emphasises
    underscores underscore portrays portray portraying reflects reflect reflecting captures capture capturing
    connotative connotation connotations meaning overall sense feeling appears appear likely viewer viewers
    visual visually evident text written seen colours colors meme memes illustrates illustrate illustrating
    conveyed portrayed portrays depiction reflected evoked creates create creating sets set paragraph
    photographed background foreground setting composition atmosphere mood tone
    just like really actually gonna okay yeah um uh let lot things thing got""".split()  # noqa: SIM905 - a word list reads best as text
)


#: Content words that scikit-learn's English stop list removes but that name what an image shows (a
#: cluster of wildfire photos must be able to get the keyword "fire"); they are kept.
CONTENT_WORDS = frozenset(
    {
        "fire",
        "bill",
        "bottom",
        "cry",
        "empty",
        "front",
        "full",
        "interest",
        "mill",
        "side",
        "system",
        "thick",
        "thin",
        "top",
        "fill",
    }
)


def stop_words(extra: Iterable[str] = (), *, filler: bool = True) -> frozenset[str]:
    """scikit-learn's English stop words less :data:`CONTENT_WORDS`, plus ``extra``, plus (by default)
    :data:`FILLER_WORDS`."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    words = (set(ENGLISH_STOP_WORDS) - CONTENT_WORDS) | {w.lower() for w in extra}
    if filler:
        words |= FILLER_WORDS
    return frozenset(words)


#: Methods of weighting terms (``--method``); the paper's comes first and is the default.
METHODS = ("tfidf", "ctfidf")

#: Words of two or more letters (letters, digits, inner hyphens and apostrophes); no bare numbers.
TOKEN = re.compile(r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b")
_CONTRACTION = re.compile(r"(?i)'(s|t|re|ll|ve|d|m)$")


def tokens(text: str, stop: frozenset[str] | set[str]) -> list[str]:
    """Lower-cased words of ``text`` without stop words: typographic apostrophes are made plain, a
    contraction or possessive is cut back to its stem ("it's" -> "it", "earth's" -> "earth",
    "don't" -> "do") and dropped when that stem is a stop word."""
    out = []
    for word in TOKEN.findall(text.lower().replace("\u2019", "'").replace("\u2018", "'")):
        stem = _CONTRACTION.sub("", word)
        if stem.endswith("n") and word.endswith("n't"):
            stem = stem[:-1]  # don't -> do, isn't -> is, can't -> ca (too short: dropped below)
        stem = stem.strip("'-")
        if len(stem) < 2 or stem in stop or word in stop:
            continue
        out.append(stem)
    return out


def _counts(docs: list[str], stop: frozenset[str], ngram_range: tuple[int, int]):
    """(terms, counts matrix clusters x terms) of the cluster documents."""
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(
        analyzer=lambda doc: _ngrams(tokens(doc, stop), ngram_range), lowercase=False
    )
    try:
        matrix = vectorizer.fit_transform(docs)
    except ValueError:  # every word was a stop word
        return np.array([], dtype=object), None
    return vectorizer.get_feature_names_out(), matrix


def _ngrams(words: list[str], ngram_range: tuple[int, int]) -> list[str]:
    lo, hi = ngram_range
    return [" ".join(words[i : i + n]) for n in range(lo, hi + 1) for i in range(len(words) - n + 1)]


def tfidf(counts: np.ndarray) -> np.ndarray:
    """scikit-learn's TF-IDF of a documents x terms count matrix (the paper's weighting): raw counts times
    ``ln((1 + n) / (1 + df)) + 1``, each row l2-normalised."""
    counts = np.asarray(counts, dtype=float)
    n = counts.shape[0]
    df = (counts > 0).sum(axis=0)
    weights = counts * (np.log((1 + n) / (1 + df)) + 1)
    norms = np.linalg.norm(weights, axis=1, keepdims=True)
    return np.divide(weights, norms, out=np.zeros_like(weights), where=norms > 0)


def ctfidf(counts: np.ndarray) -> np.ndarray:
    """Class-based TF-IDF (Grootendorst 2022, BERTopic) of a classes x terms count matrix: each row's
    counts as shares of its words (l1) times ``ln(1 + A / f)``, ``A`` the mean words per class and ``f``
    the term's total count over all classes."""
    counts = np.asarray(counts, dtype=float)
    words = counts.sum(axis=1, keepdims=True)
    tf = np.divide(counts, words, out=np.zeros_like(counts), where=words > 0)
    total = counts.sum(axis=0)
    mean_words = float(words.mean()) if words.size else 0.0
    idf = np.log(1 + np.divide(mean_words, total, out=np.zeros_like(total), where=total > 0))
    return tf * idf


def mmr(
    relevance: Sequence[float] | np.ndarray, vectors: np.ndarray, top_k: int, diversity: float
) -> list[int]:
    """Maximal marginal relevance (Carbonell & Goldstein 1998): indices of ``top_k`` candidates, each
    next one maximising ``(1 - diversity) * relevance - diversity * max cosine to those chosen``; the
    most relevant comes first. ``diversity`` 0 keeps the order of relevance."""
    rel = np.asarray(relevance, dtype=float)
    if not 0.0 <= diversity <= 1.0:
        raise ValueError(f"diversity must be between 0 and 1, not {diversity}")
    if rel.size == 0 or top_k <= 0:
        return []
    v = np.asarray(vectors, dtype=float)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    v = np.divide(v, norms, out=np.zeros_like(v), where=norms > 0)
    sim = v @ v.T
    chosen = [int(np.argmax(rel))]
    left = [i for i in range(rel.size) if i != chosen[0]]
    while left and len(chosen) < top_k:
        redundancy = sim[np.ix_(left, chosen)].max(axis=1)
        scores = (1 - diversity) * rel[left] - diversity * redundancy
        best = left[int(np.argmax(scores))]
        chosen.append(best)
        left.remove(best)
    return chosen


def minilm_term_vectors(terms: Sequence[str]) -> np.ndarray:
    """Vectors of terms from the packaged all-MiniLM-L6-v2 (offline, on PyTorch as before: the keywords of
    a run do not change with the embedder's runtime); what MMR compares by default."""
    from connote import registry

    return np.asarray(registry.text_embedder("minilm", runtime="torch").embed_texts(list(terms)), dtype=float)


def cluster_keywords(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    top_k: int = DEFAULT_TOP_K,
    stop: Iterable[str] | None = None,
    ngram_range: tuple[int, int] = (1, 1),
    include_outliers: bool = False,
    method: str = "tfidf",
    diversity: float = 0.0,
    term_vectors: Callable[[Sequence[str]], np.ndarray] | None = None,
    candidates: int = 3,
    exclude: Iterable[str] = (),
) -> dict[int, list[tuple[str, float]]]:
    """``{cluster: [(term, score), ...]}`` with the ``top_k`` best terms per cluster.

    ``method`` is ``tfidf`` (the paper's) or ``ctfidf``; with ``diversity`` > 0 the best
    ``candidates * top_k`` terms are re-ranked by :func:`mmr` over ``term_vectors(terms)`` (MiniLM by
    default). Outliers (-1) are neither described nor part of the IDF corpus unless ``include_outliers``.
    Terms in ``exclude`` are weighted with the others but left out of every list.
    """
    if method not in METHODS:
        raise ValueError(f"unknown keyword method {method!r}; use {' or '.join(METHODS)}")
    docs: dict[int, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        if text and (label != -1 or include_outliers):
            docs.setdefault(int(label), []).append(text)
    if not docs:
        return {}
    clusters = sorted(docs)
    stop_set = frozenset(stop if stop is not None else stop_words())
    terms, counts = _counts([" ".join(docs[c]) for c in clusters], stop_set, ngram_range)
    if counts is None:
        return {c: [] for c in clusters}
    counts = counts.toarray()
    weights = tfidf(counts) if method == "tfidf" else ctfidf(counts)
    out: dict[int, list[tuple[str, float]]] = {}
    pool = max(top_k, top_k * candidates) if diversity > 0 else top_k
    ranked_rows = []
    excluded = set(exclude)
    for row, c in enumerate(clusters):
        scores = weights[row]
        order = [
            i
            for i in sorted(range(len(terms)), key=lambda i: (-scores[i], terms[i]))
            if scores[i] > 0 and terms[i] not in excluded
        ]
        ranked_rows.append((c, scores, order[:pool]))
    vectors = None
    if diversity > 0:
        wanted = sorted({i for _, _, order in ranked_rows for i in order})
        embed = term_vectors or minilm_term_vectors
        got = np.asarray(embed([str(terms[i]) for i in wanted]), dtype=float) if wanted else np.zeros((0, 1))
        vectors = {i: got[j] for j, i in enumerate(wanted)}
    for c, scores, order in ranked_rows:
        if vectors is not None and order:
            rel = np.array([scores[i] for i in order])
            rel = rel / rel.max() if rel.max() > 0 else rel
            picked = mmr(rel, np.stack([vectors[i] for i in order]), top_k, diversity)
            order = [order[j] for j in picked]
        out[c] = [(str(terms[i]), float(scores[i])) for i in order[:top_k] if not math.isnan(scores[i])]
    return out


#: A term in at least this share of the clusters' keyword lists is common to the run (:func:`common_terms`).
COMMON_SHARE = 0.5


def common_rule(top_k: int, share: float = COMMON_SHARE) -> str:
    """The rule :func:`common_terms` applies, in words (recorded with the keywords)."""
    return (
        f"a term in at least {share:.0%} of the clusters' top-{top_k} keyword lists (and in at least two) "
        "is common to the whole run and left out of each cluster's list"
    )


def common_terms(lists: Mapping[int, Sequence[str]], share: float = COMMON_SHARE) -> list[str]:
    """The terms that stand in at least ``max(2, ceil(share * n))`` of the ``n`` clusters' keyword lists,
    the most widespread first (ties by best rank, then alphabetically). With fewer than two lists, none."""
    need = max(2, math.ceil(share * len(lists)))
    seen: dict[str, list[int]] = {}
    for terms in lists.values():
        for rank, term in enumerate(dict.fromkeys(terms)):
            seen.setdefault(term, []).append(rank)
    common = [t for t, ranks in seen.items() if len(ranks) >= need]
    return sorted(common, key=lambda t: (-len(seen[t]), min(seen[t]), t))


def distinct_keywords(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    top_k: int = DEFAULT_TOP_K,
    share: float = COMMON_SHARE,
    **options,
) -> tuple[dict[int, list[tuple[str, float]]], dict[str, list[int]]]:
    """:func:`cluster_keywords` without the terms common to the run: (each cluster's ``top_k`` terms, the
    common terms, each with the clusters whose first list had it). The common terms are found in the
    clusters' first lists (:func:`common_terms`) and left out of every list, which the next-best terms
    fill; scores are unchanged."""
    first = cluster_keywords(texts, labels, top_k=top_k, **options)
    common = common_terms({c: [t for t, _ in terms] for c, terms in first.items()}, share)
    if not common:
        return first, {}
    had = {t: [c for c in sorted(first) if t in {x for x, _ in first[c]}] for t in common}
    return cluster_keywords(texts, labels, top_k=top_k, exclude=common, **options), had
