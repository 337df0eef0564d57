"""Output checks for descriptions: refusals, empty, too short, repetitive and word-salad texts.

``check_description(text)`` returns None for a usable text, else a short reason. Truncation
(finish_reason 'length') and content filters are judged by the runner from the response metadata
(:func:`check_response`). The checks are deliberately conservative: a flagged text is retried once and,
if still bad, kept apart for review (never silently dropped).
"""

from __future__ import annotations

import re
from collections import Counter

_REFUSAL_START = re.compile(
    r"^\W*(?:i'?m sorry|i am sorry|sorry,|i apologi[sz]e|unfortunately,? i\b|i can(?:'|’|no)?t\b|i cannot\b|"
    r"i'?m (?:not able|unable)|i am (?:not able|unable)|as an ai\b|i won'?t be able)",
    re.IGNORECASE,
)
_REFUSAL_ANY = re.compile(
    r"\b(?:i can(?:'|’|no)?t|i cannot|i'?m unable to|i am unable to|i'?m not able to|i am not able to)\s+"
    r"(?:help|assist|provide|describe|analy[sz]e|identify|comply|process|view|see)\b",
    re.IGNORECASE,
)
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?", re.UNICODE)

# Function words of English (and a few of French, German, Spanish): real prose is full of them,
# random token sequences ("word salad") are not.
STOPWORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "and",
        "or",
        "but",
        "if",
        "of",
        "to",
        "in",
        "on",
        "at",
        "by",
        "for",
        "with",
        "from",
        "as",
        "into",
        "onto",
        "about",
        "over",
        "under",
        "than",
        "then",
        "that",
        "this",
        "these",
        "those",
        "it",
        "its",
        "it's",
        "is",
        "are",
        "was",
        "were",
        "be",
        "been",
        "being",
        "has",
        "have",
        "had",
        "do",
        "does",
        "did",
        "not",
        "no",
        "so",
        "such",
        "there",
        "their",
        "they",
        "them",
        "he",
        "she",
        "his",
        "her",
        "we",
        "our",
        "you",
        "your",
        "i",
        "me",
        "my",
        "which",
        "who",
        "whom",
        "whose",
        "what",
        "when",
        "where",
        "while",
        "how",
        "why",
        "can",
        "could",
        "may",
        "might",
        "will",
        "would",
        "shall",
        "should",
        "must",
        "also",
        "very",
        "more",
        "most",
        "less",
        "some",
        "any",
        "each",
        "all",
        "both",
        "one",
        "its",
        "itself",
        "le",
        "la",
        "les",
        "un",
        "une",
        "des",
        "et",
        "ou",
        "de",
        "du",
        "en",
        "est",
        "que",
        "qui",
        "dans",
        "pour",
        "sur",
        "avec",
        "der",
        "die",
        "das",
        "ein",
        "eine",
        "und",
        "oder",
        "von",
        "zu",
        "mit",
        "ist",
        "nicht",
        "den",
        "dem",
        "des",
        "el",
        "los",
        "las",
        "y",
        "o",
        "del",
        "que",
        "en",
        "es",
        "por",
        "con",
        "para",
        "una",
    ]
)

MIN_WORDS = 5


def _words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def is_refusal(text: str) -> bool:
    head = text.strip()[:300]
    return bool(_REFUSAL_START.search(head) or _REFUSAL_ANY.search(head))


def repetition(words: list[str]) -> str | None:
    if len(words) < 12:
        return None
    trigrams = [tuple(words[i : i + 3]) for i in range(len(words) - 2)]
    if len(set(trigrams)) / len(trigrams) < 0.5:
        return "repetitive (the same phrases over and over)"
    content = [w for w in words if w not in STOPWORDS]
    if len(content) >= 8:
        word, n = Counter(content).most_common(1)[0]
        if n / len(content) > 0.3:
            return f"repetitive ('{word}' is {n} of {len(content)} content words)"
    return None


def word_salad(text: str, words: list[str]) -> str | None:
    if len(words) < 8:
        return None
    stop = sum(w in STOPWORDS for w in words) / len(words)
    if stop < 0.12:
        return f"word salad (only {stop:.0%} function words)"
    return None


def symbols(text: str) -> str | None:
    chars = [ch for ch in text if not ch.isspace()]
    if len(chars) >= 20 and sum(ch.isalpha() for ch in chars) / len(chars) < 0.6:
        return "word salad (mostly symbols)"
    return None


def check_description(text: str | None) -> str | None:
    """None if the text looks like a usable description; else the reason it was flagged."""
    if text is None or not text.strip():
        return "empty"
    if is_refusal(text):
        return "refusal"
    bad = symbols(text)
    if bad:
        return bad
    words = _words(text)
    if len(words) < MIN_WORDS:
        return f"too short ({len(words)} word(s))"
    return repetition(words) or word_salad(text, words)


def check_response(finish_reason: str | None) -> str | None:
    """A problem told by the response metadata: truncated or filtered."""
    if finish_reason == "length":
        return "truncated (finish_reason 'length')"
    if finish_reason == "content_filter":
        return "content filter"
    return None
