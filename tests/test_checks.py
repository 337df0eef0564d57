"""Output checks: refusals and broken generations are flagged; terse, quoted or spoken texts are not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from connote.describers.checks import check_description, check_name, check_output, check_response

GOOD = [
    "The image evokes a sense of quiet nostalgia, suggesting the slow passage of time in a small town. The "
    "faded colours and the empty street invite the viewer to reflect on memory and on what has been lost.",
    "This photograph conveys urgency and collective anger: raised fists and hand-painted signs speak of a "
    "community demanding change, while the grey sky adds a note of foreboding.",
    "A warm, intimate scene that connotes belonging and care; the soft light and the shared meal suggest "
    "family traditions passed down through generations.",
    "Die Szene vermittelt ein Gefühl von Einsamkeit und Stille, und das kalte Licht verstärkt die Melancholie "
    "der leeren Landschaft.",
    # Issue 13: a vision LLM quoting a meme's words before explaining it.
    "The meme reads: HUMANS: DESTROY CLIMATE / Climate: destroy humans. Humans destroy environment, face "
    "consequences",
    # Terse answers, keyword lists, headlines, spoken transcripts: all usable.
    "A red square.",
    "Anger.",
    "Protest, urgency, youth, hope.",
    "Keywords: melting ice, polar bear, isolation, loss, warming, fragility, extinction, helplessness, grief",
    "CLIMATE STRIKE NOW! FRIDAYS FOR FUTURE. SCHOOL STRIKE FOR CLIMATE. NO PLANET B.",
    "Call governor cuomo tell him to stop fracking infrastructure",
    "If you care about climate change you have to care about health. And if you care about health you have "
    "to care about climate change.",
    "we know that this happens we know how this happens we know why this happens and we know what the "
    "effects are",
    "And when those requirements actually change then the productivity of that particular crop or its the "
    "quality of the of the fruit or the the tubers or other things can be detrimentally impacted.",
    "we cannot continue looking at the consequences we have to attack the causes",
    "Sorry, I was late: the rain kept us in. The picture shows the flooded street we waded through.",
    "The meme reads: 'I'm sorry, I can't help it.' It mocks our excuses for climate inaction.",
    # A one-line caveat, then a real description: kept.
    "I can't identify the people in this photo, but the image conveys defiance and solidarity: raised fists, "
    "hand-painted banners and a sea of umbrellas suggest a movement that refuses to be silenced. The grey "
    "sky adds a sense of foreboding, while the bright colours of the signs speak of hope and of a generation "
    "that believes change is still possible.",
    # Descriptions in other languages (a prompt in that language), with or without punctuation.
    "Изображение передает чувство тревоги и надежды на будущее планеты которое зависит от наших действий "
    "сегодня и завтра",
    "Gambar ini menyampaikan rasa kesepian dan melankolis dengan cahaya dingin yang menekankan kekosongan "
    "lanskap yang luas",
    "Bu görüntü yalnızlık ve melankoli duygusu veriyor soğuk ışık kış manzarasının boşluğunu vurguluyor ve "
    "umut azalıyor",
    "这张图片传达了一种孤独和忧郁的感觉，冷光突出了冬季景观的空旷。",
    "A imagem transmite a escuridão e a esperança, a angústia e a ira de uma geração com a luz fria que "
    "acentua o vazio da paisagem de inverno",
    "An hour before dawn, a one-way street and an honest face: a European city waits, and an MP speaks.",
    "Leider zeigt das Bild, was wir nicht sehen wollen: die Folgen unseres Handelns, die man nicht mehr "
    "übersehen kann.",
    "Ein Bild, das eine Stimmung von Hoffnung und Aufbruch vermittelt. Cette image a une atmosphère calme et "
    "à la fois mélancolique, avec la lumière du soir.",
]


@pytest.mark.parametrize("text", GOOD)
def test_good_descriptions_pass(text):
    assert check_description(text) is None


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty"),
        ("   \n ", "empty"),
        (None, "empty"),
        ("I'm sorry, but I can't help with that request.", "refusal"),
        ("I am sorry, I cannot describe images of real people.", "refusal"),
        ("Sorry, I can't assist with this.", "refusal"),
        ("I’m sorry, but I'm not able to view images as it may contain sensitive content.", "refusal"),
        ("Sorry. I can't help with that. Is there anything else I can help you with?", "refusal"),
        ("I must decline to describe this image.", "refusal"),
        ("I don't feel comfortable describing this image.", "refusal"),
        ("As an AI language model, I do not have the ability to view images.", "refusal"),
        ("Lo siento, pero no puedo describir esta imagen.", "refusal"),
        ("Je suis désolé, mais je ne peux pas analyser cette image.", "refusal"),
        ("Es tut mir leid, aber ich kann dieses Bild nicht beschreiben.", "refusal"),
        ("Mi dispiace, ma non posso descrivere questa immagine.", "refusal"),
        ("Desculpe, mas não posso descrever esta imagem.", "refusal"),
        ("</s>", "empty"),
        ("...", "empty"),
        ("🔥🌍😢", "empty (no letter or digit)"),
        ("I cannot identify the people in this image, but it shows a crowd.", "refusal"),
        ("As an AI, I do not have feelings about images.", "refusal"),
        ("Unfortunately, I am unable to view the image you provided.", "refusal"),
        ("the image the image the image the image the image the image the image the image", "repetitive"),
        (
            "sunset sunset sunset sunset beautiful sunset sunset sunset sunset calm sunset sunset sunset",
            "repetitive",
        ),
        (
            "go dewey espionage dramatic maternal ryder milos batteries simply 1874 ve antilles hutton drenched "
            "sign ticket advancement tad meets impending",
            "word salad",
        ),
        ("## ## [unused5] ] ] ) ( ## @@ ## %% the of ## && ** ^^ ## !! a of in ## ## ##", "word salad"),
        ("⁸ francoise partial chemicalnai [unused114] georgina reservoirs", "word salad"),
        ("7lبه कλvض下那事δ过,फσк7м想τ बनलA得 t十 جहφR 只方于一ख", "word salad"),
        (
            "Plants unsw migration, intense agency serious blockchain transitioning decade hazards, event "
            "suffocation truth barrier subscribing enhanced, oxygen build sun",
            "word salad",
        ),
        ("The of and a the in to of is the and a of the to it in the of and", "word salad"),
        (
            "The image shows hope. It feels like it feels like it feels like it feels like it feels like it "
            "feels like",
            "repetitive",
        ),
        (
            "A quiet street. The light is red. The light is blue. The light is green. The light is grey. The "
            "light is gold. The light is pale.",
            "repetitive",
        ),
        (
            "The image evokes the fragility of the arctic and the loss of habitat. The image evokes the "
            "fragility of the arctic and the loss of habitat.",
            "repetitive",
        ),
    ],
)
def test_bad_descriptions_are_flagged(text, reason):
    got = check_description(text)
    assert got is not None and got.startswith(reason), got


def test_response_metadata():
    assert check_output("A fine start of a sentence that", "length").startswith("truncated")
    assert check_output("I'm sorry, but I can't help with that.", "stop") == "refusal"
    assert check_output(GOOD[0], "stop") is None and check_output(GOOD[0]) is None
    assert check_response("length").startswith("truncated")
    assert check_response("content_filter") == "content filter"
    assert check_response("stop") is None and check_response(None) is None


def test_fake_server_texts_pass():
    import hashlib

    from connote.testing.fake_openai import REFUSAL, image_text

    for i in range(50):
        assert check_description(image_text(hashlib.sha256(str(i).encode()).hexdigest())) is None
    assert check_description(REFUSAL) == "refusal"


def test_reasons_name_their_check():
    assert check_name(check_description("the image the image the image the image the image the image")) == (
        "repetitive"
    )
    assert check_name("word salad (mostly symbols)") == "word salad" and check_name(None) is None


def test_huge_texts_are_judged_quickly_and_bounded():
    text = (GOOD[0] + " ") * 2000  # ~80,000 words: judged on the first MAX_WORDS words
    assert check_description(text).startswith("repetitive")
    assert check_description("x" * 1_000_000) is None  # one long "word": not a loop, not symbols
    soup = " ".join(f"w{i}" for i in range(1_000_000))  # judged on its first MAX_CHARS characters
    assert check_description(soup).startswith("word salad")


SHARED = Path(os.environ.get("CONNOTE_SHARED") or Path(__file__).resolve().parents[2] / "shared")


@pytest.mark.skipif(not (SHARED / "datasets").is_dir(), reason="../shared/datasets is not here")
def test_benchmark_meets_the_targets(tmp_path):
    """The measured rates (benchmarks/output_checks.py, its default seed): < 0.5% of human texts flagged,
    > 95% of the degenerate outputs caught, and every refusal, loop, empty and truncated output caught."""
    bench = Path(__file__).resolve().parents[1] / "benchmarks" / "output_checks.py"
    out = subprocess.run(
        [sys.executable, str(bench), "--shared", str(SHARED), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stderr
    r = json.loads((tmp_path / "output_checks.json").read_text())
    assert r["human_texts"] > 1000 and r["false_flag_rate"] < 0.005
    assert r["caught_rate"] > 0.95 and r["targets_met"]
    for kind in ("loop", "refusal", "empty", "truncated"):
        assert r["degenerate"][kind]["caught"] == r["degenerate"][kind]["n"], kind
    assert r["good_texts"]["vision-LLM style examples"]["flagged"] == 0  # the meme of issue 13 among them
    assert (tmp_path / "output_checks.md").read_text().startswith("# Output checks")
