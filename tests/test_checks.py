"""Output checks: refusals, empty, truncated, repetitive and word-salad descriptions are flagged."""

from __future__ import annotations

import pytest

from connote.describers.checks import check_description, check_response

GOOD = [
    "The image evokes a sense of quiet nostalgia, suggesting the slow passage of time in a small town. The "
    "faded colours and the empty street invite the viewer to reflect on memory and on what has been lost.",
    "This photograph conveys urgency and collective anger: raised fists and hand-painted signs speak of a "
    "community demanding change, while the grey sky adds a note of foreboding.",
    "A warm, intimate scene that connotes belonging and care; the soft light and the shared meal suggest "
    "family traditions passed down through generations.",
    "Die Szene vermittelt ein Gefühl von Einsamkeit und Stille, und das kalte Licht verstärkt die Melancholie "
    "der leeren Landschaft.",
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
        ("I cannot identify the people in this image, but it shows a crowd.", "refusal"),
        ("As an AI, I do not have feelings about images.", "refusal"),
        ("Unfortunately, I am unable to view the image you provided.", "refusal"),
        ("A red square.", "too short"),
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
    ],
)
def test_bad_descriptions_are_flagged(text, reason):
    got = check_description(text)
    assert got is not None and got.startswith(reason), got


def test_response_metadata():
    assert check_response("length").startswith("truncated")
    assert check_response("content_filter") == "content filter"
    assert check_response("stop") is None and check_response(None) is None


def test_fake_server_texts_pass():
    import hashlib

    from connote.testing.fake_openai import REFUSAL, image_text

    for i in range(50):
        assert check_description(image_text(hashlib.sha256(str(i).encode()).hexdigest())) is None
    assert check_description(REFUSAL) == "refusal"
