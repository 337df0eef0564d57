"""Output checks for generated descriptions: refusals and broken generations, nothing else.

``check_description(text)`` returns None for a usable text, else a short reason; ``check_response``
judges the response metadata (finish_reason 'length' = truncated, 'content_filter'); ``check_output``
does both, metadata first (what the describe runner does). The checks are aimed at what a vision LLM gets
wrong, not at style: a terse answer, a headline, a meme's words quoted in capitals, a list of keywords or a
spoken transcript all pass. What is flagged:

* ``empty``: no letter or digit at all (special tokens such as ``</s>`` do not count),
* ``refusal``: the text opens by declining ("I'm sorry, but I can't ...", "As an AI ...") and is short
  (a long description after a one-line caveat is kept),
* ``repetitive``: a loop (a phrase repeated back to back over at least 12 words, or 10 words said again
  right after themselves, or a sentence repeated with one word changed; one word filling the text),
* ``word salad``: token soup (mostly symbols; tokenizer markers such as ``[unused5]`` or ``##``; words of
  several writing systems mixed; a long run of words without one function word or punctuation mark, or
  almost no function words in a text that is not a list; English words in impossible pairs such as
  "the of and" or "a empty").

Judged on the first 100,000 characters (1,500 words for loops), so a check is fast on any input.

Their false-flag and miss rates are measured by ``benchmarks/output_checks.py`` (human texts of
../shared/datasets and generated degenerate outputs) and written to ``benchmarks/results/``.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from itertools import groupby

# ------------------------------------------------------------------------------------------- words


def _wordset(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


_WORD = re.compile(r"[^\W_]+(?:['’][^\W\d_]+)?", re.UNICODE)
# A token: a word, or one mark of punctuation (so runs of words can be broken by punctuation).
_TOKEN = re.compile(r"[^\W_]+(?:['’][^\W\d_]+)?|[^\w\s]", re.UNICODE)
_SPECIAL = re.compile(
    r"</?s>|<\|[^|>]{1,40}\|>|<(?:pad|unk|eos|bos|mask)>|\[(?:pad|unk|cls|sep|mask)\]", re.I
)
_MARKERS = re.compile(r"\[unused\d+\]|\[(?:UNK|PAD|CLS|SEP|MASK)\]|(?:^|\s)##\w|<unk>|\ufffd")
_CENSORED = re.compile(r"\[[\s_*.-]*\]")  # "[ __ ]": a word bleeped out of a transcript, not soup
MAX_WORDS = 1500  # longer texts are judged on their first MAX_WORDS words
MAX_CHARS = 100_000  # ... and on their first MAX_CHARS characters (a check stays fast on any input)

# Function words of English (and the commonest of French, German, Spanish, Italian, Portuguese, Dutch,
# Scandinavian, Polish, Turkish, Indonesian, Russian): prose and even terse captions hold some; random
# token sequences hold almost none.
ENGLISH_FUNCTION_WORDS = _wordset(
    """a an the and or but nor if of to in on at by for with from as into onto about over under than then
    that this these those it its it's is are was were be been being am has have had do does did not no so
    such there their they them he him she her his we us our you your i me my mine which who whom whose what
    when where while how why can could may might will would shall should must also very more most less some
    any each all both one itself up out off down after before because through during again just only own
    same too until against between here let let's we're i'm you're they're it's that's there's don't can't"""
)
STOPWORDS = ENGLISH_FUNCTION_WORDS | _wordset(
    """le la les un une des et ou de du en est que qui dans pour sur avec pas au aux ce il elle nous vous
    der die das ein eine und oder von zu mit ist nicht den dem des im auf für sich es
    el los las y o del es por con para una se lo al su
    il lo gli di da con su per tra e ma che non della dei nel nella è
    os um uma do da dos das em no na com por para ou mas não é
    het een en van op met voor aan te niet dat die
    och og att det som på är av med til er ett
    w z na do nie się to jest że
    ve bir bu da de ile için gibi çok daha
    yang dan di ke dari ini itu dengan untuk pada adalah tidak
    и в во на с со не что это как по к из от а но о за у же для"""
)

# Function-word pairs that English never has ("the of", "a and", "of is", "they the"): common in a soup
# of frequent words, next to absent from English text (speech included; "the the" is a stutter).
_DETERMINERS = _wordset("a an the my your our their its")
_PREPOSITIONS = _wordset("of to in on at by for with from into onto")
_CONJUNCTIONS = _wordset("and or nor")
_AUXILIARIES = _wordset("is are was were has had does did will would can could should must")
_SUBJECTS = _wordset("i he she we they")
_PRONOUNS = _SUBJECTS | _wordset("me him us them")
# Function words that may follow "the", "a", "my" ...: "the same", "a very", "its own", "the most".
_AFTER_DETERMINER_OK = _wordset("same one more most less very only own up out down off after over under")
_END = frozenset(".!?,;:")
_A_BEFORE_VOWEL_OK = _wordset("one once oneself")


def words(text: str) -> list[str]:
    """Lower-cased words of a text (letters, digits, apostrophes inside a word)."""
    return [w.lower() for w in _WORD.findall(text)]


# ----------------------------------------------------------------------------------------- refusal
_APOLOGY = (
    r"(?:i['’]?m (?:so |very |truly )?sorry|i am (?:so |very )?sorry|sorry|my apologies|i apologi[sz]e|"
    r"unfortunately|apologies)"
)
_CANNOT = (
    r"i(?:['’]m|\s+am)\s+(?:unable|not able|not allowed|not permitted|not comfortable|afraid|not in a position)|"
    r"i\s+(?:can(?:['’]|no)?t|cannot|can not|won['’]?t|will not|do(?:n['’]t| not) feel comfortable|"
    r"must (?:decline|refrain)|have to decline)"
)
_ACT = (
    r"(?:help|assist|provide|describe|descri|analy[sz]e|interpret|identify|comply|process|view|see|access|"
    r"open|fulfil+|complete|do that|do this|engage|generate|comment|discuss|make|offer|share|determine|"
    r"recogni[sz]e|tell|answer|respond|give|create|write|perform|support|continue|display|look)"
)
_REFUSAL_OPENERS = [
    re.compile(rf"^\W*{_APOLOGY}\b[^\n]{{0,80}}?\b(?:{_CANNOT})", re.I),  # "I'm sorry, but I can't ..."
    re.compile(rf"^\W*(?:{_CANNOT})\b[^.!?\n]{{0,40}}?\b{_ACT}", re.I),  # "I can't help with that."
    re.compile(r"^\W*as an ai\b", re.I),  # "As an AI (language model), I ..."
    re.compile(rf"^\W*{_APOLOGY}\W+(?:but )?(?:this|that|the) (?:image|request|content)\b", re.I),
    re.compile(r"^\W*(?:i['’]?m|i am) (?:sorry|afraid)\W*$", re.I),  # just "I'm sorry."
    re.compile(r"^\W*(?:i (?:must|have to) decline|i (?:refuse|decline) to)\b", re.I),
    re.compile(r"^\W*(?:this|that) (?:is not something|isn't something) i can\b", re.I),
    # The same in the languages a prompt is most often written in besides English.
    re.compile(
        r"^\W*(?:lo siento|disculpa|lamentablemente)\b[^\n]{0,60}?\bno (?:puedo|me es posible)\b|"
        r"^\W*(?:je suis (?:désolée?|navrée?)|désolée?|malheureusement)\b[^\n]{0,60}?\bje ne (?:peux|suis pas)\b|"
        r"^\W*(?:es tut mir leid|entschuldigung|leider)\b[^\n]{0,60}?\b(?:kann ich|ich kann)\b[^\n]{0,60}?\bnicht\b|"
        r"^\W*(?:mi dispiace|purtroppo)\b[^\n]{0,60}?\bnon (?:posso|riesco)\b|"
        r"^\W*(?:desculpe|lamento|infelizmente)\b[^\n]{0,60}?\bnão (?:posso|consigo)\b",
        re.I,
    ),
]
REFUSAL_MAX_WORDS = 60  # a longer text that opens with a caveat goes on to describe the image


def is_refusal(text: str) -> bool:
    head = text.strip()[:400]
    if not any(p.search(head) for p in _REFUSAL_OPENERS):
        return False
    return len(words(text)) <= REFUSAL_MAX_WORDS


# -------------------------------------------------------------------------------------- repetition
LOOP_MIN_SPAN = 12  # words covered by a phrase repeated back to back at least three times
LOOP_MIN_ECHO = 10  # or: this many words said again right after themselves
NEAR_LOOP_MIN_SPAN = 24  # a phrase of 4+ words repeated with one word changed each time


def loop_span(ws: list[str], period: int, slack: bool = False, same: list[bool] | None = None) -> int:
    """Words covered by the longest stretch where every word equals the one ``period`` words before.

    With ``slack``, one differing word per period is allowed ("It is red. It is blue. It is green.").
    Returns the stretch's length plus the period (the first copy of the phrase). ``same``: the
    comparisons ``ws[i] == ws[i - period]``, if already made.
    """
    if same is None:
        same = [a == b for a, b in zip(ws, ws[period:], strict=False)]
    best = run = 0
    if not slack:
        for equal, group in groupby(same):
            if equal:
                best = max(best, sum(1 for _ in group))
        return best + period if best else 0
    last_miss = -(10**9)
    for i, equal in enumerate(same):
        if equal:
            run += 1
        elif i - last_miss >= period and run:
            run += 1
            last_miss = i
        else:
            run = 0
            last_miss = i
        best = max(best, run)
    return best + period if best else 0


def repetition(ws: list[str], max_period: int = 40) -> str | None:
    """A loop: the same words over and over (see the module's docstring)."""
    ws = ws[:MAX_WORDS]
    n = len(ws)
    for p in range(1, min(max_period, n // 2) + 1):
        same = [a == b for a, b in zip(ws, ws[p:], strict=False)]
        matches = sum(same)
        if matches < 4:  # no loop of this period can be there
            continue
        span = loop_span(ws, p, same=same)
        repeats = span // p
        if (repeats >= 3 and span >= LOOP_MIN_SPAN) or span - p >= LOOP_MIN_ECHO or (p <= 2 and repeats >= 6):
            return f"repetitive (a {p}-word phrase {span / p:.1f} times in a row)"
        if p >= 4 and n >= NEAR_LOOP_MIN_SPAN and matches >= 12:
            span = loop_span(ws, p, slack=True, same=same)
            if span >= max(NEAR_LOOP_MIN_SPAN, 4 * p):
                return f"repetitive (a {p}-word phrase {span / p:.1f} times in a row, nearly the same)"
    if n >= 10:
        counts = Counter(ws)
        top, k = counts.most_common(1)[0]
        if k / n > 0.5 and top not in STOPWORDS:
            return f"repetitive ('{top}' is {k} of {n} words)"
        if len(counts) / n < 0.2:
            return f"repetitive (only {len(counts)} different words in {n})"
    return None


# -------------------------------------------------------------------------------------- word salad
SALAD_RUN = 16  # words in a row without a function word or punctuation
SALAD_SHORT_RUN = 8  # ... when under a tenth of all words are function words
_FAMILIES = ("LATIN", "GREEK", "CYRILLIC", "ARABIC", "HEBREW", "DEVANAGARI", "THAI", "ARMENIAN", "GEORGIAN")


def script(ch: str) -> str | None:
    """The writing system of a letter (LATIN, CYRILLIC, CJK, ...), None if not a letter or not known."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    if name.startswith(("CJK", "HIRAGANA", "KATAKANA", "HANGUL")):
        return "CJK"
    head = name.split(" ", 1)[0]
    return head if head in _FAMILIES else None


def _impossible_pair(a: str, b: str) -> bool:
    """Two English words that cannot follow each other (``b`` may be punctuation): function words in an
    impossible order, or an article that does not fit the next word ("a of", "a empty", "an tree")."""
    if a == "a" and b[0] in "aeio" and b.isalpha() and b not in _A_BEFORE_VOWEL_OK and not b.startswith("eu"):
        return True
    if a == "an" and b[0] not in "aeiouh" and b.isalpha() and len(b) > 3:  # not "an MP", "an FBI agent"
        return True
    if a == b or not (b in ENGLISH_FUNCTION_WORDS or b in _END):
        return False
    if a in _DETERMINERS:
        return b not in _AFTER_DETERMINER_OK
    if a in _PREPOSITIONS:
        return (
            b in _PREPOSITIONS
            or b in _CONJUNCTIONS
            or b in _AUXILIARIES
            or b in _SUBJECTS
            or (a == "of" and b in _END)
        )
    if a in _CONJUNCTIONS:
        return b in _CONJUNCTIONS or b in _END
    if a in _SUBJECTS:
        return b in _DETERMINERS or b in _PRONOUNS
    if a in _AUXILIARIES:
        return b in _AUXILIARIES and (a, b) != ("has", "had")
    return False


def word_salad(text: str, tokens: list[str]) -> str | None:
    """Token soup (see the module's docstring); ``tokens``: lower-cased words and punctuation marks."""
    chars = [ch for ch in _CENSORED.sub(" ", text) if not ch.isspace()]
    if len(chars) >= 20 and sum(ch.isalnum() for ch in chars) / len(chars) < 0.5:
        return "word salad (mostly symbols)"
    markers = _MARKERS.findall(text)
    if len(markers) >= 2 or any(m.startswith("[") for m in markers):
        return f"word salad (tokenizer markers such as {markers[0].strip()})"
    ws = [t for t in tokens if t[0].isalnum()]
    mixed = sum(len({script(ch) for ch in w} - {None}) > 1 for w in ws)
    if mixed >= 2:
        return f"word salad ({mixed} words mixing writing systems)"
    if len(ws) < 8:
        return None
    scripts = [s for s in (next(filter(None, map(script, w)), None) for w in ws) if s]
    switches = sum(a != b for a, b in zip(scripts, scripts[1:], strict=False))
    if len(set(scripts)) >= 3 and switches >= 6 and switches >= 0.2 * len(scripts):
        return f"word salad ({len(set(scripts))} writing systems mixed word by word)"
    run = longest = 0
    for t in tokens:
        run = run + 1 if t[0].isalnum() and t not in STOPWORDS else 0
        longest = max(longest, run)
    function = sum(w in STOPWORDS for w in ws) / len(ws)
    if longest >= SALAD_RUN or (longest >= SALAD_SHORT_RUN and function < 0.1):
        return f"word salad ({longest} words in a row without a function word or punctuation)"
    segments = len(ws) / (1 + sum(not t[0].isalnum() for t in tokens[:-1]))
    if len(ws) >= 15 and function < 0.05 and segments >= 4:  # not a list of keywords
        return f"word salad (only {function:.0%} function words)"
    english = sum(w in ENGLISH_FUNCTION_WORDS for w in ws)
    if english < 0.6 * sum(w in STOPWORDS for w in ws):  # another language: the English pairs do not apply
        return None
    bad = sum(_impossible_pair(a, b) for a, b in zip(tokens, tokens[1:], strict=False))
    if bad >= 3 or (bad >= 2 and bad >= 0.08 * len(ws)):
        return f"word salad ({bad} impossible word pairs such as 'the of')"
    return None


# ------------------------------------------------------------------------------------------ public
def check_description(text: str | None) -> str | None:
    """None if the text looks like a usable description; else the reason it was flagged."""
    if text is None:
        return "empty"
    text = text[:MAX_CHARS]
    bare = _SPECIAL.sub(" ", text)
    if not any(ch.isalnum() for ch in bare):
        return "empty" if not bare.strip() else "empty (no letter or digit)"
    if is_refusal(bare):
        return "refusal"
    tokens = [t.lower() for t in _TOKEN.findall(bare)[: 2 * MAX_WORDS]]
    ws = [t for t in tokens if t[0].isalnum()]
    return repetition(ws) or word_salad(text, tokens)


def check_response(finish_reason: str | None) -> str | None:
    """A problem told by the response metadata: truncated or filtered."""
    if finish_reason == "length":
        return "truncated (finish_reason 'length')"
    if finish_reason == "content_filter":
        return "content filter"
    return None


def check_output(text: str | None, finish_reason: str | None = None) -> str | None:
    """Both checks, metadata first: what the describe runner does with every LLM output."""
    return check_response(finish_reason) or check_description(text)


def check_name(reason: str | None) -> str | None:
    """The check behind a reason: 'empty', 'refusal', 'repetitive', 'word salad', 'truncated', ..."""
    if reason is None:
        return None
    return reason.split(" (", 1)[0]
