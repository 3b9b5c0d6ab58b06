"""The string reader: generated strings, fusion rules, the shipped CRNN, and a tiny deterministic training run."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import torch

from formocr.constraints import Constraint
from formocr.data import mnist
from formocr.data.real import REGISTER_SHA256
from formocr.errors import ModelError
from formocr.fusion import FusionRules, Reading, fuse
from formocr.normalize import DEFAULT_LINE_SPEC, normalize_line
from formocr.objects import Box, CharResult, Page
from formocr.options import Options
from formocr.pipeline import Pipeline
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.recognize.modelfile import card_path, sha256_file
from formocr.recognize.strings import ALPHABET, DEFAULT_MODEL, StringReader, field_strip
from formocr.synth.strings import PAPER_EFFECTS, DigitBank, StringGenerator, field_ink_of, random_text

if TYPE_CHECKING:
    from formocr.train.strings import StringTrainConfig

GEN = StringGenerator(None)  # the stroke renderer only: no dataset needed


# --- generator -------------------------------------------------------------------------------------------------


def test_generated_boxes_follow_the_text() -> None:
    for i in range(40):
        s = GEN.sample(np.random.default_rng([0, i]))
        chars = [c for c in s.text if c != " "]
        assert [c for c, _ in s.char_boxes] == chars
        xs = [b.x + b.w / 2 for c, b in s.char_boxes if c.isdigit()]
        assert xs == sorted(xs)
        h, w = s.image.shape
        assert all(b.x >= 0 and b.x2 <= w and b.y >= 0 and b.y2 <= h for _, b in s.char_boxes)
        assert s.region.box.clip(w, h) == s.region.box


def test_sources_name_the_bank_image_of_each_digit() -> None:
    # a bank of ten synthetic "images", one per label, each a different shape: every digit of a string names the
    # image of its own label, separators name none, and the stroke renderer's digits name none either
    images = np.zeros((20, 28, 28), np.uint8)
    labels = np.arange(20) % 10
    for k in range(20):
        images[k, 4 + k % 5 : 20, 6 : 10 + k // 2] = 255
    mixed = StringGenerator(DigitBank(images, labels), synth_share=0.5)
    seen_bank = seen_drawn = 0
    for i in range(30):
        s = mixed.sample(np.random.default_rng([5, i]))
        assert len(s.sources) == len(s.char_boxes)
        for (ch, _), k in zip(s.char_boxes, s.sources):
            if k >= 0:
                assert ch.isdigit() and labels[k] == int(ch)
                seen_bank += 1
            else:
                seen_drawn += ch.isdigit()
    assert seen_bank > 20 and seen_drawn > 20
    assert all(k == -1 for k in GEN.sample(np.random.default_rng(0)).sources)


def test_effects_left_out_keep_the_same_string() -> None:
    # every draw is still made, so the digits, their places and the field are those of the full strip
    for effect in PAPER_EFFECTS:
        plain = StringGenerator(None, without=frozenset({effect}))
        for i in range(6):
            a = GEN.sample(np.random.default_rng([9, i]))
            b = plain.sample(np.random.default_rng([9, i]))
            assert (a.text, a.sources, a.touching) == (b.text, b.sources, b.touching)
            if effect != "slant":  # upright ink has other boxes; everything else stays in place
                assert (a.char_boxes, a.region) == (b.char_boxes, b.region)
            assert a.image.shape == b.image.shape
    with pytest.raises(ValueError, match="unknown effects"):
        StringGenerator(None, without=frozenset({"smudge"}))


def _components(sample_image: np.ndarray) -> list[tuple[int, int]]:
    n, _, stats, _ = cv2.connectedComponentsWithStats((sample_image < 128).astype(np.uint8), connectivity=8)
    return [(int(stats[k, 0]), int(stats[k, 0] + stats[k, 2])) for k in range(1, n) if stats[k, 4] >= 6]


def _spans_two(spans: list[tuple[int, int]], boxes: list[Box]) -> bool:
    centres = [b.x + b.w / 2 for b in boxes]
    return any(sum(x0 <= c <= x1 for c in centres) >= 2 for x0, x1 in spans)


def test_touching_means_strokes_meet() -> None:
    """'touching' is measured on the ink: a connected stroke runs across two digits' centres, or never does."""
    touching_ok = apart_ok = 0
    for i in range(30):
        rng = np.random.default_rng([1, i])
        text = "".join(str(d) for d in rng.integers(0, 10, 6))
        t = GEN.sample(rng, text=text, touching=True, clean=True)
        a = GEN.sample(rng, text=text, touching=False, clean=True)
        assert t.touching and not a.touching
        touching_ok += _spans_two(_components(t.image), [b for _, b in t.char_boxes])
        apart_ok += not _spans_two(_components(a.image), [b for _, b in a.char_boxes])
    assert touching_ok >= 27 and apart_ok >= 27


def test_labels_match_what_is_drawn() -> None:
    """On clean paper with digits apart, the segmenting reader (a different model) reads the generated label."""
    pipe = Pipeline(Options(reader="segmentation"))
    pre = PreprocessOptions(deskew=False, speckle_mm=0.0)
    right = 0
    for i in range(40):
        rng = np.random.default_rng([2, i])
        s = GEN.sample(rng, text="".join(str(d) for d in rng.integers(0, 10, 5)), touching=False, clean=True)
        clean = preprocess(Page(0, s.image, s.dpi, "<strip>"), pre)
        right += pipe.reader.read(clean, [s.region])[0].result.raw == s.text
    assert right >= 36


def test_texts_have_the_requested_lengths_and_formats() -> None:
    rng = np.random.default_rng(3)
    for _ in range(300):
        t = random_text(rng, 3, 8, separators=False)
        assert t.isdigit() and 3 <= len(t) <= 8
    with_seps = [random_text(rng, 1, 12) for _ in range(300)]
    assert all(set(t) <= set(ALPHABET) for t in with_seps)
    assert any("/" in t for t in with_seps) and any("," in t for t in with_seps) and any(" " in t for t in with_seps)


