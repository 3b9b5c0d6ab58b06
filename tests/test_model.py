"""Model files: safe loading, checksum verification, and inference matching the training network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from formocr.errors import ModelError
from formocr.normalize import DEFAULT_SPEC, to_model_input
from formocr.recognize.digits import ARCH, DEFAULT_MODEL, DigitClassifier, DigitNet
from formocr.recognize.modelfile import card_path, load_model, save_model


def _tiny(tmp_path: Path, temperature: float = 1.5) -> tuple[Path, DigitNet]:
    torch.manual_seed(0)
    widths = (4, 8, 8, 8, 16)
    net = DigitNet(widths)
    with torch.no_grad():  # non-trivial batch-norm statistics, so folding is really exercised
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.2, 0.2)
    meta = {"arch": ARCH, "widths": list(widths), "norm": DEFAULT_SPEC.to_dict(),
            "classes": [str(i) for i in range(10)], "temperature": temperature}
    p = save_model(tmp_path / "tiny.safetensors", net.state_dict(), meta, {"name": "tiny"})
    return p, net


def test_round_trip_and_folded_inference_matches(tmp_path: Path) -> None:
    p, net = _tiny(tmp_path)
    clf = DigitClassifier.load(p)
    tiles = np.random.default_rng(0).random((37, 28, 28)).astype(np.float32)
    net.eval()
    with torch.no_grad():
        ref = net(torch.from_numpy(to_model_input(tiles))).numpy()
    assert np.allclose(clf.logits(tiles, batch_size=16), ref, atol=1e-4)
    probs = clf.probabilities(tiles)
    assert np.allclose(probs.sum(1), 1.0, atol=1e-5)
    readings = clf.classify(tiles[:3])
    assert len(readings[0].top3) == 3 and readings[0].prob == pytest.approx(readings[0].top3[0][1])
    assert clf.identity.startswith("tiny@sha256:")


def test_checksum_mismatch_is_refused(tmp_path: Path) -> None:
    p, _ = _tiny(tmp_path)
    data = bytearray(p.read_bytes())
    data[-1] ^= 0xFF  # flip a bit in the weights
    p.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="checksum mismatch"):
        load_model(p)


def test_missing_card_missing_file_and_garbage(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        load_model(tmp_path / "none.safetensors")
    p, _ = _tiny(tmp_path)
    card_path(p).unlink()
    with pytest.raises(ModelError, match="card"):
        load_model(p)
    g = tmp_path / "garbage.safetensors"
    g.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a valid formocr model"):
        load_model(g, verify=False)


def test_wrong_architecture_is_refused(tmp_path: Path) -> None:
    p, _ = _tiny(tmp_path)
    card = json.loads(card_path(p).read_text())
    lm = load_model(p)
    lm.meta["arch"] = "something-else"
    with pytest.raises(ModelError, match="unknown architecture"):
        DigitClassifier(lm)
    assert card["sha256"] == lm.sha256


def test_shipped_model_loads_with_card() -> None:
    if not DEFAULT_MODEL.is_file():
        pytest.skip("shipped model not built yet")
    clf = DigitClassifier.load()
    card = clf.loaded.card
    assert card["figures"]["test_accuracy"] >= 0.996
    assert card["norm"] == DEFAULT_SPEC.to_dict()
    assert "formocr train digits" in card["training"]["command"]
    assert 0.3 < clf.temperature < 3
