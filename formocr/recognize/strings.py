"""The string reader: a CRNN (convolutions → bidirectional LSTM → per-column classes) trained with CTC.

It reads a whole field at once, without cutting it into digits first, so touching, overlapping and broken
digits that defeat connected-component segmentation are still read. The network keeps one column in four of a
32-pixel-high strip (:func:`formocr.normalize.normalize_line`) and is sized for the CPU: ≈0.5 M parameters,
≈0.25 M multiply-adds per input column.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from formocr.errors import ModelError
from formocr.normalize import DEFAULT_LINE_SPEC, LineSpec, grey_ink, normalize_line
from formocr.recognize.ctc import (
    Constraint,
    Decoded,
    align,
    best_path,
    constrained_beam,
    string_probabilities,
    string_probability,
)
from formocr.recognize.digits import conv_block, fold_batchnorm
from formocr.recognize.modelfile import (
    LoadedModel,
    load_model,
    member_weights,
    save_ensemble,
    save_model,
    shipped_model,
)

ARCH = "crnn-v1"
ALPHABET = "0123456789.,-/ "  # class k+1 is ALPHABET[k]; class 0 is the CTC blank
DEFAULT_WIDTHS = (16, 32, 64, 64, 96)
DEFAULT_HIDDEN = 96
# What a member reads (its meta "input", "ink" when absent): the binarized ink, how dark that ink is in grey, or how
# dark every pixel of the ink's box is (normalize.grey_ink, whole_box).
INPUTS = ("ink", "grey", "grey-box")
DEFAULT_MODEL = shipped_model("strings-crnn.safetensors")
# Views: the same ink drawn at these multiples of the model's own x_stretch. Each view errs differently (a narrow
# pair of touching digits splits at one width and merges at another), so candidates are taken from every view and
# judged by the mean of the views' probabilities. On 1000 held-out strings (shipped v1 model, CRNN alone):
# one view 87.8%, three views 89.4%, five 89.7%. With the shipped three-member ensemble the views matter less
# (benchmarks/strings_accuracy.py --split val --seed 2 --n 3000 --string-views N, fused / CRNN alone / accepted
# at 99.6-99.8% right / ms a string, one thread): 1 view 93.80 / 93.20 / 59.9% / 18.9; 3 views 94.03 / 93.33 /
# 56.6% / 36.6; 5 views 93.97 / 93.43 / 50.9% / 58.5 (run beside another job, so slower than the other two).
VIEW_STRETCH = (1.0, 0.88, 1.12, 0.77, 1.23)

Evidence = tuple[np.ndarray, ...]  # per view of one strip, T×classes log-probabilities; view 0 = the model's spec


def _views(ev: Evidence | np.ndarray) -> Evidence:
    """Evidence as a tuple of views, whether given as one array or already as views."""
    return (ev,) if isinstance(ev, np.ndarray) else ev


class CRNN(nn.Module):
    """32×W strip → (W/4)×classes logits."""

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, hidden: int = DEFAULT_HIDDEN,
                 n_classes: int = len(ALPHABET) + 1, height: int = 32) -> None:
        super().__init__()
        c1, c2, c3, c4, c5 = widths
        self.features = nn.Sequential(
            *conv_block(1, c1), nn.MaxPool2d(2),
            *conv_block(c1, c2), nn.MaxPool2d(2),
            *conv_block(c2, c3), *conv_block(c3, c4), nn.MaxPool2d((2, 1)),
            *conv_block(c4, c5), nn.MaxPool2d((2, 1)),
        )  # fmt: skip
        self.column_features = c5 * (height // 16)  # what the recurrent layer reads of each output column
        self.rnn = nn.LSTM(self.column_features, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def head(self, f: torch.Tensor) -> torch.Tensor:
        """Convolutional features (N×C×H'×T) → N×T×classes logits: the recurrent layer and the classifier."""
        y, _ = self.rnn(self.columns(f))
        return self.out(y)  # N×T×classes

    @staticmethod
    def columns(f: torch.Tensor) -> torch.Tensor:
        """Convolutional features (N×C×H'×T) → the N×T×(C·H') column sequence the recurrent layer reads."""
        n, c, h, t = f.shape
        return f.permute(0, 3, 1, 2).reshape(n, t, c * h)


@dataclass(frozen=True)
class StringReading:
    """What the string reader says about one field: the constrained reading and the unconstrained best path."""

    text: str
    confidence: float  # P(text | image) under the model, summed over all alignments
    char_probs: tuple[float, ...]
    char_columns: tuple[tuple[int, int], ...]  # per character, its span of input columns (strip pixels)
    best_path: str
    best_path_confidence: float
    satisfied: bool  # False when no reading satisfies the field's constraint (text is then the best path)


@dataclass(frozen=True)
class StripGeometry:
    """Where a strip came from in its ink crop, to map the reader's columns back to page pixels."""

    x0: int  # crop column of the strip's first ink column
    y0: int
    h: int  # height of the ink box in crop pixels; 0 when no ink is left (see ``blank``)
    sx: float  # strip columns per crop column
    pad: int

    @property
    def blank(self) -> bool:
        """No ink survived speck removal: there is nothing to read, and a CRNN shown an empty strip may still
        emit a digit (the shipped ensemble reads an empty strip as "1" at P 0.48)."""
        return self.h == 0

    def crop_x(self, col: float) -> float:
        return self.x0 + (col - self.pad) / self.sx


def field_strip(ink: np.ndarray, field_h_px: float, dpi: float, spec: LineSpec = DEFAULT_LINE_SPEC,
                gray: np.ndarray | None = None, whole_box: bool = False, lines: np.ndarray | None = None
                ) -> tuple[np.ndarray, StripGeometry]:
    """A field's ink (from :func:`formocr.segment.field_ink`) → the reader's input strip and its geometry.

    Specks are dropped first by the segmenter's own rule (:func:`formocr.segment.is_mark`), since one speck
    above the digits would otherwise shrink them in the strip. Given the crop's ``gray``, the strip shows how
    dark the kept ink is (:func:`formocr.normalize.grey_ink`) instead of the binarized ink, or with
    ``whole_box`` how dark every pixel of the kept ink's box is; its geometry is the same. Given the printed
    ``lines`` border removal took out, the grey has them painted out first, as :meth:`StringReader.field_strips`
    does for the box's grey (:func:`border_out`).
    """
    kept = _kept(ink, field_h_px, dpi)
    return _strip(kept, kept if gray is None else _painted_grey(gray, kept, whole_box, lines, dpi), spec)


# A printed border that runs through the ink's box (a stroke touches it) drew a bar across the whole grey-box strip,
# and over a flagged "1" that bar read as a 7. Painted out beyond this reach of the strokes, a stroke lying along the
# border near its digit stays. 0.5 mm, untrained (the shipped members saw borders in training), on
# benchmarks/pipeline_accuracy.py --pages 200: fields right 99.51% → 99.91%, accepted 96.09% → 97.24%; on the fair
# validation strings (strings_accuracy.py --split val --n 1500, seeds 1-4) fused 96.52% → 96.50% (mean)
# (measured with the rule patched in as an experiment; benchmarks/experiments/border_out.py R runs a benchmark
# with another reach).
BORDER_REACH_MM = 0.5


def border_out(gray: np.ndarray, kept: np.ndarray, lines: np.ndarray, dpi: float) -> np.ndarray:
    """``gray`` with the printed ``lines`` set to the paper's tone beyond :data:`BORDER_REACH_MM` of ``kept``."""
    lines = np.asarray(lines, bool)
    if lines.shape != kept.shape or not lines.any() or not kept.any():
        return gray
    r = max(1, round(BORDER_REACH_MM * dpi / 25.4))
    m = kept.astype(np.uint8)
    near = cv2.dilate(m, np.ones((2 * r + 1, 2 * r + 1), np.uint8)).astype(bool)
    free = ~lines & ~cv2.dilate(m, np.ones((3, 3), np.uint8)).astype(bool)
    g = np.array(gray, copy=True)
    g[lines & ~near] = np.median(g[free]) if free.any() else np.median(g)
    return g


def _painted_grey(gray: np.ndarray, kept: np.ndarray, whole_box: bool, lines: np.ndarray | None, dpi: float
                  ) -> np.ndarray:
    """:func:`grey_ink` of ``gray`` with the removed printed ``lines`` (when given) painted out first."""
    return grey_ink(gray if lines is None else border_out(gray, kept, lines, dpi), kept, whole_box)


def _kept(ink: np.ndarray, field_h_px: float, dpi: float) -> np.ndarray:
    """The field's ink without specks (the segmenter's own rule), which every view of it shares."""
    from formocr.segment import is_mark

    m = np.asarray(ink).astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(m, connectivity=8)
    keep = np.zeros(n, bool)
    for i in range(1, n):
        keep[i] = is_mark(int(stats[i, 2]), int(stats[i, 3]), int(stats[i, 4]), field_h_px, dpi / 25.4)
    return np.asarray(keep[labels])


def _strip(kept: np.ndarray, shown: np.ndarray, spec: LineSpec) -> tuple[np.ndarray, StripGeometry]:
    """``shown`` (the kept ink, or its grey) as one view's strip; the geometry is the kept ink's."""
    ys, xs = np.nonzero(kept)
    if len(ys) == 0:
        return normalize_line(kept, spec), StripGeometry(0, 0, 0, 1.0, spec.pad)
    w, h = int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)
    nw = min(max(1, round(w * spec.content / h * spec.x_stretch)), spec.max_width - 2 * spec.pad)
    return normalize_line(shown, spec), StripGeometry(int(xs.min()), int(ys.min()), h, nw / w, spec.pad)