def test_strip_normalization() -> None:
    ink = np.zeros((60, 200), bool)
    ink[10:50, 20:30] = True
    ink[10:50, 100:140] = True
    strip, geom = field_strip(ink, 60, 300)
    assert strip.shape[0] == DEFAULT_LINE_SPEC.height
    rows = np.nonzero(strip.max(axis=1) > 0.5)[0]
    assert rows.max() - rows.min() + 1 == DEFAULT_LINE_SPEC.content
    assert geom.crop_x(DEFAULT_LINE_SPEC.pad) == pytest.approx(20, abs=0.5)
    assert normalize_line(np.zeros((10, 10), bool)).shape == (DEFAULT_LINE_SPEC.height, 2 * DEFAULT_LINE_SPEC.pad + 1)


# --- fusion ------------------------------------------------------------------------------------------------


def _reading(reader: str, raw: str, conf: float, valid: bool = True) -> Reading:
    p = conf ** (1 / max(1, len(raw)))
    chars = tuple(CharResult(c, p, ((c, 1.0),), Box(i, 0, 1, 1)) for i, c in enumerate(raw))
    return Reading(reader, raw, conf, chars, valid)


def test_agreement_confidence_weighs_both_readers() -> None:
    f = fuse(_reading("segmentation", "518057", 0.9), _reading("crnn", "518057", 0.8), lambda t: 0.9,
             lambda t: 0.8)
    assert f.agree and f.chosen == "both" and f.reading.raw == "518057"
    assert f.confidence == pytest.approx(1 - (0.1 * 0.2) ** FusionRules().agree_power)
    # doubts taken as independent (power 1) multiply; the shipped power 0.5 takes their geometric mean, so the
    # agreement stands between the two readers' confidences: above the weaker, below the stronger
    alone = fuse(_reading("segmentation", "518057", 0.9), _reading("crnn", "518057", 0.8), lambda t: 0.9,
                 lambda t: 0.8, FusionRules(agree_power=1.0))
    assert alone.confidence == pytest.approx(1 - 0.1 * 0.2) and 0.8 < f.confidence < 0.9


def test_agreement_with_an_unsure_reader_does_not_corroborate() -> None:
    # both dropped the same touching digit: segmentation sure of its merged blob, the CRNN hesitant
    f = fuse(_reading("segmentation", "0016", 0.95), _reading("crnn", "0016", 0.43), lambda t: 0.95, lambda t: 0.43)
    assert f.agree and f.confidence == pytest.approx(0.43)


def test_touching_digits_go_to_the_string_reader() -> None:
    # segmentation found four components where five digits touch; the CRNN barely believes the short text
    seg, crnn = _reading("segmentation", "1234", 0.97), _reading("crnn", "12345", 0.96)
    f = fuse(seg, crnn, lambda t: None if len(t) != 4 else 0.97, lambda t: 0.96 if t == "12345" else 0.001)
    assert not f.agree and f.chosen == "crnn" and f.reading.raw == "12345"
    assert f.confidence < 0.96  # a disagreement never reads surer than the winner alone


def test_segmentation_silent_on_the_winner_leaves_the_crnn_belief_standing() -> None:
    # "58213": segmentation merged the touching 21 (four components); it has no opinion of a five-digit text,
    # so the CRNN's own near-certainty, times its share of the scores, decides whether the field needs review
    seg, crnn = _reading("segmentation", "5813", 0.97), _reading("crnn", "58213", 0.995)
    p_crnn = {"5813": 1e-4, "58213": 0.995}
    f = fuse(seg, crnn, lambda t: 0.97 if t == "5813" else None, lambda t: p_crnn[t])
    w = {"segmentation": 0.97 * FusionRules().fewer_digits * 1e-4, "crnn": FusionRules().no_opinion * 0.995}
    assert f.chosen == "crnn" and f.scores == pytest.approx(w)
    assert f.confidence == pytest.approx(w["crnn"] / sum(w.values()) * 0.995) and f.confidence > 0.99
    # without the rule the floor, meant for a cut that may be wrong, would stand as segmentation's belief
    strict = fuse(seg, crnn, lambda t: 0.97 if t == "5813" else None, lambda t: p_crnn[t],
                  FusionRules(abstain=False))
    assert strict.reading.raw == "58213" and strict.confidence <= FusionRules().no_opinion
    # a same-length disagreement is not silence: segmentation's low opinion of the CRNN's text still counts
    same = fuse(_reading("segmentation", "58113", 0.9), crnn, lambda t: {"58113": 0.9, "58213": 0.05}.get(t),
                lambda t: {"58113": 0.001, "58213": 0.995}[t])
    assert same.chosen == "crnn" and same.confidence <= FusionRules().no_opinion
    # in comb cells the walls fix the count: a text of another length is not accepted on the CRNN's word
    boxed = fuse(seg, crnn, lambda t: 0.97 if t == "5813" else None, lambda t: p_crnn[t], cells=True)
    assert boxed.confidence < 0.5


def test_disagreement_on_one_digit_uses_both_opinions() -> None:
    # same length: each reader scores the other's text; the product decides
    seg, crnn = _reading("segmentation", "4417", 0.6), _reading("crnn", "4411", 0.7)
    f = fuse(seg, crnn, lambda t: {"4417": 0.6, "4411": 0.12}[t], lambda t: {"4417": 0.25, "4411": 0.7}[t])
    assert f.chosen == "segmentation"  # 0.6 * 0.25 = 0.15 beats 0.12 * 0.7 = 0.084
    assert f.confidence == pytest.approx(0.15 / (0.15 + 0.084) * 0.25)


def test_an_invalid_reading_loses() -> None:
    seg, crnn = _reading("segmentation", "51805", 0.99, valid=False), _reading("crnn", "518057", 0.5)
    f = fuse(seg, crnn, lambda t: None if len(t) != 5 else 0.99, lambda t: 0.5 if t == "518057" else 0.3)
    assert f.chosen == "crnn"


