"""The offline describer (RapidOCR + EfficientNet-Lite0 + colours): what it reads with its default settings,
its settings recorded in the description set, several images at once giving the same texts as one at a
time, and bad input inside a batch.

Speed is measured in benchmarks/offline_describe.py, not here."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import GROUPS, make_group_images, run_cli

from connote import registry, steps
from connote.describers.base import DescribeError, ImageItem
from connote.describers.offline import LEGACY_MODEL, OfflineDescriber
from connote.errors import UserError
from connote.images import sha256_file
from connote.models import efficientnet, ocr, openvino_runtime

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "images"


def _items(paths: list[Path]) -> list[ImageItem]:
    """Items as a study makes them: keyed by the content hash, which the describer checks."""
    return [ImageItem(sha256_file(p), p, p.name) for p in paths]


@pytest.fixture(scope="module")
def describer() -> OfflineDescriber:
    d = OfflineDescriber()
    d.prepare()
    return d


def test_detection_sizes():
    assert ocr.rapidocr_det_size(288, 512) == (736, 1312)  # a video frame: shorter side up to 736
    assert ocr.rapidocr_det_size(1080, 1080) == (1088, 1088)  # large enough: as it is, to 32s
    assert ocr.scout_size(288, 512, 320) == (288, 512)  # the scout: the frame's own size
    assert ocr.scout_size(720, 1280, 320) == (320, 576)  # large: shorter side 320
    assert ocr.scout_size(10, 1000, 320) == (32, 1000 // 32 * 32)  # never below one 32-pixel cell


def test_regions_grow_clip_and_merge():
    import numpy as np

    marked = np.zeros((10, 20), dtype=bool)
    assert ocr.regions(marked, 2) == []
    marked[0, 0] = True  # a corner: grown, clipped at the edges
    marked[5, 10:12] = True  # a short line
    marked[5, 15] = True  # near it: the grown rectangles overlap and merge
    assert ocr.regions(marked, 2) == [(0, 0, 3, 3), (3, 8, 8, 18)]
    assert ocr.regions(marked, 0) == [(0, 0, 1, 1), (5, 10, 6, 12), (5, 15, 6, 16)]


def test_reads_the_words_on_the_test_images(tmp_path, describer):
    names = make_group_images(tmp_path, per_group=1)
    paths = [tmp_path / files[0] for files in names.values()]
    out = describer.describe(_items(paths))
    for (word, _colour), res in zip(GROUPS.values(), out, strict=True):
        assert not isinstance(res, DescribeError), res
        assert f'Written: "{word}"' in res.text and "Seen: " in res.text
        assert res.model == describer.model


@pytest.mark.parametrize(
    ("image", "words"),
    [
        ("GGCC-002.jpg", ["Greenland", "glaciers", "climate", "Danish Broadcasting Corporation"]),
        ("HSPW-002.jpg", ["CLIMATE", "ACTION", "Solar", "Panels"]),
        ("WCCA-020.jpg", ["CLIMATE", "CHANGE"]),
    ],
)
def test_reads_the_words_on_the_bundled_examples(describer, image, words):
    """Frames whose on-screen text the earlier settings read; the default settings read it too."""
    (res,) = describer.describe(_items([EXAMPLES / image]))
    assert not isinstance(res, DescribeError), res
    written = res.text.split('Written: "', 1)[1].split('". Seen: ', 1)[0].lower()
    for word in words:
        assert word.lower() in written, (word, res.text)


def test_several_workers_write_the_same_texts_as_one(tmp_path):
    images = tmp_path / "images"
    make_group_images(images, per_group=2)
    shutil.copy(EXAMPLES / "WCCA-020.jpg", images)
    study = steps.init(tmp_path / "study", images, progress=False)
    one = steps.describe(study, OfflineDescriber(concurrency=1, batch_size=3), name="one", progress=False)
    two = steps.describe(study, OfflineDescriber(concurrency=2, batch_size=1), name="two", progress=False)
    assert one.described == two.described == 7
    sets = {r["name"]: r["id"] for r in study.description_sets()}
    assert study.descriptions(sets["one"]) == study.descriptions(sets["two"])
    study.close()


def test_settings_are_recorded_and_sets_never_mix(tmp_path):
    images = tmp_path / "images"
    make_group_images(images, per_group=1)
    study = steps.init(tmp_path / "study", images, progress=False)
    # A study described before the settings were recorded: its 'offline' set has the old model string.
    study.description_set("offline", "offline", LEGACY_MODEL, None, {"top_labels": 5})
    with pytest.raises(UserError, match="offline.*choose another --name"):
        steps.describe(study, "offline", progress=False)
    assert study.descriptions(study.resolve_description_set("offline")["id"]) == {}  # nothing mixed in

    fast = steps.describe(study, "offline", name="offline-new", progress=False)
    assert fast.described == 3
    row = study.resolve_description_set("offline-new")
    params = json.loads(row["params"])
    assert (
        params["settings"] == "fast"
        and params["ocr_rec_per_line"] is True
        and params["ocr_scout_side"] == 0
        and params["runtime"] is None
    )
    assert row["model"] == OfflineDescriber().model != LEGACY_MODEL
    call = study.con.execute("SELECT model, params FROM calls ORDER BY id DESC LIMIT 1").fetchone()
    assert call["model"] == row["model"] and json.loads(call["params"])["ocr_rec_width_step"] == 64

    # Other OCR settings are other settings: not written into the same set.
    with pytest.raises(UserError, match="choose another --name"):
        steps.describe(study, "offline", name="offline-new", ocr_scout_side=480, progress=False)
    # The same settings again: the same set, nothing described twice.
    again = steps.describe(study, "offline", name="offline-new", progress=False)
    assert (again.described, again.already) == (0, 3)
    study.close()


def test_legacy_settings_continue_an_old_set(tmp_path):
    images = tmp_path / "images"
    make_group_images(images, per_group=1)
    for extra in list(images.iterdir())[1:]:
        extra.unlink()
    study = steps.init(tmp_path / "study", images, progress=False)
    study.description_set("offline", "offline", LEGACY_MODEL, None, {"top_labels": 5})
    summary = steps.describe(study, "offline:legacy", progress=False)
    assert summary.set_name == "offline" and summary.described == 1
    (text,) = study.descriptions(summary.set_id).values()
    assert 'Written: "' in text
    study.close()


def test_unknown_settings_are_a_clear_error():
    with pytest.raises(UserError, match="takes no argument after ':' but 'legacy'"):
        registry.describer("offline:turbo")
    with pytest.raises(UserError, match="ocr_"):
        registry.describer("offline:legacy", ocr_scout_side=640)
    with pytest.raises(UserError, match="ocr_scout_sid"):  # a misspelt option: refused by name
        registry.describer("offline", ocr_scout_sid=640)
    with pytest.raises(UserError, match="runtime is one of openvino, bundled"):
        registry.describer("offline", runtime="tensorrt")
    with pytest.raises(UserError, match="needs the quick detection pass"):
        registry.describer("offline", ocr_regions_only=True)
    with pytest.raises(UserError, match="legacy: bundled only"):
        registry.describer("offline:legacy", runtime="openvino")
    with pytest.raises(UserError, match="unknown OCR precision 'f16'"):
        registry.describer("offline", ocr_rec_precision="f16")
    with pytest.raises(UserError, match="bf16 needs the openvino runtime"):
        registry.describer("offline", runtime="bundled", ocr_rec_precision="bf16")
    with pytest.raises(UserError, match="unknown OCR precision 'fp32'"):
        registry.describer("offline", ocr_det_precision="fp32")
    with pytest.raises(UserError, match="bf16 needs the openvino runtime"):
        registry.describer("offline", runtime="bundled", ocr_det_precision="bf16")


def test_each_setting_has_its_own_model_name():
    names = {
        OfflineDescriber().model,
        OfflineDescriber(runtime="bundled").model,
        OfflineDescriber(ocr_rec_width_step=0).model,
        OfflineDescriber(ocr_scout_side=480).model,
        OfflineDescriber("legacy").model,
        OfflineDescriber(ocr_rec_precision="bf16").model,
        OfflineDescriber(ocr_det_precision="bf16").model,
        OfflineDescriber(ocr_rec_precision="bf16", ocr_det_precision="bf16").model,
    }
    assert len(names) == 8
    # Options added later leave the default's name as it was: its description sets go on.
    assert (
        OfflineDescriber(ocr_rec_precision="f32", ocr_det_precision="f32").model == f"{LEGACY_MODEL}@662d626a"
    )
    assert (
        OfflineDescriber(ocr_rec_precision="BF16").model == OfflineDescriber(ocr_rec_precision="bf16").model
    )
    assert OfflineDescriber(ocr_rec_precision="bf16", ocr_det_precision="f32").model == (
        OfflineDescriber(ocr_rec_precision="bf16").model
    )
    # The default settings of the previous release (onnxruntime and PyTorch, a scout pass, each line at
    # its own width) keep the name their description sets were stored under, so those sets go on.
    old = OfflineDescriber(runtime="bundled", ocr_scout_side=480, ocr_rec_width_step=0)
    assert old.model == f"{LEGACY_MODEL}@aebd8f10"


def test_openvino_and_the_bundled_runtimes_write_the_same_texts(tmp_path):
    """OpenVINO computes in float32 as onnxruntime and PyTorch do: the same words and tags."""
    make_group_images(tmp_path, per_group=1)
    paths = sorted(tmp_path.glob("*.png")) + [EXAMPLES / "GGCC-002.jpg", EXAMPLES / "HSPW-002.jpg"]
    fast, bundled = OfflineDescriber(), OfflineDescriber(runtime="bundled")
    for d in (fast, bundled):
        d.prepare()
    a = [r.text for r in fast.describe(_items(paths))]
    b = [r.text for r in bundled.describe(_items(paths))]
    assert a == b and all('Written: "' in t for t in a)


@pytest.mark.skipif(
    not (openvino_runtime.available() and openvino_runtime.has_bf16()), reason="no bfloat16 on this CPU"
)
@pytest.mark.parametrize(
    "options", [{"ocr_rec_precision": "bf16"}, {"ocr_rec_precision": "bf16", "ocr_det_precision": "bf16"}]
)
def test_bfloat16_reads_nearly_the_same_texts(tmp_path, describer, options):
    """ocr_rec_precision=bf16, ocr_det_precision=bf16 (opt-in): the same tags and colours, the text
    within a few letters, and the models really run in bfloat16."""
    from difflib import SequenceMatcher

    make_group_images(tmp_path, per_group=1)
    paths = sorted(tmp_path.glob("*.png")) + [EXAMPLES / "GGCC-002.jpg", EXAMPLES / "HSPW-002.jpg"]
    bf16 = OfflineDescriber(**options)
    bf16.prepare()
    assert bf16.ocr_settings.rec_precision == "bf16" and bf16.model != describer.model
    eng = ocr.engine(1, "openvino", "bf16", options.get("ocr_det_precision", "f32"))
    assert eng.text_det.infer.precision == options.get("ocr_det_precision", "f32")
    assert eng.text_rec.session.precision == "bf16"
    for a, b in zip(describer.describe(_items(paths)), bf16.describe(_items(paths)), strict=True):
        written_a, _, rest_a = a.text.rpartition('". ')
        written_b, _, rest_b = b.text.rpartition('". ')
        assert rest_a == rest_b  # what is seen and the colours: the CNN is not touched
        assert SequenceMatcher(None, written_a, written_b).ratio() >= 0.95


def test_bfloat16_is_refused_where_the_cpu_lacks_it(monkeypatch):
    """OpenVINO would quietly compute in float32 there, while the settings say bfloat16."""
    monkeypatch.setattr(openvino_runtime, "has_bf16", lambda: False)
    with pytest.raises(UserError, match="cannot compute in bfloat16"):
        OfflineDescriber(ocr_rec_precision="bf16").prepare()
    with pytest.raises(UserError, match="ocr_det_precision=bf16: this CPU cannot compute in bfloat16"):
        OfflineDescriber(ocr_det_precision="bf16").prepare()


def test_the_cnn_on_openvino_gives_torchs_numbers():
    import numpy as np
    from PIL import Image

    images = [Image.open(EXAMPLES / name).convert("RGB") for name in ("GGCC-002.jpg", "WCCA-020.jpg")]
    pooled_t, logits_t = efficientnet.features_and_logits(images)
    pooled_o, logits_o = efficientnet.features_and_logits(images, runtime="openvino", threads=1)
    assert logits_o.shape == (2, 1000) and pooled_o.shape == (2, 1280)
    np.testing.assert_allclose(logits_o, logits_t, atol=1e-3)
    np.testing.assert_allclose(pooled_o, pooled_t, atol=1e-3)


def test_rec_width_pads_to_few_shapes():
    assert ocr.rec_width(48, 100, 64) == 320  # short lines: RapidOCR's minimum width
    assert ocr.rec_width(48, 700, 64) == 704  # wider: rounded up to a multiple of 64
    assert ocr.rec_width(24, 350, 64) == 704  # at the model's height of 48 px
    assert ocr.rec_width(48, 700, 0) == 700  # no rounding


def test_a_bad_image_fails_alone(tmp_path, describer):
    make_group_images(tmp_path, per_group=1)
    good = sorted(tmp_path.glob("*.png"))
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good[0].read_bytes()[:200])
    out = describer.describe(_items([good[0], bad, good[1]]))
    assert isinstance(out[1], DescribeError) and out[1].permanent
    assert not isinstance(out[0], DescribeError) and not isinstance(out[2], DescribeError)


def test_torch_threads_are_put_back():
    import torch

    before = torch.get_num_threads()
    with efficientnet.torch_threads(1):
        with efficientnet.torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1  # still one worker inside
    assert torch.get_num_threads() == before


def test_progress_bar_counts_stored_images(tmp_path):
    """With several images read at once the bar still ends at the number of images stored."""
    images = tmp_path / "images"
    make_group_images(images, per_group=2)
    run_cli("init", tmp_path / "s", "--images", images, check=True)
    proc = run_cli("describe", tmp_path / "s", "--concurrency", "2", "--batch-size", "1", check=True)
    final = proc.stderr.replace("\r", "\n").strip().splitlines()
    bar = [line for line in final if "Describing (offline)" in line][-1]
    assert "6/6" in bar and ("img/s" in bar or "s/img" in bar)  # the rate, however slow


def test_describer_options_from_the_command_line(tmp_path):
    images = tmp_path / "images"
    make_group_images(images, per_group=1)
    run_cli("init", tmp_path / "s", "--images", images, check=True)
    proc = run_cli(
        "describe",
        tmp_path / "s",
        "--describer-option",
        "runtime=bundled",
        "--name",
        "b",
        "--json",
        "-q",
        check=True,
    )
    assert json.loads(proc.stdout)["described"] == 3
    from connote.study import Study

    with Study.open(tmp_path / "s") as study:
        row = study.resolve_description_set("b")
        assert row["model"] == OfflineDescriber(runtime="bundled").model
        assert json.loads(row["params"])["runtime"] == "bundled"
    bad = run_cli("describe", tmp_path / "s", "--describer-option", "runtime")
    assert bad.returncode != 0 and "takes KEY=VALUE" in bad.stderr
    typo = run_cli("describe", tmp_path / "s", "--describer-option", "runtim=bundled")
    assert typo.returncode != 0 and "runtim" in typo.stderr
    own = run_cli("describe", tmp_path / "s", "--describer-option", "name=x")
    assert own.returncode != 0 and "an option of the command itself" in own.stderr
    assert "Traceback" not in own.stderr
    both = run_cli("describe", tmp_path / "s", "--concurrency", "1", "--describer-option", "concurrency=2")
    assert both.returncode != 0 and "given both as a flag" in both.stderr