def pad_batch(strips: Sequence[np.ndarray]) -> tuple[torch.Tensor, list[int]]:
    """Right-pad strips to a common width (blank background) → N×1×H×W tensor and the true widths."""
    h = strips[0].shape[0]
    w = max(s.shape[1] for s in strips)
    w = (w + 3) // 4 * 4
    x = np.zeros((len(strips), 1, h, w), np.float32)
    for i, s in enumerate(strips):
        x[i, 0, :, : s.shape[1]] = s
    return torch.from_numpy(x), [s.shape[1] for s in strips]


def log_probs(net: nn.Module, strips: Sequence[np.ndarray], batch_size: int = 32,
              device: torch.device | str = "cpu") -> list[np.ndarray]:
    """Run ``net`` (on ``device``) over strips batched by similar width; each result is trimmed to its own
    strip's columns."""
    net.eval()
    out: list[np.ndarray] = [np.zeros(0, np.float32)] * len(strips)
    order = sorted(range(len(strips)), key=lambda i: strips[i].shape[1])
    with torch.inference_mode():
        for k in range(0, len(order), batch_size):
            ids = order[k : k + batch_size]
            x, widths = pad_batch([strips[i] for i in ids])
            lp = torch.log_softmax(net(x.to(device)), dim=-1).cpu().numpy()
            for j, i in enumerate(ids):
                out[i] = lp[j, : max(1, (widths[j] + 3) // 4)]
    return out


def _members(meta: dict[str, Any], state: dict[str, torch.Tensor]
             ) -> list[tuple[tuple[int, ...], int, str, dict[str, torch.Tensor]]]:
    """(widths, hidden, input, weights) of each network in a model file: one, or the members of an ensemble."""
    return [(tuple(m["widths"]), int(m["hidden"]), str(m.get("input", "ink")), w)
            for m, w in member_weights(meta, state)]


@dataclass(frozen=True)
class FieldStrips:
    """One field's reader input: a strip per view of its binarized ink (empty when every member reads grey and
    the grey was given) and, for members that read grey, of the ink's grey, or of its whole box's grey (each
    empty when no member reads it, or when no grey was given: such members then read the ink)."""

    ink: tuple[np.ndarray, ...]
    grey: tuple[np.ndarray, ...] = ()
    box: tuple[np.ndarray, ...] = ()

    def of(self, kind: str) -> tuple[np.ndarray, ...]:
        """The strips of ``kind``; where they were not made, the ink's (a string member reads either)."""
        made = {"ink": self.ink, "grey": self.grey, "grey-box": self.box}[kind]
        return made or self.ink

    @property
    def views(self) -> int:
        return len(self.ink or self.grey or self.box)


class StringReader:
    """A loaded, verified CRNN (or an ensemble of CRNNs sharing one strip spec) ready for CPU inference.

    An ensemble's members each read every view; their log-probabilities are more views of the same field to
    :meth:`decode` and :meth:`score`, so nothing downstream knows how many networks there are.
    """

    def __init__(self, loaded: LoadedModel, views: int = 1) -> None:
        if not 1 <= views <= len(VIEW_STRETCH):
            raise ValueError(f"views: 1 to {len(VIEW_STRETCH)}, got {views}")
        meta = loaded.meta
        loaded.require_arch(ARCH)
        try:
            self.spec = LineSpec(**meta["line"])
            self.alphabet: str = meta["alphabet"]
            nets, inputs = [], []
            for widths, hidden, kind, state in _members(meta, loaded.state):
                if kind not in INPUTS:
                    raise ModelError(f"a member reads {kind!r}; this version reads {', '.join(INPUTS)}", loaded.path)
                inputs.append(kind)
                net = CRNN(widths, hidden, len(self.alphabet) + 1, self.spec.height)
                net.load_state_dict(state)
                net.eval()
                net.features = fold_batchnorm(net.features)
                # channels-last convolutions: the three members' forward pass 3.95 → 2.0-2.5 ms per strip (1 thread,
                # 300 strips), log-probabilities within 3e-5; the whole reading of a string 50.8 → 49.3 ms (2 threads,
                # strings_accuracy.py --n 300 --seed 3, same readings)
                nets.append(net.to(memory_format=torch.channels_last))  # type: ignore[call-overload]
        except (KeyError, RuntimeError, TypeError) as e:
            raise loaded.mismatch(e) from None
        if not nets:
            raise ModelError("an ensemble without members", loaded.path)
        torch.set_flush_denormal(True)
        self.nets = nets
        self.inputs = tuple(inputs)  # per member, what it reads
        self.loaded = loaded
        self.identity = loaded.identity
        self.views = tuple(replace(self.spec, x_stretch=self.spec.x_stretch * f) for f in VIEW_STRETCH[:views])

    @classmethod
    def load(cls, path: str | Path | None = None, views: int = 1) -> StringReader:
        return cls(load_model(path or DEFAULT_MODEL), views)

    def field_strips(self, ink: np.ndarray, field_h_px: float, dpi: float, gray: np.ndarray | None = None,
                     comb: bool = False, lines: np.ndarray | None = None) -> tuple[FieldStrips, StripGeometry]:
        """A field's ink as one strip per view (and per view of its grey, where a member reads grey and the
        crop's ``gray`` is given), and the geometry of view 0 (where character boxes are mapped).

        ``comb``: the field's cell walls lie inside the ink's box, and no string reader was trained on such
        walls (a wall reads like a "1"), so a member that reads the box's grey gets the ink's grey instead.
        ``lines``: the printed lines border removal took out of the crop (:func:`formocr.segment.field_cut`);
        in the box's grey they are painted to paper beyond :data:`BORDER_REACH_MM` of the kept ink.
        """
        kinds = set(self.inputs)
        kept = _kept(ink, field_h_px, dpi)
        shaded = grey_ink(gray, kept) if gray is not None and "grey" in kinds else None
        boxed = None
        if gray is not None and "grey-box" in kinds:
            boxed = _painted_grey(gray, kept, not comb, lines, dpi)
        inks = ([_strip(kept, kept, spec) for spec in self.views]
                if "ink" in kinds or gray is None else [])
        greys = [_strip(kept, shaded, spec) for spec in self.views] if shaded is not None else []
        boxes = [_strip(kept, boxed, spec) for spec in self.views] if boxed is not None else []
        geom = (inks or greys or boxes)[0][1]  # the kept ink's either way
        return FieldStrips(*(tuple(s for s, _ in made) for made in (inks, greys, boxes))), geom

    def evidence(self, strips: Sequence[FieldStrips | Sequence[np.ndarray]], batch_size: int = 32
                 ) -> list[Evidence]:
        """Per field (its :class:`FieldStrips`, or a list of view strips every member reads), the
        log-probabilities of every view by every member.

        The first entry is always the first member's view 0, whose geometry :meth:`field_strips` returns.
        """
        fields = [f if isinstance(f, FieldStrips) else FieldStrips(tuple(f)) for f in strips]
        per_net = []
        for net, kind in zip(self.nets, self.inputs):
            per_net.append(log_probs(net, [s for f in fields for s in f.of(kind)], batch_size))
        out, k = [], 0
        for f in fields:
            n = f.views
            out.append(tuple(lps[j] for lps in per_net for j in range(k, k + n)))
            k += n
        return out

    def read(self, strips: Sequence[np.ndarray], constraints: Sequence[Constraint | None] | None = None,
             beam: int = 8) -> list[StringReading]:
        """Read each strip (as given: one view, read by every member); a constraint steers the beam search."""
        cons = list(constraints) if constraints is not None else [None] * len(strips)
        return [self.decode(ev, c, beam) for ev, c in zip(self.evidence([[s] for s in strips]), cons)]

    def decode(self, ev: Evidence | np.ndarray, constraint: Constraint | None, beam: int = 8) -> StringReading:
        """The reading that satisfies ``constraint``; over several views, the candidate they believe most."""
        lps = _views(ev)
        if len(lps) == 1:
            return self._decode_one(lps[0], constraint, beam)
        # each view's own reading (its probabilities are not needed: every candidate is scored over all views)
        readings = [self._decode_one(lp, constraint, beam, probabilities=False) for lp in lps]
        texts = list(dict.fromkeys(r.text for r in readings))
        bp = readings[0].best_path
        probs = dict(zip([*texts, bp], self.scores(lps, [*texts, bp])))  # one forward pass a view for all of them
        ok = {r.text for r in readings if r.satisfied}
        text = max(texts, key=lambda t: (t in ok, probs[t]))
        return self.reading_of(lps, text, text in ok, probs[text], bp, probs[bp])

    def reading_of(self, ev: Evidence | np.ndarray, text: str, satisfied: bool, confidence: float | None = None,
                   best_path_text: str | None = None, best_path_confidence: float | None = None) -> StringReading:
        """``text`` as a reading of this evidence: its probability, and characters placed by view 0's alignment."""
        lps = _views(ev)
        al = align(lps[0], text, self.alphabet)
        bp = best_path_text if best_path_text is not None else best_path(lps[0], self.alphabet).text
        if confidence is None or best_path_confidence is None:
            confidence, best_path_confidence = self.scores(lps, [text, bp])
        return StringReading(
            text=text, confidence=confidence,
            char_probs=al.char_probs, char_columns=tuple((4 * a, 4 * b + 4) for a, b in al.char_frames),
            best_path=bp, best_path_confidence=best_path_confidence, satisfied=satisfied,
        )  # fmt: skip

    def _decode_one(self, lp: np.ndarray, constraint: Constraint | None, beam: int, probabilities: bool = True
                    ) -> StringReading:
        bp: Decoded = best_path(lp, self.alphabet)
        bp_conf = string_probability(lp, bp.text, self.alphabet) if probabilities else float("nan")
        dec = bp
        satisfied = constraint is None or constraint.accepts(bp.text)
        if not satisfied:  # the search costs ~5 ms a field in Python, so only when the best path breaks the rules
            assert constraint is not None
            found = constrained_beam(lp, self.alphabet, constraint, beam)
            if found is not None:
                dec, satisfied = found, True
        conf = (bp_conf if dec.text == bp.text or not probabilities
                else string_probability(lp, dec.text, self.alphabet))
        return StringReading(
            text=dec.text, confidence=conf, char_probs=dec.char_probs,
            char_columns=tuple((4 * a, 4 * b + 4) for a, b in dec.char_frames),
            best_path=bp.text, best_path_confidence=bp_conf, satisfied=satisfied,
        )  # fmt: skip

    def score(self, ev: Evidence | np.ndarray, text: str) -> float:
        """P(text | strip) for another reader's text: how much this model believes it (mean over the views)."""
        return self.scores(ev, [text])[0]

    def scores(self, ev: Evidence | np.ndarray, texts: Sequence[str]) -> list[float]:
        """:meth:`score` of several texts, one CTC forward pass a view for all of them."""
        lps = _views(ev)
        return [float(v) for v in np.mean([string_probabilities(lp, texts, self.alphabet) for lp in lps], axis=0)]

    def describe(self) -> dict[str, Any]:
        return {"identity": self.identity, "line": self.spec.to_dict(), "alphabet": self.alphabet,
                "views": [round(v.x_stretch, 4) for v in self.views], "members": len(self.nets)}


def combine(paths: Sequence[str | Path], out: str | Path, command: str | None = None) -> dict[str, Any]:
    """Write one model file holding several trained string models as an ensemble; returns its card.

    The members must share the strip spec and the alphabet (they then read the very same strips); each keeps its
    own widths, hidden size and input.
    """
    return save_ensemble(
        paths, out, arch=ARCH, shared=("line", "alphabet"), shared_name="strip spec or alphabet",
        member_keys=("widths", "hidden", "input"), task="handwritten digit string → text, CTC",
        ensemble="each member reads every view; decoding and scoring take the mean probability over all",
        figure="val_string_accuracy",
        command=command or f"formocr-train combine-strings {' '.join(str(p) for p in paths)} --out {out}")


def extract_member(path: str | Path, index: int, out: str | Path) -> dict[str, Any]:
    """Write member ``index`` of an ensemble as the single model it was trained as; returns its card.

    The weights file comes out byte for byte as its training run wrote it (its sha256 is the one the ensemble's
    card keeps for the member), so a later run can train on from a shipped member with ``--init``.
    """
    loaded = load_model(path)
    loaded.require_arch(ARCH)
    members = loaded.meta.get("members")
    if not members:
        raise ModelError("not an ensemble: it has no members to take out", loaded.path)
    if not 0 <= index < len(members):
        raise ModelError(f"member {index}: the ensemble has members 0 to {len(members) - 1}", loaded.path)
    widths, hidden, kind, state = _members(loaded.meta, loaded.state)[index]
    meta: dict[str, Any] = {"arch": ARCH, "widths": list(widths), "hidden": hidden,
                            "alphabet": loaded.meta["alphabet"], "line": loaded.meta["line"]}
    if kind != "ink":
        meta["input"] = kind
    card = dict(loaded.card.get("training", {}).get("members", [{}] * len(members))[index])
    card.pop("sha256", None)
    card["name"] = Path(out).name.removesuffix(".safetensors")
    save_model(out, state, meta, card)
    return load_model(out).card