def test_a_confident_misread_blob_does_not_outvote_a_sure_crnn() -> None:
    # same length, but segmentation's per-digit probabilities put almost nothing on the CRNN's text: its opinion
    # is floored (the cut may be wrong), so the CRNN's near-certainty wins, with a confidence that asks review
    seg, crnn = _reading("segmentation", "142", 0.77), _reading("crnn", "190", 0.98)
    f = fuse(seg, crnn, lambda t: {"142": 0.77, "190": 1e-7}[t], lambda t: {"142": 0.01, "190": 0.98}[t])
    assert f.chosen == "crnn" and f.reading.raw == "190"
    assert f.confidence <= FusionRules().no_opinion


def test_the_crnn_reading_of_segmentations_length_can_win() -> None:
    # segmentation counted five digits but misread one; the CRNN dropped one; its best 5-digit reading agrees
    # with four of segmentation's digits and beats both
    seg, crnn = _reading("segmentation", "41827", 0.5), _reading("crnn", "4127", 0.6)
    alt = _reading("crnn", "41027", 0.3)
    p_seg = {"41827": 0.5, "41027": 0.45}
    p_crnn = {"41827": 0.001, "4127": 0.6, "41027": 0.3}
    f = fuse(seg, crnn, lambda t: p_seg.get(t), lambda t: p_crnn[t], alternatives=[alt])
    assert f.chosen == "joint" and f.reading.raw == "41027"
    w = {"segmentation": 0.5 * 0.001, "crnn": FusionRules().no_opinion * 0.6, "joint": 0.45 * 0.3}
    assert f.confidence == pytest.approx(w["joint"] / sum(w.values()) * 0.3)


def test_segmentation_with_fewer_digits_than_the_crnn_is_doubted() -> None:
    # "3807": segmentation merged the touching 80 into one component and read it as 8, surely; the CRNN counts
    # four digits but is unsure, and finds segmentation's "387" a quarter as likely as its own text
    seg, crnn = _reading("segmentation", "387", 0.95), _reading("crnn", "3807", 0.4)
    p_crnn = {"387": 0.1, "3807": 0.4}
    plain = fuse(seg, crnn, lambda t: 0.95 if t == "387" else None, lambda t: p_crnn[t],
                 rules=FusionRules(fewer_digits=1.0))
    f = fuse(seg, crnn, lambda t: 0.95 if t == "387" else None, lambda t: p_crnn[t])
    assert plain.reading.raw == "387"  # 0.95 * 0.1 beats the floor 0.1 * 0.4
    assert f.reading.raw == "3807"  # 0.95 * 0.3 * 0.1 = 0.0285 loses to 0.1 * 0.4
    assert f.scores["segmentation"] == pytest.approx(0.95 * FusionRules().fewer_digits * 0.1)
    # in comb cells the walls made the cuts: no such doubt
    boxed = fuse(seg, crnn, lambda t: 0.95 if t == "387" else None, lambda t: p_crnn[t], cells=True)
    assert boxed.scores["segmentation"] == pytest.approx(0.95 * 0.1)


def test_in_comb_cells_segmentations_opinion_is_not_floored() -> None:
    # "109099" in six cells: segmentation is sure of its 0; the CRNN reads 9 and finds "109099" unlikely.
    # Off the cells the floor (the cut may be wrong) lets the CRNN win; in cells the cut cannot be wrong.
    seg, crnn = _reading("segmentation", "109099", 0.9), _reading("crnn", "109999", 0.6)
    p_seg = {"109099": 0.9, "109999": 0.002}
    p_crnn = {"109099": 0.05, "109999": 0.6}
    free = fuse(seg, crnn, lambda t: p_seg[t], lambda t: p_crnn[t])
    boxed = fuse(seg, crnn, lambda t: p_seg[t], lambda t: p_crnn[t], cells=True)
    assert free.reading.raw == "109999" and boxed.reading.raw == "109099"
    assert boxed.confidence < 0.95  # still a disagreement: reviewed either way


def test_segmentation_recut_to_the_crnn_count_can_win() -> None:
    # "1772": segmentation kept the touching 77 whole ("172"), the CRNN counted four but misread a 7 as 1;
    # cut into four, segmentation reads every piece right, and the CRNN finds that text likely too
    seg, crnn = _reading("segmentation", "172", 0.9), _reading("crnn", "1712", 0.5)
    recut = _reading("resplit", "1772", 0.8)
    p_crnn = {"172": 0.01, "1712": 0.5, "1772": 0.4}
    f = fuse(seg, crnn, lambda t: 0.9 if t == "172" else None, lambda t: p_crnn[t], alternatives=[recut])
    assert f.chosen == "resplit" and f.reading.raw == "1772"
    rules = FusionRules()
    w = {"segmentation": 0.9 * rules.fewer_digits * 0.01, "crnn": rules.no_opinion * 0.5,
         "resplit": max(0.8 * rules.resplit, rules.no_opinion) * 0.4}
    assert f.scores == pytest.approx(w)
    assert f.confidence == pytest.approx(w["resplit"] / sum(w.values()) * min(0.8 * rules.resplit, 0.4))


def test_resplit_opinion_is_weighed_by_the_rules() -> None:
    # the same field; with resplit 0.1 the re-cut's opinion (0.8 × 0.1) falls to the floor's neighbourhood
    # and the CRNN's own reading wins again
    seg, crnn = _reading("segmentation", "172", 0.9), _reading("crnn", "1712", 0.5)
    recut = _reading("resplit", "1772", 0.8)
    p_crnn = {"172": 0.01, "1712": 0.5, "1772": 0.4}
    f = fuse(seg, crnn, lambda t: 0.9 if t == "172" else None, lambda t: p_crnn[t],
             FusionRules(resplit=0.1), alternatives=[recut])
    assert f.chosen == "crnn" and f.reading.raw == "1712"
    assert f.scores["resplit"] == pytest.approx(max(0.8 * 0.1, FusionRules().no_opinion) * 0.4)


