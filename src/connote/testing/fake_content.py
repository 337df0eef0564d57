"""Deterministic content the fake OpenAI server returns: description paragraphs and embedding vectors."""

from __future__ import annotations

import base64
import hashlib

REFUSAL = "I'm sorry, but I can't help with describing this image."

_MOODS = [
    "quiet nostalgia",
    "restless energy",
    "solemn dignity",
    "playful optimism",
    "uneasy tension",
    "warm belonging",
    "cool detachment",
    "hopeful renewal",
    "melancholy solitude",
    "proud defiance",
]
_THEMES = [
    "the passage of time",
    "community and care",
    "the fragility of nature",
    "urban ambition",
    "personal freedom",
    "memory and loss",
    "progress and its costs",
    "the comfort of home",
    "protest and change",
    "wonder at the ordinary",
]
_CUES = [
    "muted colours",
    "strong contrasts",
    "a soft light",
    "an empty space",
    "a crowded frame",
    "a bold composition",
    "gentle curves",
    "sharp geometric lines",
]


def image_text(image_hash: str) -> str:
    """A plausible, deterministic connotative paragraph for an image hash (passes the output checks)."""
    h = int(image_hash[:16] or "0", 16)
    mood, theme, cue = (
        _MOODS[h % len(_MOODS)],
        _THEMES[(h // 10) % len(_THEMES)],
        _CUES[(h // 100) % len(_CUES)],
    )
    return (
        f"The image evokes a sense of {mood}, and it seems to speak about {theme}. Through {cue}, it "
        f"invites the viewer to reflect on what is shown and on the feelings that it stirs, suggesting that "
        f"the scene carries a meaning beyond its surface."
    )


# Pools of sentence fragments for near-unique paragraphs (``varied_text``): 16 x 16 x 16 x 8 x 16 x 8 x 12
# combinations (about 50 million), so 100,000 images share a paragraph only by rare chance.
_OPENINGS = [
    "At first glance the image evokes",
    "The photograph carries",
    "What stays with the viewer is",
    "The picture radiates",
    "Above all, the scene conveys",
    "The frame is filled with",
    "This image seems steeped in",
    "There is an air of",
    "The composition suggests",
    "One senses in this picture",
    "The image quietly holds",
    "Looking at it, one feels",
    "The scene is charged with",
    "Everything here speaks of",
    "The mood of the picture is one of",
    "From the first look the photograph offers",
]
_MORE_MOODS = [
    "tender longing",
    "bright curiosity",
    "anxious anticipation",
    "calm resolve",
    "wistful reverie",
    "stubborn hope",
]
_MORE_THEMES = [
    "belonging and exclusion",
    "work and its rewards",
    "the weight of tradition",
    "migration and arrival",
    "childhood and growing up",
    "power and its limits",
]
_SUBJECTS = [
    "A lone figure at the edge of the frame seems to wait for something that has not yet arrived.",
    "The empty street feels like a stage after the actors have left.",
    "Two people stand close together, as if sharing a secret the viewer is not meant to hear.",
    "A crowd gathers in the background, its purpose left open to interpretation.",
    "An old building dominates the scene, worn by years of weather and use.",
    "A child looks straight at the camera with an expression that is hard to read.",
    "The landscape stretches towards a horizon that seems further away than it is.",
    "Hands at work fill the foreground, busy with a task the picture does not explain.",
    "A window lets in light that falls unevenly across the room.",
    "Objects on a table are arranged with a care that hints at ritual.",
    "The sky takes up most of the picture and presses down on the small shapes below.",
    "A vehicle waits by the roadside as though its journey has been interrupted.",
    "Flowers at the border of the frame soften an otherwise severe setting.",
    "A sign in the distance is just too small to read, which adds to the mystery.",
    "Reflections in the water double the scene and blur its edges.",
    "A doorway opens onto darkness, inviting and unsettling at once.",
]
_EFFECTS = [
    "the picture shapes how the scene is felt",
    "the photographer guides the eye",
    "the image sets its emotional key",
    "the scene gains an unexpected depth",
    "the mood becomes almost tangible",
    "the frame turns a moment into a story",
    "the viewer is led from detail to whole",
    "the picture balances calm and movement",
]
_CLOSINGS = [
    "It invites the viewer to linger and to bring their own memories to it.",
    "The meaning seems to lie just beyond what the camera could capture.",
    "It leaves an impression that outlasts the first look.",
    "The picture asks more questions than it answers.",
    "One is left wondering what happened a moment before and after.",
    "It feels both specific to its place and strangely universal.",
    "The overall effect is of a story told in a single breath.",
    "It suggests that the ordinary can hold a quiet significance.",
    "The viewer is drawn in and held at a distance at the same time.",
    "What is left unsaid matters as much as what is shown.",
    "It seems to record a turning point, though which one is unclear.",
    "There is a sense that this moment could not be repeated.",
]


def varied_text(image_hash: str) -> str:
    """A near-unique deterministic paragraph for an image hash, composed from pools of sentence fragments
    (for benchmarks that need as many distinct texts as images; passes the output checks)."""
    h = int(hashlib.sha256(image_hash.encode()).hexdigest()[:24], 16)
    moods, themes = _MOODS + _MORE_MOODS, _THEMES + _MORE_THEMES
    picks = []
    for pool in (_OPENINGS, moods, themes, _CUES, _SUBJECTS, _EFFECTS, _CLOSINGS):
        h, i = divmod(h, len(pool))
        picks.append(pool[i])
    opening, mood, theme, cue, subject, effect, closing = picks
    return (
        f"{opening} {mood}, and it seems to speak about {theme}. {subject} Through {cue}, {effect}. {closing}"
    )


def unit_vector(text: str, dim: int) -> list[float]:
    """Deterministic unit vector from a hash of the text (no numpy needed)."""
    out: list[float] = []
    counter = 0
    seed = hashlib.sha256(text.encode("utf-8")).digest()
    while len(out) < dim:
        block = hashlib.sha256(seed + counter.to_bytes(4, "little")).digest()
        counter += 1
        for i in range(0, 32, 4):
            out.append(int.from_bytes(block[i : i + 4], "little") / 2**32 - 0.5)
    out = out[:dim]
    norm = sum(v * v for v in out) ** 0.5 or 1.0
    return [v / norm for v in out]


EMBED_DIMS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072, "text-embedding-ada-002": 1536}


def _image_urls(req: dict) -> list[str]:
    """The image_url URLs of a chat request's messages, in order."""
    urls = []
    for msg in req.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, list):
            urls += [
                (part.get("image_url") or {}).get("url", "")
                for part in content
                if isinstance(part, dict) and part.get("type") == "image_url"
            ]
    return urls


def _decoded(url: str) -> bytes | None:
    """A data URL's bytes (b'' when they are not base64); None for another kind of URL."""
    if not (url.startswith("data:") and "," in url):
        return None
    try:
        return base64.b64decode(url.split(",", 1)[1], validate=True)
    except ValueError:
        return b""


def image_of(req: dict) -> tuple[str | None, bytes | None]:
    """(hash of the first image_url payload, its decoded bytes) of a chat request."""
    urls = _image_urls(req)
    if not urls:
        return None, None
    return hashlib.sha256(urls[0].encode()).hexdigest(), _decoded(urls[0])


# ---------------------------------------------------------------------------------------------- coding
#: The colour a caption names for the image's strongest channel (what an LLM coder's answers follow).
_COLOURS = ("red", "green", "blue")


def images_of(req: dict) -> list[bytes]:
    """The decoded bytes of every image_url data URL of a chat request, in order."""
    return [_decoded(url) or b"" for url in _image_urls(req)]


def prompt_of(req: dict) -> str:
    """The text parts of a chat request's messages, joined."""
    texts = []
    for msg in req.get("messages") or []:
        content = msg.get("content")
        if isinstance(content, str):
            texts.append(content)
        elif isinstance(content, list):
            texts += [p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text"]
    return "\n".join(texts)


def caption_key(data: bytes) -> tuple[str, int]:
    """The fake's caption lookup: (the colour of the image's strongest channel, brightness 0-2), read from
    the pixels, so the same picture sent at another size or quality has the same key."""
    import io

    from PIL import Image, ImageStat

    try:
        with Image.open(io.BytesIO(data)) as im:
            means = ImageStat.Stat(im.convert("RGB")).mean
    except Exception:  # noqa: BLE001 - not an image: a key of its own
        return "grey", 0
    return _COLOURS[max(range(3), key=lambda i: means[i])], min(2, int(sum(means) / 3 // 86))


def caption(data: bytes) -> str:
    """A caption for an image: its key's colour and a paragraph chosen by the key."""
    colour, light = caption_key(data)
    return f"A mostly {colour} picture. " + image_text(
        hashlib.sha256(f"{colour}{light}".encode()).hexdigest()
    )


def rate_pair(a: bytes, b: bytes, position_bias: int = 0) -> dict[str, int]:
    """A coder's ratings of two images from their captions: denotative 2 when the keys are equal, 1 when
    the colours are, else 0; connotative 2 when the captions' paragraphs are equal, 1 when they share the
    mood or the theme, else 0. ``position_bias`` adds that much to the connotative rating (at most 2) when
    the first image's colour comes first in the alphabet, so (A, B) and (B, A) can disagree."""
    ka, kb = caption_key(a), caption_key(b)
    den = 2 if ka == kb else 1 if ka[0] == kb[0] else 0
    pa, pb = (caption(x).split(". ", 1)[1] for x in (a, b))
    con = 2 if pa == pb else 1 if any(m in pa and m in pb for m in _MOODS + _THEMES) else 0
    if position_bias and ka[0] < kb[0]:
        con = min(2, con + position_bias)
    return {"denotative": den, "connotative": con}


def match_set(images: list[bytes], prompt: str) -> str:
    """The letter of the description (a line 'X: text' of the prompt) that shares most words with the
    images' captions; ties go to the first letter."""
    import re

    words = set(re.findall(r"[a-z]+", " ".join(caption(x) for x in images).lower()))
    best, score = "A", -1
    for code, text in re.findall(r"^([A-Z]{1,2}): (.*)$", prompt, flags=re.M):
        n = len(words & set(re.findall(r"[a-z]+", text.lower())))
        if n > score:
            best, score = code, n
    return best
