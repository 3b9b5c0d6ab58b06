"""The window judge: windows cut around CTC centres, their training labels, the model file, and the judging rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from formocr.data import mnist
from formocr.errors import ModelError
from formocr.recognize.strings import FieldStrips
from formocr.recognize.windows import (
    ARCH,
    DEFAULT_HIDDEN,
    DEFAULT_WIDTHS,
    DEFAULT_WINDOW_SPEC,
    WindowNet,
    WindowReader,
    cut_windows,
    judge,
    window_evidence,
)
from formocr.synth.strings import StringGenerator
from formocr.train.windows import WindowTrainConfig, digit_windows, temperature, train_windows

HAVE_MNIST = (mnist.default_dir() / "train-images-idx3-ubyte.gz").is_file()


def test_windows_are_centred_and_off_the_strip_is_paper() -> None:
    strip = np.zeros((32, 100), np.float32)
    strip[:, 50] = 1.0  # one bright column
    w = cut_windows(strip, [50.0, 0.0, 99.6, 500.0])
    assert w.shape == (4, 32, DEFAULT_WINDOW_SPEC.width)
    half = DEFAULT_WINDOW_SPEC.width // 2
    assert w[0][:, half].all() and w[0].sum() == 32  # the centre column is the window's middle
    assert w[1].sum() == 0 and w[2].sum() == 0  # the column lies outside those windows; paper around the strip
    assert w[3].sum() == 0  # a centre far beyond the strip: a window of paper, of the same shape


def test_training_windows_are_labelled_with_the_digits_drawn_in_their_middle() -> None:
    gen = StringGenerator(None)  # the stroke renderer: no MNIST needed
    for i in range(6):
        rng = np.random.default_rng([7, i])
        sample = gen.sample(rng, text="30-715", clean=True)
        wins, labels = digit_windows(sample, None)
        assert labels == [3, 0, 7, 1, 5]  # the separator gets no window
        assert wins.shape == (5, 32, DEFAULT_WINDOW_SPEC.width)
        mid = wins[:, :, DEFAULT_WINDOW_SPEC.width // 2 - 4 : DEFAULT_WINDOW_SPEC.width // 2 + 4]
        assert (mid.max(axis=(1, 2)) > 0.5).all()  # ink in the middle of every window


def test_window_evidence_sums_the_digits_log_probabilities() -> None:
    lp = np.log(np.full((3, 10), 0.05))
    lp[0, 4] = lp[2, 2] = np.log(0.55)
    assert window_evidence("4.2", lp) == pytest.approx(2 * np.log(0.55))  # the separator's row is not counted
    assert window_evidence("412", lp) == pytest.approx(2 * np.log(0.55) + np.log(0.05))


def test_judge_weighs_the_windows_against_the_string_reader() -> None:
    lp = np.log(np.full((2, 10), 0.02))
    lp[1, 7] = np.log(0.82)  # the windows read "17"
    cands = [("11", 0.6), ("17", 0.3)]
    assert judge(cands, lp, 0.0) == "11"  # weight 0: the string reader's choice
    assert judge(cands, lp, 1.0) == "17"
    assert judge([("11", 0.5), ("12", 0.5)], np.zeros((2, 10)), 1.0) == "11"  # a tie keeps the reading


def test_a_judge_gets_only_the_strips_it_was_trained_on() -> None:
    ink, box = (np.zeros((32, 40), np.float32),), (np.ones((32, 40), np.float32),)
    strips = FieldStrips(ink=ink, box=box)
    assert strips.of("grey-box", strict=True) is box and strips.of("grey", strict=True) == ()
    assert strips.of("grey") is ink  # a string member reads the ink instead


def test_temperature_softens_overconfident_logits() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 10, 2000)
    right = rng.random(2000) < 0.7  # 70% right, but every answer 99.99% sure
    pred = np.where(right, y, (y + 1) % 10)
    logits = torch.full((2000, 10), -5.0)
    logits[torch.arange(2000), torch.from_numpy(pred)] = 5.0
    assert temperature(logits, y) > 1.5


def _random_window_model(path: Path, **spec: object) -> Path:
    from dataclasses import replace

    from formocr.recognize.modelfile import save_model

    torch.manual_seed(0)
    meta = {"arch": ARCH, "widths": list(DEFAULT_WIDTHS), "hidden": DEFAULT_HIDDEN,
            "spec": replace(DEFAULT_WINDOW_SPEC, **spec).to_dict(), "temperature": 1.0}  # type: ignore[arg-type]
    return save_model(path, WindowNet().state_dict(), meta, {"name": "windows-test"})


def test_a_window_model_loads_and_reads_probabilities(tmp_path: Path) -> None:
    reader = WindowReader.load(_random_window_model(tmp_path / "w.safetensors"))
    lp = reader.log_probs(np.random.default_rng(0).random((32, 120)).astype(np.float32), [20.0, 60.0, 100.0])
    assert lp.shape == (3, 10) and np.allclose(np.exp(lp).sum(axis=1), 1.0, atol=1e-5)
    assert reader.log_probs(np.zeros((32, 9), np.float32), []).shape == (0, 10)


def test_a_string_model_is_not_a_window_model() -> None:
    from formocr.recognize.strings import DEFAULT_MODEL

    with pytest.raises(ModelError, match="unknown architecture"):
        WindowReader.load(DEFAULT_MODEL)


@pytest.mark.skipif(not HAVE_MNIST, reason="no shared MNIST")
def test_tiny_training_is_deterministic_and_loads(tmp_path: Path) -> None:
    def run(name: str) -> bytes:
        cfg = WindowTrainConfig(strings=12, val_strings=4, epochs=1, limit=300, out=str(tmp_path / name))
        card = train_windows(cfg)
        assert card["training"]["selected_epoch"] == 1 and card["training"]["windows"] > 12
        assert 0.0 <= card["figures"]["val_accuracy"] <= 1.0 and card["figures"]["temperature"] > 0
        return (tmp_path / name).read_bytes()

    torch.set_num_threads(1)
    assert run("a.safetensors") == run("b.safetensors")
    reader = WindowReader.load(tmp_path / "a.safetensors")
    assert reader.log_probs(np.zeros((32, 60), np.float32), [30.0]).shape == (1, 10)


class _Judge:
    """A window reader stand-in that sees ``digit`` in the window at ``position`` and nothing elsewhere."""

    def __init__(self, position: int, digit: int, spec: object = DEFAULT_WINDOW_SPEC) -> None:
        self.position, self.digit, self.spec = position, digit, spec
        self.asked: list[list[float]] = []

    def log_probs(self, strip: np.ndarray, centres: list[float]) -> np.ndarray:
        self.asked.append(list(centres))
        lp = np.log(np.full((len(centres), 10), 0.1))
        lp[self.position] = np.log(np.full(10, 0.001))
        lp[self.position, self.digit] = np.log(0.991)
        return lp


def _reader(windows: object, **rules: object) -> object:
    import formocr.read as read_mod
    from formocr.fusion import FusionRules
    from formocr.options import Options
    from formocr.recognize.digits import DigitClassifier
    from formocr.recognize.strings import StringReader

    reader = read_mod.FieldReader(Options(), DigitClassifier.load(None), StringReader.load(None, 3))
    reader.windows = windows  # type: ignore[assignment]
    reader.rules = FusionRules(**rules)  # type: ignore[arg-type]
    return reader


def test_the_judge_changes_only_an_unsure_reading_and_only_one_digit(monkeypatch: pytest.MonkeyPatch) -> None:
    import formocr.read as read_mod
    from formocr.fusion import Reading
    from formocr.recognize.ctc import Constraint
    from formocr.recognize.strings import FieldStrips

    reader = _reader(_Judge(position=2, digit=9), window_below=0.95, window_weight=1.0)
    assert isinstance(reader, read_mod.FieldReader)
    sr = reader.strings
    assert sr is not None
    # evidence for "3141" read off a made-up strip: the string reader is unsure of its third digit
    lp = np.full((12, len(sr.alphabet) + 1), np.log(1e-4))
    lp[:, 0] = np.log(0.98)
    for t, ch in ((1, "3"), (4, "1"), (7, "4"), (10, "1")):
        lp[t] = np.log(1e-4)
        lp[t, sr.alphabet.index(ch) + 1] = np.log(0.99 if t != 7 else 0.6)
        if t == 7:
            lp[t, sr.alphabet.index("9") + 1] = np.log(0.39)
    ev = (lp.astype(np.float32),)
    strips = FieldStrips(ink=(np.zeros((32, 48), np.float32),), box=(np.zeros((32, 48), np.float32),))
    unsure = Reading("crnn", "3141", 0.6, (), True)
    four = Constraint(min_digits=4, max_digits=4)
    assert reader._window_judged(unsure, four, ev, strips) == "3191"
    # each window was cut where the string reader's own alignment put each character
    assert reader.windows.asked[-1] == [6.0, 18.0, 30.0, 42.0]  # type: ignore[union-attr]
    sure = Reading("crnn", "3141", 0.97, (), True)
    assert reader._window_judged(sure, four, ev, strips) is None
    # a judge that agrees with the reading leaves it alone
    reader.windows = _Judge(position=2, digit=4)  # type: ignore[assignment]
    assert reader._window_judged(unsure, four, ev, strips) is None


def test_the_pipeline_records_a_window_judged_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    import formocr.read as read_mod
    import formocr.recognize.windows as windows_mod
    from formocr.fusion import FusionRules
    from formocr.options import Options
    from formocr.pipeline import Pipeline

    jsonschema = pytest.importorskip("jsonschema")
    model = _random_window_model(tmp_path / "w.safetensors")
    # every reading is unsure enough and the judge prefers the largest digits: the wiring is under test
    monkeypatch.setattr(read_mod, "FusionRules", lambda: FusionRules(window_below=1.01, window_weight=1.0))
    monkeypatch.setattr(windows_mod, "window_evidence", lambda t, lp: 50.0 * sum(int(c) for c in t if c.isdigit()))
    plain = Pipeline(Options()).scan("samples/cheque.pdf").field("amount")
    pipe = Pipeline(Options(windows_model=str(model)))
    doc = pipe.scan("samples/cheque.pdf")
    assert doc.models["windows"].startswith("windows-test@sha256:")
    judged = doc.field("amount").readings["window_judge"]
    assert judged["from"] == plain.readings["crnn"]["raw"]
    assert doc.field("amount").readings["crnn"]["raw"] == judged["to"]
    assert len(judged["to"]) == len(judged["from"])
    assert sum(a != b for a, b in zip(judged["to"], judged["from"])) == 1
    schema = json.loads((Path(read_mod.__file__).parent / "schema" / "document.schema.json").read_text())
    jsonschema.validate(doc.to_dict(), schema)


def test_a_window_model_reading_strips_no_reader_makes_is_refused(tmp_path: Path) -> None:
    model = _random_window_model(tmp_path / "w.safetensors", input="colour")
    with pytest.raises(ModelError, match="reads 'colour' strips"):
        WindowReader.load(model)
