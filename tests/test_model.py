"""Model files: safe loading, checksum verification, and inference matching the training network."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from formocr.data.real import CVL_SHA256
from formocr.errors import ModelError
from formocr.normalize import DEFAULT_SPEC, to_model_input
from formocr.recognize.digits import ARCH, DigitClassifier, DigitNet, combine
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
    clf = DigitClassifier.load()
    card = clf.loaded.card
    assert card["norm"] == DEFAULT_SPEC.to_dict()
    assert card["evaluation"]["model"] == clf.identity  # measured on these very weights
    assert card["evaluation"]["mnist_test"]["accuracy"] >= 0.995
    assert clf.rejects and clf.classes[-1] == "reject"
    # an ensemble: every member rebuilt by its own recorded command, each trained on CVL's real writers
    assert card["training"]["command"].startswith("formocr-train combine-digits")
    members = card["training"]["members"]
    assert len(members) == len(clf.nets) >= 2
    for m in members:
        assert " digits " in m["training"]["command"] and "--out" in m["training"]["command"]
        assert m["training"]["data"]["sha256"]["cvl/train.npz"] == CVL_SHA256["train.npz"]
        assert "TU Wien" in m["training"]["data"]["terms"]["CVL"]
        assert m["figures"]["test_accuracy"] >= 0.994
    assert all(0.3 < t < 3 for t in clf.temperatures)


def _second(tmp_path: Path, temperature: float, seed: int, widths: tuple[int, ...] = (4, 8, 8, 8, 16)) -> Path:
    torch.manual_seed(seed)
    net = DigitNet(widths)
    meta = {"arch": ARCH, "widths": list(widths), "norm": DEFAULT_SPEC.to_dict(),
            "classes": [str(i) for i in range(10)], "temperature": temperature}
    return save_model(tmp_path / f"net{seed}.safetensors", net.state_dict(), meta, {"name": f"net{seed}"})


def test_an_ensemble_reads_the_mean_of_its_members_calibrated_probabilities(tmp_path: Path) -> None:
    a, _ = _tiny(tmp_path, temperature=1.5)
    b = _second(tmp_path, temperature=0.7, seed=3, widths=(8, 8, 16, 16, 32))  # members may differ in width
    card = combine([a, b], tmp_path / "ens.safetensors")
    assert len(card["training"]["members"]) == 2 and card["training"]["command"].startswith("formocr-train")
    ens = DigitClassifier.load(tmp_path / "ens.safetensors")
    tiles = np.random.default_rng(1).random((9, 28, 28)).astype(np.float32)
    pa, pb = DigitClassifier.load(a).probabilities(tiles), DigitClassifier.load(b).probabilities(tiles)
    assert np.allclose(ens.probabilities(tiles), (pa + pb) / 2, atol=1e-5)
    assert ens.temperatures == (1.5, 0.7) and ens.describe()["members"] == 2
    assert ens.classify(tiles[:1])[0].prob == pytest.approx(float(((pa + pb) / 2)[0].max()), abs=1e-5)


def test_combine_digits_refuses_what_cannot_be_joined(tmp_path: Path) -> None:
    a, _ = _tiny(tmp_path)
    with pytest.raises(ModelError, match="at least two"):
        combine([a], tmp_path / "one.safetensors")
    odd = _second(tmp_path, temperature=1.0, seed=4)
    lm = load_model(odd)
    meta = dict(lm.meta, norm=dict(lm.meta["norm"], mean=0.5))
    other = save_model(tmp_path / "odd.safetensors", lm.state, meta, {"name": "odd"})
    with pytest.raises(ModelError, match="normalization"):
        combine([a, other], tmp_path / "x.safetensors")
    combine([a, odd], tmp_path / "ens.safetensors")
    with pytest.raises(ModelError, match="not a single"):
        combine([a, tmp_path / "ens.safetensors"], tmp_path / "y.safetensors")


def test_combine_digits_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from formocr.train.cli import main

    a, _ = _tiny(tmp_path)
    b = _second(tmp_path, temperature=1.2, seed=5)
    out = tmp_path / "ab.safetensors"
    r = CliRunner().invoke(main, ["combine-digits", str(a), str(b), "--out", str(out)])
    assert r.exit_code == 0 and json.loads(r.stdout)["model"] == str(out)
    assert len(DigitClassifier.load(out).nets) == 2
    assert load_model(out).card["training"]["command"].startswith("formocr-train combine-digits")
    r = CliRunner().invoke(main, ["combine-digits", str(a), str(tmp_path / "missing.safetensors"), "--out",
                                  str(tmp_path / "x.safetensors")])
    assert r.exit_code == ModelError.exit_code and "missing.safetensors" in r.stderr and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["combine-digits", str(a), str(b)])
    assert r.exit_code == 2 and "--out" in r.output  # a training command never writes the shipped model by default
