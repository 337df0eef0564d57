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


def image_of(req: dict) -> tuple[str | None, bytes | None]:
    """(hash of the first image_url payload, its decoded bytes) of a chat request."""
    for msg in req.get("messages") or []:
        content = msg.get("content")
        if not isinstance(content, list):
            continue
        for part in content:
            if isinstance(part, dict) and part.get("type") == "image_url":
                url = (part.get("image_url") or {}).get("url", "")
                h = hashlib.sha256(url.encode()).hexdigest()
                data = None
                if url.startswith("data:") and "," in url:
                    try:
                        data = base64.b64decode(url.split(",", 1)[1], validate=True)
                    except ValueError:
                        data = b""
                return h, data
    return None, None