# --- the shipped model ----------------------------------------------------------------------------------------


def test_shipped_model_loads_and_reads_generated_strings() -> None:
    reader = StringReader.load()
    assert reader.alphabet == ALPHABET and reader.spec == DEFAULT_LINE_SPEC
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    assert card["sha256"] == sha256_file(DEFAULT_MODEL)
    members = card["training"].get("members", [card])
    assert len(members) == len(reader.nets)
    trained_on = [m for m in members if "real-strings --init" in m["training"]["command"]]
    for m in trained_on:  # recorded with what it trained on from
        assert m["training"]["init"]["sha256"] and m["training"]["init"]["command"]
    real = [m for m in trained_on if m["training"]["real_share"] > 0]
    assert real, "at least one member learnt real handwriting"
    for m in real:  # real register lines, recorded with their checksum
        assert m["training"]["data"]["real_lines"]["sha256"] == REGISTER_SHA256["birthdate-train.zip"]
    for m in trained_on:  # a member taught no real lines says so
        assert m["training"]["real_share"] > 0 or m["training"]["data"]["real_lines"] is None
    right = 0
    for i in range(30):
        s = GEN.sample(np.random.default_rng([4, i]), clean=True)
        strip, _ = field_strip(field_ink_of(s), s.region.box.h, s.dpi)
        right += reader.read([strip])[0].text == s.text
    assert right >= 25


def _lp(frames: str, p: float = 0.9) -> np.ndarray:
    """Log-probabilities whose best class per column is ``frames[t]`` ("_" blank) with probability ``p``."""
    n = len(ALPHABET) + 1
    out = np.full((len(frames), n), (1 - p) / (n - 1))
    for t, ch in enumerate(frames):
        out[t, 0 if ch == "_" else ALPHABET.index(ch) + 1] = p
    return np.log(out)


def test_views_pool_their_candidates_and_probabilities() -> None:
    reader = StringReader.load(views=3)
    assert [round(v.x_stretch / reader.spec.x_stretch, 2) for v in reader.views] == [1.0, 0.88, 1.12]
    # view 0 merges the pair "77" into one 7 (unsure); the two other views see both sevens clearly
    ev = (_lp("_1__77___2_", 0.6), _lp("_1_7_7_2_", 0.95), _lp("_1__7__7__2_", 0.95))
    single = reader.decode(ev[0], None)
    pooled = reader.decode(ev, None)
    assert single.text == "172" and pooled.text == "1772"
    assert pooled.confidence == pytest.approx(np.mean([reader.score(lp, "1772") for lp in ev]))
    assert len(pooled.char_columns) == 4 and all(b <= 4 * len(ev[0]) for _, b in pooled.char_columns)
    # a constraint still binds: only 3-digit texts, and the views' best such text wins
    three = reader.decode(ev, Constraint(chars="0123456789", min_digits=3, max_digits=3))
    assert three.satisfied and len(three.text) == 3


def test_model_with_a_wrong_checksum_is_refused(tmp_path: Path) -> None:
    w = tmp_path / "m.safetensors"
    w.write_bytes(DEFAULT_MODEL.read_bytes())
    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    card["sha256"] = "0" * 64
    card_path(w).write_text(json.dumps(card))
    with pytest.raises(ModelError, match="checksum"):
        StringReader.load(w)


def test_pipeline_records_both_readings() -> None:
    doc = Pipeline(Options()).scan("samples/envelope.png")
    f = doc.field("postal_code")
    assert set(f.readings) == {"segmentation", "crnn", "agree", "chosen", "fused_confidence", "calibrated"}
    assert f.readings["agree"] is True and f.readings["chosen"] == "both"
    assert "strings" in doc.models and f.to_dict()["readings"]["crnn"]["raw"] == f.raw


def test_readers_can_be_chosen() -> None:
    doc = Pipeline(Options(reader="crnn")).scan("samples/envelope.png")
    f = doc.field("postal_code")
    assert f.readings["chosen"] == "crnn" and len(f.raw) == 6


@pytest.mark.parametrize("reader", ["fused", "crnn"])
def test_a_field_left_blank_is_empty_for_the_string_reader_too(reader: str) -> None:
    # the shipped CRNNs, shown an all-blank strip, emit a "1" at P≈0.5: a blank field must not be read at all
    from formocr.layout.template import load_template
    from formocr.synth import Degrade, render_form

    rng = np.random.default_rng(7)
    blank = render_form(load_template("envelope"), {"postal_code": ""}, rng, degrade=Degrade.random(rng)).image
    doc = Pipeline(Options(reader=reader, template="envelope")).scan(blank)
    f = doc.field("postal_code")
    assert f.value is None and f.raw == "" and f.needs_review and f.why == ("empty",)
    assert f.readings["crnn"]["raw"] == ""
    assert field_strip(np.zeros((40, 200), bool), 40, 300)[1].blank
    assert not field_strip(np.pad(np.ones((30, 20), bool), 5), 40, 300)[1].blank


# --- training ----------------------------------------------------------------------------------------------


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
@pytest.mark.parametrize(("banded", "fast"), [(False, False), (True, False), (True, True)])
def test_tiny_training_is_deterministic(tmp_path: Path, banded: bool, fast: bool) -> None:
    # fast: channels-last bfloat16 convolutions, the speed-ups of --channels-last --bf16
    from formocr.train.strings import StringTrainConfig, train_strings

    def run(name: str) -> bytes:
        cfg = StringTrainConfig(steps=4, batch_size=6, val_size=10, val_every=2, limit=500, workers=0,
                                widths=(4, 8, 8, 8, 8), hidden=8, out=str(tmp_path / name), banded=banded,
                                channels_last=fast, bf16=fast)
        card = train_strings(cfg)
        assert card["training"]["selected_step"] in (2, 4)
        assert card["training"]["channels_last"] is fast and card["training"]["bf16"] is fast
        assert card["training"]["code"].startswith("formocr ")  # "formocr 0.1.0 at commit …" in a checkout
        return (tmp_path / name).read_bytes()

    torch.set_num_threads(1)
    assert run("a.safetensors") == run("b.safetensors")
    got = StringReader.load(tmp_path / "a.safetensors").read([np.zeros((32, 40), np.float32)])[0]
    assert 0.0 <= got.confidence <= 1.0 and set(got.text) <= set(ALPHABET)


