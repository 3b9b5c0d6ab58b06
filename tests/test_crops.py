"""Digit tiles cut from synthetic strings by the pipeline's segmentation: labels only where the cut pairs up."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from formocr.data import mnist
from formocr.recognize.digits import DigitClassifier
from formocr.synth.strings import StringGenerator
from formocr.train.crops import cut_sample, harvest
from formocr.train.digits import TrainConfig, train_digits


@pytest.fixture(scope="module")
def confidence():  # type: ignore[no-untyped-def]
    return DigitClassifier.load().top_probability


def test_cuts_are_labelled_with_the_digits_drawn_in_order(confidence) -> None:  # type: ignore[no-untyped-def]
    gen = StringGenerator(None, min_len=3, max_len=6, separators=False)
    paired = 0
    for i in range(12):
        sample = gen.sample(np.random.default_rng([5, i]), text="305" if i % 2 else "7412", touching=False, clean=True)
        got = cut_sample(sample, confidence)
        if got is None:
            continue
        masks, labels, recut = got
        paired += 1
        assert labels == [int(c) for c in sample.text]
        assert len(masks) == len(labels) and not recut
        assert all(m.dtype == bool and m.any() for m in masks)
    assert paired >= 9  # clean, apart digits: segmentation pairs nearly all


def test_touching_digits_are_recut_to_the_drawn_count(confidence) -> None:  # type: ignore[no-untyped-def]
    gen = StringGenerator(None, min_len=4, max_len=4, separators=False)
    recuts = 0
    for i in range(30):
        sample = gen.sample(np.random.default_rng([6, i]), text="2580", touching=True, clean=True)
        got = cut_sample(sample, confidence)
        if got is not None:
            assert got[1] == [2, 5, 8, 0] and len(got[0]) == 4
            recuts += got[2]
            if got[2]:  # without the re-cut the same strip does not pair
                assert cut_sample(sample, confidence, recut=False) is None
    assert recuts > 0


def test_a_cut_that_does_not_pair_gives_no_tiles(confidence) -> None:  # type: ignore[no-untyped-def]
    gen = StringGenerator(None, min_len=3, max_len=3, separators=False)
    sample = gen.sample(np.random.default_rng(1), text="123", touching=False, clean=True)
    # claim a fourth digit far right of the ink: the count cannot be reached by re-cutting pieces in place
    lying = type(sample)(sample.image, "1234", sample.region, sample.dpi, False,
                         (*sample.char_boxes, ("4", sample.char_boxes[-1][1].shifted(500, 0))))
    assert cut_sample(lying, confidence) is None


def test_harvest_is_deterministic_for_a_seed(confidence) -> None:  # type: ignore[no-untyped-def]
    gen = StringGenerator(None, min_len=2, max_len=5)
    a = harvest(gen, 20, seed=3, confidence=confidence)
    b = harvest(gen, 20, seed=3, confidence=confidence)
    assert len(a) > 20 and a.tiles.shape[1:] == (28, 28)
    assert np.array_equal(a.tiles, b.tiles) and np.array_equal(a.labels, b.labels)
    assert a.stats["paired"] + a.stats["paired_recut"] + a.stats["unpaired"] == 20
    assert a.recut.dtype == bool and len(a.recut) == len(a.labels)


@pytest.mark.skipif(not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST")
def test_training_with_string_cuts_records_them(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, limit=400, val_size=300, seed=1, widths=(4, 8, 8, 8, 8), workers=0,
                      string_crops=60, out=str(tmp_path / "c.safetensors"))
    card = train_digits(cfg)
    info = card["training"]["string_crops"]
    assert info["strings"] == 60 and info["tiles"] > 60 and info["val_tiles"] > 0
    assert info["cut_with"].startswith("digits-cnn@sha256:")
    assert 0.0 <= card["figures"]["val_accuracy_crops"] <= 1.0
    assert "val_crops" in card["training"]["history"][0]
