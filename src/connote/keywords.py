"""S5: describe each cluster by the top TF-IDF terms of its joined descriptions (the paper's method).

Each cluster's descriptions are joined into one document; terms are weighted by TF-IDF across the cluster
documents, so a term scores high when it is frequent in one cluster and rare in the others. English stop
words and the filler words vision LLMs use in every answer ("conveys", "suggests", ...) are removed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: Words that describe the act of describing, not the image (the paper removes "conveys", "suggests" ...).
FILLER_WORDS = frozenset(
    """image images picture pictures photo photograph photographs scene depicts depict depicted depicting
    shows show showing shown conveys convey conveyed conveying suggests suggest suggesting suggested evokes
    evoke evoking evoked represents represent representing symbolizes symbolize symbolizing symbolic
    symbolises symbolise highlights highlight highlighting emphasizes emphasize emphasizing emphasises
    underscores underscore portrays portray portraying reflects reflect reflecting captures capture capturing
    connotative connotation connotations meaning overall sense feeling appears appear likely viewer viewers
    visual visually evident text written seen colours colors""".split()  # noqa: SIM905 - a word list reads best as text
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


def cluster_keywords(
    texts: Sequence[str],
    labels: Sequence[int],
    *,
    top_k: int = 10,
    stop: Iterable[str] | None = None,
    ngram_range: tuple[int, int] = (1, 1),
    include_outliers: bool = False,
) -> dict[int, list[tuple[str, float]]]:
    """``{cluster: [(term, score), ...]}`` with the ``top_k`` highest TF-IDF terms per cluster.

    Outliers (-1) are neither described nor part of the IDF corpus unless ``include_outliers``.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    docs: dict[int, list[str]] = {}
    for text, label in zip(texts, labels, strict=True):
        if text and (label != -1 or include_outliers):
            docs.setdefault(int(label), []).append(text)
    if not docs:
        return {}
    clusters = sorted(docs)
    vectorizer = TfidfVectorizer(
        stop_words=sorted(stop if stop is not None else stop_words()),
        token_pattern=r"(?u)\b[^\W\d_][\w'-]*[^\W_]\b",  # words of 2+ letters, no bare numbers
        ngram_range=ngram_range,
        sublinear_tf=False,
    )
    try:
        matrix = vectorizer.fit_transform([" ".join(docs[c]) for c in clusters])
    except ValueError:  # every word was a stop word
        return {c: [] for c in clusters}
    terms = vectorizer.get_feature_names_out()
    out: dict[int, list[tuple[str, float]]] = {}
    for row, c in enumerate(clusters):
        scores = matrix.getrow(row).toarray().ravel()
        order = sorted(range(len(terms)), key=lambda i: (-scores[i], terms[i]))[:top_k]
        out[c] = [(str(terms[i]), float(scores[i])) for i in order if scores[i] > 0]
    return out