def test_training_strings_touch_in_the_share_asked() -> None:
    from formocr.train.strings import _Batches

    def touching(share: float | None) -> list[bool]:
        asked: list[bool] = []
        gen = StringGenerator(None, min_len=3, max_len=6)
        draw = gen.sample

        def spy(rng: np.random.Generator, **kw: object) -> object:
            if kw.get("touching") is not None:
                asked.append(bool(kw["touching"]))
            return draw(rng, **kw)  # type: ignore[arg-type]

        gen.sample = spy  # type: ignore[method-assign]
        _Batches(gen, seed=3, batch_size=40, steps=1, touching=share)[0]
        return asked

    assert touching(None) == []  # the generator's own draw: the default recipe is untouched
    assert touching(1.0) == [True] * 40 and touching(0.0) == [False] * 40
    assert 20 < sum(touching(0.7)) < 38
    # asked for, the strings are drawn as the benchmark draws them: checked on the ink
    assert all(StringGenerator(None, min_len=3, max_len=6).sample(np.random.default_rng(k), touching=True).touching
               for k in range(8))


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_a_grey_reader_is_trained_on_grey_strips_and_says_so(tmp_path: Path) -> None:
    from formocr.errors import ConfigError
    from formocr.train.strings import StringTrainConfig, train_strings

    cfg = StringTrainConfig(steps=2, batch_size=4, val_size=6, val_every=2, limit=300, workers=0,
                            widths=(4, 8, 8, 8, 8), hidden=8, out=str(tmp_path / "g.safetensors"), input="grey")
    card = train_strings(cfg)
    assert card["training"]["input"] == "grey"
    assert StringReader.load(tmp_path / "g.safetensors").inputs == ("grey",)
    boxed = train_strings(replace(cfg, input="grey-box", out=str(tmp_path / "b.safetensors")))
    assert boxed["training"]["input"] == "grey-box"
    assert StringReader.load(tmp_path / "b.safetensors").inputs == ("grey-box",)
    with pytest.raises(ConfigError, match="input"):
        train_strings(replace(cfg, input="gray"))
    with pytest.raises(ConfigError, match="grey-box"):  # only the box's grey has borders to paint out
        train_strings(replace(cfg, borders_out=True))


def test_held_out_digits_do_not_depend_on_the_training_seed() -> None:
    # members of one ensemble, trained with different seeds, must hold out the same digits: benchmarks tune
    # fusion on them, and a member that learnt them would look better there than it is
    from formocr.train.splits import held_out_split, split_digest

    a_val, a_tr = held_out_split(60000, 0)
    assert len(a_val) == 5000 and len(np.union1d(a_val, a_tr)) == 60000 and not np.intersect1d(a_val, a_tr).size
    assert split_digest(a_val) == split_digest(held_out_split(60000, 0)[0][::-1])
    assert split_digest(a_val) != split_digest(held_out_split(60000, 1)[0])


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_the_card_records_which_digits_were_held_out(tmp_path: Path) -> None:
    from formocr.train.strings import StringTrainConfig, train_strings

    def held(seed: int, split_seed: int) -> dict[str, object]:
        cfg = StringTrainConfig(steps=2, batch_size=4, val_size=4, val_every=2, limit=200, workers=0, seed=seed,
                                split_seed=split_seed, widths=(4, 8, 8, 8, 8), hidden=8,
                                out=str(tmp_path / f"m{seed}{split_seed}.safetensors"))
        return dict(train_strings(cfg)["training"]["data"]["held_out"])

    torch.set_num_threads(1)
    first, second, other = held(0, 0), held(1, 0), held(0, 1)
    assert first == second and first["split_seed"] == 0 and first["images"] == 5000
    assert other["indices_sha256_16"] != first["indices_sha256_16"]


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_training_on_from_a_model_starts_from_its_weights_and_refuses_a_mismatch(tmp_path: Path) -> None:
    from formocr.recognize.modelfile import load_model
    from formocr.train.strings import StringTrainConfig, train_strings

    def cfg(name: str, **kw: object) -> StringTrainConfig:
        base = StringTrainConfig(steps=1, val_every=1, batch_size=4, val_size=4, limit=200, workers=0,
                                 widths=(4, 8, 8, 8, 8), hidden=8, out=str(tmp_path / f"{name}.safetensors"))
        return replace(base, **kw)  # type: ignore[arg-type]

    torch.set_num_threads(1)
    parent = tmp_path / "parent.safetensors"
    train_strings(cfg("parent", steps=2, val_every=2))
    # a learning rate of ~0: the one step cannot move the weights, so the child's are the parent's
    card = train_strings(cfg("child", lr=1e-30, seed=5, init=str(parent)))
    assert card["training"]["init"]["sha256"] == sha256_file(parent)
    fresh = train_strings(cfg("fresh", lr=1e-30, seed=5))
    assert "init" not in fresh["training"]
    p, c, f = (load_model(tmp_path / f"{n}.safetensors").state for n in ("parent", "child", "fresh"))
    weights = [k for k in p if k.endswith("weight")]  # running BatchNorm statistics move even at lr 0
    assert weights and all(torch.equal(p[k], c[k]) for k in weights)
    assert not all(torch.equal(p[k], f[k]) for k in weights)

    with pytest.raises(ModelError, match="hidden"):
        train_strings(cfg("x", init=str(parent), hidden=12))
    with pytest.raises(ModelError, match="split-seed 0, not 1"):
        train_strings(cfg("y", init=str(parent), split_seed=1))
    with pytest.raises(ModelError, match="not found"):
        train_strings(cfg("z", init=str(tmp_path / "missing.safetensors")))


