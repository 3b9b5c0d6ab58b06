"""A tiny training run: deterministic for a seed, and it learns something measurable."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from formocr.data import mnist
from formocr.data.real import CVL_SHA256, dataset_dir
from formocr.errors import ModelError
from formocr.recognize.modelfile import card_path, load_model
from formocr.train.calibrate import error_at_coverage, expected_calibration_error, fit_temperature, softmax
from formocr.train.digits import TrainConfig, train_digits

needs_shared = pytest.mark.skipif(
    not (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file(), reason="no shared MNIST"
)


@needs_shared
def test_tiny_training_learns_and_is_deterministic(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=3, limit=2000, val_size=300, seed=3, widths=(8, 16, 16, 16, 32),
                      out=str(tmp_path / "a.safetensors"), workers=0)
    card = train_digits(cfg)
    # 2,000 images, three epochs: far from the shipped model, far above chance (10%).
    assert card["figures"]["test_accuracy"] > 0.75
    again = train_digits(TrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "b.safetensors")}))
    a = json.loads(card_path(tmp_path / "a.safetensors").read_text())
    b = json.loads(card_path(tmp_path / "b.safetensors").read_text())
    assert a["sha256"] == b["sha256"], "same seed must give the same weights"
    assert again["figures"] == card["figures"]
    assert a["training"]["data"]["sha256"]["t10k-images-idx3-ubyte.gz"] == mnist.KNOWN_SHA256[
        "t10k-images-idx3-ubyte.gz"
    ]


def test_temperature_recovers_a_known_overconfidence() -> None:
    rng = np.random.default_rng(0)
    n = 4000
    true_logits = rng.normal(0, 2.0, (n, 10))
    labels = np.array([rng.choice(10, p=p) for p in softmax(true_logits)])
    t = fit_temperature(true_logits * 2.5, labels)  # the "model" is 2.5× too sure
    assert 2.2 < t < 2.8
    assert expected_calibration_error(softmax(true_logits * 2.5, t), labels) < 0.03
    assert expected_calibration_error(softmax(true_logits * 2.5), labels) > 0.05


def test_error_at_coverage() -> None:
    probs = np.array([[0.99, 0.01], [0.9, 0.1], [0.6, 0.4], [0.55, 0.45]])
    labels = np.array([0, 0, 1, 0])
    assert error_at_coverage(probs, labels, 0.5) == (0.0, 0.9)
    assert error_at_coverage(probs, labels, 1.0)[0] == 0.25


@needs_shared
def test_the_digit_cnn_can_hold_out_the_string_models_images(tmp_path: Path) -> None:
    # with --split-seed both readers hold out the same 5000 images, so fusion can be tuned on digits new to both
    from formocr.train.splits import digit_cnn_split, held_out_split, split_digest

    cfg = TrainConfig(epochs=1, limit=300, split_seed=0, widths=(4, 8, 8, 8, 8), out=str(tmp_path / "d.safetensors"),
                      workers=0)
    held, trained = digit_cnn_split(60000, cfg.seed, cfg.val_size, cfg.split_seed)
    strings_held = held_out_split(60000, 0)[0]
    assert np.array_equal(held, strings_held) and not np.intersect1d(held, trained).size
    card = train_digits(cfg)
    assert card["training"]["data"]["held_out"] == {"split_seed": 0, "images": 5000,
                                                    "indices_sha256_16": split_digest(strings_held)}
    # the shipped digit CNN's split is drawn from its seed and shares only 413 images with the strings' split
    seeded = digit_cnn_split(60000, seed=0)[0]
    assert len(np.intersect1d(seeded, strings_held)) == 413


needs_cvl = pytest.mark.skipif(not (dataset_dir("cvl-digits", "FORMOCR_CVL") / "train.npz").is_file(),
                               reason="no shared CVL digits")


@needs_shared
@needs_cvl
def test_real_writers_and_a_reject_class_reach_the_card(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, limit=300, val_size=200, seed=2, widths=(4, 8, 8, 8, 8), workers=0,
                      out=str(tmp_path / "r.safetensors"))
    card = train_digits(cfg)
    data = card["training"]["data"]
    assert data["datasets"] == ["MNIST", "CVL single digits"] and "TU Wien" in data["terms"]["CVL"]
    assert data["sha256"]["cvl/train.npz"] == CVL_SHA256["train.npz"]
    assert 0.0 <= card["figures"]["val_accuracy_cvl_even_writers"] <= 1.0
    assert 0.0 <= card["figures"]["val_reject_recall"] <= 1.0
    assert load_model(tmp_path / "r.safetensors").meta["classes"][-1] == "reject"
    plain = train_digits(TrainConfig(**{**cfg.__dict__, "use_cvl": False, "reject_share": 0.0,
                                        "out": str(tmp_path / "p.safetensors")}))
    assert plain["training"]["data"]["dataset"] == "MNIST"
    assert load_model(tmp_path / "p.safetensors").meta["classes"] == [str(d) for d in range(10)]


@needs_shared
@needs_cvl
def test_training_on_from_a_network_starts_from_its_weights_and_refuses_a_misfit(tmp_path: Path) -> None:
    """``--init``: a shipped member taught a new kind of "not a digit" starts from its own weights (so one step at
    a tiny rate stays near it), records its parent and the parent's own chain, and refuses a parent of another
    shape or held-out split."""
    import torch


    small = dict(limit=300, val_size=200, widths=(4, 8, 8, 8, 8), workers=0)
    parent = TrainConfig(epochs=1, seed=2, out=str(tmp_path / "p.safetensors"), **small)  # type: ignore[arg-type]
    train_digits(parent)
    child = TrainConfig(epochs=1, seed=2, lr=1e-6, init=parent.out, out=str(tmp_path / "c.safetensors"),
                        **small)  # type: ignore[arg-type]
    card = train_digits(child)
    assert card["training"]["init"]["sha256"] == load_model(parent.out).sha256
    p, c = load_model(parent.out).state, load_model(child.out).state
    w = "body.0.weight" if "body.0.weight" in p else next(k for k in p if k.endswith("weight"))
    assert torch.allclose(p[w], c[w], atol=1e-3)
    again = train_digits(TrainConfig(**{**child.__dict__, "out": str(tmp_path / "d.safetensors")}))
    assert again["figures"] == card["figures"]
    grandchild = train_digits(TrainConfig(**{**child.__dict__, "init": child.out,
                                             "out": str(tmp_path / "g.safetensors")}))
    chain = grandchild["training"]["init"]
    assert chain["sha256"] == load_model(child.out).sha256  # the whole chain, to rebuild it from the first run
    assert chain["init"]["sha256"] == load_model(parent.out).sha256 and "init" not in chain["init"]
    with pytest.raises(ModelError, match="held out other MNIST images"):
        train_digits(TrainConfig(**{**child.__dict__, "seed": 3}))
    with pytest.raises(ModelError, match="widths"):
        train_digits(TrainConfig(**{**child.__dict__, "widths": (4, 8, 8, 8, 16)}))


needs_registers = pytest.mark.skipif(
    not (dataset_dir("danish-registers", "FORMOCR_REGISTERS") / "birthdate-validation.zip").is_file(),
    reason="no shared register cells")


@needs_shared
@needs_cvl
@needs_registers
def test_tiny_real_strings_run_is_deterministic_and_says_what_it_learnt_from(tmp_path: Path) -> None:
    from formocr.recognize.strings import DEFAULT_MODEL, extract_member
    from formocr.train.real_strings import RealStringConfig, train_real_strings

    extract_member(DEFAULT_MODEL, 0, tmp_path / "m.safetensors")
    cfg = RealStringConfig(init=str(tmp_path / "m.safetensors"), out=str(tmp_path / "a.safetensors"), steps=2,
                           batch_size=6, val_every=2, val_strings=4, limit=40, real_share=0.0, currency_share=0.5,
                           threads=1)
    card = train_real_strings(cfg)
    train_real_strings(RealStringConfig(**{**cfg.__dict__, "out": str(tmp_path / "b.safetensors")}))
    a, b = load_model(tmp_path / "a.safetensors"), load_model(tmp_path / "b.safetensors")
    assert a.sha256 == b.sha256, "same seed must give the same weights"
    t = card["training"]
    assert t["currency_share"] == 0.5 and t["init"]["sha256"] == load_model(tmp_path / "m.safetensors").sha256
    assert t["data"]["real_lines"] is None  # no register line in any batch: the card claims none
    assert "birthdate-validation.zip" in t["data"]["chosen_on"]["real"]
    with pytest.raises(ModelError, match="extract-member"):  # an ensemble: one member is trained on, not all
        train_real_strings(RealStringConfig(**{**cfg.__dict__, "init": str(DEFAULT_MODEL)}))