def test_training_command_defaults_are_the_models() -> None:
    from formocr.recognize.strings import DEFAULT_HIDDEN, DEFAULT_WIDTHS
    from formocr.train import cli
    from formocr.train.strings import StringTrainConfig

    assert cli._STRING_WIDTHS == DEFAULT_WIDTHS and cli._STRING_HIDDEN == DEFAULT_HIDDEN
    defaults = {o.name: o.default for o in cli.train_strings_cmd.params}
    assert defaults["synth_share"] == StringTrainConfig.synth_share


def test_comb_cells_keep_segmentations_confidence_on_agreement() -> None:
    f = fuse(_reading("segmentation", "518057", 0.97), _reading("crnn", "518057", 0.4), lambda t: 0.97,
             lambda t: 0.4, cells=True)
    assert f.confidence == pytest.approx(0.97)


# --- ensembles -------------------------------------------------------------------------------------------------


def _tiny_model(path: Path, seed: int, x_stretch: float = DEFAULT_LINE_SPEC.x_stretch, input: str = "ink") -> Path:
    from formocr.recognize.modelfile import save_model
    from formocr.recognize.strings import ARCH, CRNN

    torch.manual_seed(seed)
    widths, hidden = (4, 8, 8, 8, 8 + seed), 6 + seed
    net = CRNN(widths, hidden, len(ALPHABET) + 1, DEFAULT_LINE_SPEC.height)
    line = DEFAULT_LINE_SPEC.to_dict() | {"x_stretch": x_stretch}
    meta = {"arch": ARCH, "widths": list(widths), "hidden": hidden, "alphabet": ALPHABET, "line": line}
    if input != "ink":
        meta["input"] = input
    card = {"name": path.stem, "training": {"command": f"formocr train strings --seed {seed}"},
            "figures": {"val_string_accuracy": 0.5}}
    return save_model(path, net.state_dict(), meta, card)


def test_an_ensemble_reads_with_every_member(tmp_path: Path) -> None:
    from formocr.recognize.strings import combine

    a, b = _tiny_model(tmp_path / "a.safetensors", 0), _tiny_model(tmp_path / "b.safetensors", 1)
    card = combine([a, b], tmp_path / "ab.safetensors")
    assert [m["training"]["command"] for m in card["training"]["members"]] == [
        "formocr train strings --seed 0", "formocr train strings --seed 1"]
    ens = StringReader.load(tmp_path / "ab.safetensors", views=2)
    one = [StringReader.load(p, views=2) for p in (a, b)]
    assert len(ens.nets) == 2 and ens.describe()["members"] == 2
    s = GEN.sample(np.random.default_rng([4, 0]), clean=True)
    strips, _ = ens.field_strips(field_ink_of(s), s.region.box.h, s.dpi)
    ev = ens.evidence([strips])[0]
    singles = [r.evidence([strips])[0] for r in one]
    assert len(ev) == 4  # two members × two views, the first member's view 0 first
    for got, want in zip(ev, singles[0] + singles[1]):
        np.testing.assert_allclose(got, want, atol=1e-5)
    text = ens.decode(ev, None).text
    got = ens.read([strips.ink[0]])[0]  # one strip as given: still read by both members
    assert got.confidence == pytest.approx(np.mean([one[0].score(singles[0][0], got.text),
                                                     one[1].score(singles[1][0], got.text)]), rel=1e-4)
    assert ens.score(ev, text) == pytest.approx(np.mean([one[0].score(singles[0], text),
                                                          one[1].score(singles[1], text)]), rel=1e-4)


def test_a_grey_member_reads_the_grey_strips_and_an_ink_member_the_ink(tmp_path: Path) -> None:
    from formocr.recognize.strings import combine
    from formocr.synth.strings import field_grey_of

    a, b = _tiny_model(tmp_path / "a.safetensors", 0), _tiny_model(tmp_path / "b.safetensors", 1, input="grey")
    combine([a, b], tmp_path / "ab.safetensors")
    ens = StringReader.load(tmp_path / "ab.safetensors", views=2)
    ink_one, grey_one = StringReader.load(a, views=2), StringReader.load(b, views=2)
    assert ens.inputs == ("ink", "grey") and grey_one.inputs == ("grey",)
    s = GEN.sample(np.random.default_rng([4, 1]), clean=True)
    ink, gray, _ = field_grey_of(s)
    strips, geom = ens.field_strips(ink, s.region.box.h, s.dpi, gray)
    assert len(strips.ink) == len(strips.grey) == 2
    assert geom == ens.field_strips(ink, s.region.box.h, s.dpi)[1]
    ev = ens.evidence([strips])[0]
    want = ink_one.evidence([strips.ink])[0] + grey_one.evidence([strips.grey])[0]
    for got, w in zip(ev, want, strict=True):
        np.testing.assert_allclose(got, w, atol=1e-5)
    # an ink-only reader asks for no grey strips; without a grey crop, a grey member reads the ink
    assert ink_one.field_strips(ink, s.region.box.h, s.dpi, gray)[0].grey == ()
    plain, _ = ens.field_strips(ink, s.region.box.h, s.dpi)
    assert plain.grey == () and plain.of("grey") == plain.ink


def test_a_grey_box_member_reads_the_whole_box_with_the_inks_geometry(tmp_path: Path) -> None:
    from formocr.recognize.strings import combine
    from formocr.synth.strings import field_grey_of

    paths = [_tiny_model(tmp_path / f"{k}.safetensors", i, input=k) for i, k in enumerate(("grey", "grey-box"))]
    combine(paths, tmp_path / "gb.safetensors")
    ens = StringReader.load(tmp_path / "gb.safetensors", views=2)
    box_one = StringReader.load(paths[1], views=2)
    assert ens.inputs == ("grey", "grey-box")
    s = GEN.sample(np.random.default_rng([4, 2]), clean=True)
    ink, gray, _ = field_grey_of(s)
    ys, xs = np.nonzero(ink)
    far = ~cv2.dilate(ink.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    y, x = np.argwhere(far[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])[0]
    gray[ys.min() + y, xs.min() + x] //= 2  # a faint speck of ink inside the box that the mask missed
    strips, geom = ens.field_strips(ink, s.region.box.h, s.dpi, gray)
    assert strips.ink == () and len(strips.grey) == len(strips.box) == 2
    assert geom == ens.field_strips(ink, s.region.box.h, s.dpi)[1]  # the kept ink's geometry, whatever is read
    # the same strip size; the box's grey holds at least what the ink's grey holds
    for g, b in zip(strips.grey, strips.box, strict=True):
        assert g.shape == b.shape and (b >= g - 1e-6).all() and b.sum() > g.sum()
    ev = ens.evidence([strips])[0]
    for got, w in zip(ev[2:], box_one.evidence([strips.box])[0], strict=True):
        np.testing.assert_allclose(got, w, atol=1e-5)
    alone, _ = box_one.field_strips(ink, s.region.box.h, s.dpi, gray)  # every member reads the box's grey
    assert alone.ink == alone.grey == () and alone.views == 2 and len(box_one.evidence([alone])[0]) == 2
    combed, _ = ens.field_strips(ink, s.region.box.h, s.dpi, gray, comb=True)  # cell walls inside the box
    for g, b in zip(combed.grey, combed.box, strict=True):
        np.testing.assert_array_equal(g, b)
    plain, _ = box_one.field_strips(ink, s.region.box.h, s.dpi)  # no grey given: it reads the ink
    assert plain.box == () and plain.of("grey-box") == plain.ink


def test_a_shipped_member_comes_out_as_its_training_run_wrote_it(tmp_path: Path) -> None:
    from formocr.recognize.strings import extract_member

    card = json.loads(card_path(DEFAULT_MODEL).read_text())
    if "members" not in card["training"]:  # one network: nothing to take out of it
        with pytest.raises(ModelError, match="not an ensemble"):
            extract_member(DEFAULT_MODEL, 0, tmp_path / "x.safetensors")
        return
    for i, member in enumerate(card["training"]["members"]):
        got = extract_member(DEFAULT_MODEL, i, tmp_path / f"m{i}.safetensors")
        assert sha256_file(tmp_path / f"m{i}.safetensors") == member["sha256"] == got["sha256"]
        assert got["training"]["command"] == member["training"]["command"]
    with pytest.raises(ModelError, match="members 0 to"):
        extract_member(DEFAULT_MODEL, len(card["training"]["members"]), tmp_path / "x.safetensors")


def test_an_ensemble_refuses_members_that_read_other_strips(tmp_path: Path) -> None:
    from formocr.recognize.strings import combine

    a = _tiny_model(tmp_path / "a.safetensors", 0)
    b = _tiny_model(tmp_path / "b.safetensors", 1, x_stretch=1.0)
    with pytest.raises(ModelError, match="strip spec"):
        combine([a, b], tmp_path / "ab.safetensors")
    with pytest.raises(ModelError, match="at least two"):
        combine([a], tmp_path / "ab.safetensors")
    combine([a, a], tmp_path / "aa.safetensors")
    with pytest.raises(ModelError, match="not a single"):
        combine([tmp_path / "aa.safetensors", a], tmp_path / "x.safetensors")


def test_combine_strings_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from formocr.train.cli import main

    a, b = _tiny_model(tmp_path / "a.safetensors", 0), _tiny_model(tmp_path / "b.safetensors", 1)
    out = tmp_path / "ab.safetensors"
    r = CliRunner().invoke(main, ["combine-strings", str(a), str(b), "--out", str(out)])
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == str(out)
    assert len(StringReader.load(out).nets) == 2
    r = CliRunner().invoke(main, ["combine-strings", str(a), str(tmp_path / "missing.safetensors"), "--out",
                                  str(tmp_path / "x.safetensors")])
    assert r.exit_code == ModelError.exit_code and "missing.safetensors" in r.stderr and "Traceback" not in r.output


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_distorted_training_digits_still_read_as_their_labels() -> None:
    train = mnist.load_split("train")
    bank = DigitBank(train.images[:3000], train.labels[:3000])
    plain = StringGenerator(bank, synth_share=0.0, separators=False)
    assert StringGenerator(bank, synth_share=0.0, separators=False, distort=0.0).sample(
        np.random.default_rng(8)).image.tobytes() == plain.sample(np.random.default_rng(8)).image.tobytes()
    warped = StringGenerator(bank, synth_share=0.0, separators=False, distort=0.6)
    pipe = Pipeline(Options(reader="segmentation"))
    pre = PreprocessOptions(deskew=False, speckle_mm=0.0)
    right = changed = 0
    for i in range(40):
        text = "".join(str(d) for d in np.random.default_rng([4, i]).integers(0, 10, 5))
        s = warped.sample(np.random.default_rng([4, i]), text=text, touching=False, clean=True)
        changed += s.image.shape != plain.sample(np.random.default_rng([4, i]), text=text, touching=False,
                                                 clean=True).image.shape
        right += pipe.reader.read(preprocess(Page(0, s.image, s.dpi, "<strip>"), pre), [s.region])[0].result.raw == text
    assert changed >= 30  # the warps change the digits...
    assert right >= 35  # ...but not what they are (undistorted: 39 of these 40)


def test_training_strips_with_borders_out_are_what_the_pipeline_shows_a_grey_box_member(tmp_path: Path) -> None:
    # --borders-out exists so that training sees the strips the pipeline reads: the same field, cut and painted by
    # the pipeline's road (preprocess, field_cut, StringReader.field_strips), must give the same pixels
    from formocr.segment import field_cut
    from formocr.train.strings import sample_strip

    reader = StringReader.load(_tiny_model(tmp_path / "b.safetensors", 0, input="grey-box"))
    changed = 0
    for i in range(12, 22):  # seeds 13 and 20 draw strokes across a printed border
        out, s = sample_strip(GEN, np.random.default_rng([7, i]), "grey-box", borders_out=True)
        kept, _ = sample_strip(GEN, np.random.default_rng([7, i]), "grey-box", borders_out=False)
        clean = preprocess(Page(0, s.image, s.dpi, "<strip>"), PreprocessOptions(deskew=False, speckle_mm=0.0))
        ink, box, lines = field_cut(clean, s.region)
        gray = clean.gray[box.y : box.y2, box.x : box.x2]
        shown = reader.field_strips(ink, s.region.box.h, s.dpi, gray, lines=lines)[0].box[0]
        np.testing.assert_array_equal(out, shown)
        changed += out.shape != kept.shape or not np.array_equal(out, kept)
    assert changed  # some of these fields had a border through the ink's box


def test_string_training_refuses_a_device_it_cannot_use(tmp_path: Path) -> None:
    from formocr.errors import ConfigError
    from formocr.train.strings import StringTrainConfig, train_strings

    cfg = StringTrainConfig(steps=1, out=str(tmp_path / "x.safetensors"))
    with pytest.raises(ConfigError, match="cpu or cuda"):
        train_strings(replace(cfg, device="tpu"))
    if not torch.cuda.is_available():  # a clear error before any data is read, not a torch traceback mid-run
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            train_strings(replace(cfg, device="cuda"))
    assert not (tmp_path / "x.safetensors").exists()


def _tiny_string_net(path: Path, seed: int, split_seed: int = 0, hidden: int = 8, input: str = "grey-box") -> Path:
    from formocr.recognize.modelfile import save_model
    from formocr.recognize.strings import ARCH, CRNN

    torch.manual_seed(seed)
    net = CRNN((4, 8, 8, 8, 8), hidden, len(ALPHABET) + 1, DEFAULT_LINE_SPEC.height)
    for m in net.modules():  # batch-norm statistics that differ between the nets, so their mean is tested too
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
    meta = {"arch": ARCH, "widths": [4, 8, 8, 8, 8], "hidden": hidden, "alphabet": ALPHABET,
            "line": DEFAULT_LINE_SPEC.to_dict(), "input": input}
    save_model(path, net.state_dict(), meta, {"name": path.stem, "training": {"split_seed": split_seed},
                                              "figures": {"val_string_accuracy": 0.5}})
    return path


def _tiny_training(tmp_path: Path, steps: int = 3, batch_size: int = 6, **kw: Any) -> StringTrainConfig:
    """A training run small enough for a test: 300 images, a 4-8-channel network, one thread."""
    from formocr.train.strings import StringTrainConfig

    torch.set_num_threads(1)
    return StringTrainConfig(steps=steps, batch_size=batch_size, val_size=6, val_every=steps if steps < 4 else 2,
                             limit=300, workers=0, widths=(4, 8, 8, 8, 8), hidden=8, banded=True,
                             out=str(tmp_path / "a.safetensors"), **kw)


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_asking_for_bf16_on_a_cpu_without_it_warns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    import formocr.train.strings as strings_training
    from formocr.train.strings import StringTrainConfig, train_strings

    torch.set_num_threads(1)
    cfg = StringTrainConfig(steps=1, batch_size=2, val_size=2, val_every=1, limit=200, workers=0,
                            widths=(4, 8, 8, 8, 8), hidden=8, out=str(tmp_path / "a.safetensors"), bf16=True)
    for native in (False, True):
        caplog.clear()
        monkeypatch.setattr(strings_training, "cpu_has_bf16", lambda native=native: native)
        with caplog.at_level("WARNING", logger="formocr.train"):
            train_strings(cfg)
        assert any("no bfloat16 instructions" in r.getMessage() for r in caplog.records) is not native


def test_a_currency_sign_is_drawn_and_left_out_of_the_label() -> None:
    """A share of the real-strings trainer's composed strings is written after a "$" (sometimes touching the first
    digit), labelled without it: the reader learns to pass over the sign instead of reading an 8."""
    from formocr.train.real_strings import RealStringConfig, _composed

    def drawn(share: float) -> list[tuple[str, str]]:
        asked: list[tuple[str, str]] = []
        gen = StringGenerator(None, min_len=3, max_len=6)
        draw = gen.sample

        def spy(rng: np.random.Generator, **kw: Any) -> Any:
            s = draw(rng, **kw)
            asked.append((s.text, "".join(c for c, _ in s.char_boxes)))
            return s

        gen.sample = spy  # type: ignore[method-assign]
        cfg = RealStringConfig(init="-", out="-", currency_share=share)
        labels = [_composed(gen, cfg, 1, i, "ink")[1] for i in range(30)]
        assert all(set(t) <= set(ALPHABET) for t in labels)
        return [(a[0], a[1], t) for a, t in zip(asked, labels)]

    none = drawn(0.0)
    assert all("$" not in written and label == written for written, _, label in none)
    some = drawn(0.5)
    signed = [(w, d, t) for w, d, t in some if w.startswith("$")]
    assert 8 <= len(signed) <= 22
    assert all(d.startswith("$") and w.lstrip("$ ") == t for w, d, t in signed)
    # the strings without the sign are the very ones the recipe draws without the option
    assert [s for s in some if not s[0].startswith("$")] == [s for s, t in zip(none, some) if not t[0].startswith("$")]


def test_a_currency_sign_can_touch_the_first_digit() -> None:
    gen = StringGenerator(None)
    met = 0
    for k in range(20):
        s = gen.sample(np.random.default_rng([5, k]), text="$4", touching=True, clean=True)
        assert s.touching and s.char_boxes[0][0] == "$"
        met += _spans_two(_components(s.image), [s.char_boxes[0][1], s.char_boxes[1][1]])
    assert met >= 16
