"""The staged pipeline: load → preprocess → locate → segment → normalize → classify → assemble.

Each stage is a plain function in its own module; this one strings them together page by page (a document is
never held in memory whole), times each stage, and turns readings into :class:`FieldResult` objects with a
confidence a person can act on.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formocr import __version__
from formocr.fields import interpret
from formocr.io import LoadLimits, load_pages
from formocr.layout.locate import Alignment, align, choose_template
from formocr.layout.template import Template, load_template
from formocr.normalize import normalize_digit
from formocr.objects import (
    CharResult,
    CleanPage,
    Component,
    DigitReading,
    Document,
    FieldRegion,
    FieldResult,
    Page,
    PageResult,
)
from formocr.options import Options
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.recognize.digits import DigitClassifier
from formocr.segment import arbitrate, segment_field


@dataclass
class _Timer:
    totals: dict[str, float]

    def add(self, stage: str, t0: float) -> float:
        now = time.perf_counter()
        self.totals[stage] = self.totals.get(stage, 0.0) + (now - t0) * 1000.0
        return now


@dataclass(frozen=True)
class PageWork:
    """Everything the pipeline learnt about one page; the debug writer draws from it."""

    clean: CleanPage
    alignment: Alignment
    regions: tuple[FieldRegion, ...]
    components: dict[str, list[Component]]
    tiles: dict[str, np.ndarray]
    result: PageResult


class Pipeline:
    """Holds the loaded model and options so a batch of documents pays for loading once."""

    def __init__(self, options: Options | None = None, classifier: DigitClassifier | None = None) -> None:
        self.options = options or Options()
        self.classifier = classifier or DigitClassifier.load(self.options.digits_model)
        self._template: Template | None = (
            load_template(self.options.template) if self.options.template else None
        )
        # Speckle is removed per field by the segmenter, against the size of the field's own digits; a
        # page-wide pass would cost a full-page labelling (~45 ms of a 300-dpi letter page) for nothing.
        self.pre = PreprocessOptions(
            deskew=self.options.deskew, max_skew_deg=self.options.max_skew_deg, binarizer=self.options.binarizer,
            speckle_mm=0.0,
        )

    @property
    def limits(self) -> LoadLimits:
        return LoadLimits(max_pixels=self.options.max_pixels, max_pages=self.options.max_pages)

    def iter_pages(self, source: str | Path | np.ndarray, timer: _Timer) -> Iterator[PageWork]:
        t = time.perf_counter()
        pages = iter(load_pages(source, dpi=self.options.dpi, limits=self.limits))
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            finally:
                t = timer.add("load", t)
            yield self.process_page(page, timer)
            t = time.perf_counter()

    def _confidence(self, masks: list[np.ndarray]) -> np.ndarray:
        """Top-class probability of each mask, for the segmenter's doubtful cuts."""
        return self.classifier.probabilities(np.stack([normalize_digit(m) for m in masks])).max(axis=1)

    def process_page(self, page: Page, timer: _Timer) -> PageWork:
        t = time.perf_counter()
        clean = preprocess(page, self.pre)
        t = timer.add("preprocess", t)
        if self._template is not None:
            regions, alignment = align(clean, self._template)
        else:
            regions, alignment = choose_template(clean)
        t = timer.add("locate", t)
        comps = {r.name: arbitrate(segment_field(clean, r), self._confidence) for r in regions}
        t = timer.add("segment", t)
        tiles = {
            name: np.stack([normalize_digit(c.mask) for c in cs if c.kind == "digit"])
            if any(c.kind == "digit" for c in cs)
            else np.zeros((0, 28, 28), np.float32)
            for name, cs in comps.items()
        }
        t = timer.add("normalize", t)
        allt = np.concatenate(list(tiles.values())) if tiles else np.zeros((0, 28, 28), np.float32)
        readings = self.classifier.classify(allt)
        t = timer.add("classify", t)
        fields = []
        k = 0
        for region in regions:
            n = len(tiles[region.name])
            fields.append(self.assemble_field(region, comps[region.name], readings[k : k + n]))
            k += n
        result = PageResult(
            number=page.number, width=page.width, height=page.height, dpi=page.dpi,
            skew_deg=clean.skew_deg, template=alignment.template, fields=tuple(fields),
            alignment=alignment.to_dict(),
        )  # fmt: skip
        timer.add("assemble", t)
        return PageWork(clean, alignment, tuple(regions), comps, tiles, result)

    def assemble_field(self, region: FieldRegion, comps: list[Component], readings: list[DigitReading]
                       ) -> FieldResult:
        """Join digits and separators, validate by field type, and decide whether a person must look."""
        chars: list[CharResult] = []
        it = iter(readings)
        for c in comps:
            if c.kind == "digit":
                r = next(it)
                chars.append(CharResult(str(r.label), r.prob, r.top3, c.box))
            else:
                assert c.char is not None
                chars.append(CharResult(c.char, 1.0, ((c.char, 1.0),), c.box))
        raw = "".join(ch.char for ch in chars)
        interp = interpret(region.type, raw, region.constraints, comb=region.style == "comb")
        digit_ps = [ch.p for ch in chars if ch.char.isdigit()]
        confidence = float(np.prod(digit_ps)) if digit_ps else 0.0
        why = list(interp.problems)
        if digit_ps and confidence < self.options.review_threshold:
            why.append(f"confidence {confidence:.3f} below {self.options.review_threshold}")
        low = [i for i, ch in enumerate(chars) if ch.p < self.options.char_review_threshold]
        if low:
            why.append("unsure of character(s) at position " + ", ".join(str(i + 1) for i in low))
        if interp.problems:
            confidence = min(confidence, 0.5)
        return FieldResult(
            name=region.name, type=region.type, value=interp.value, raw=raw, confidence=confidence,
            needs_review=bool(why), why=tuple(why), box=region.box, chars=tuple(chars),
            normalized=interp.normalized,
        )  # fmt: skip

    def scan(self, source: str | Path | np.ndarray, debug_dir: str | Path | None = None) -> Document:
        timer = _Timer(defaultdict(float))
        pages = []
        debug = debug_dir or self.options.debug_dir
        for work in self.iter_pages(source, timer):
            pages.append(work.result)
            if debug:
                from formocr.debug import write_debug

                t = time.perf_counter()
                write_debug(Path(debug), source, work)
                timer.add("debug", t)
        src = "<array>" if isinstance(source, np.ndarray) else str(source)
        return Document(
            source=src, pages=tuple(pages), models={"digits": self.classifier.identity},
            timings_ms=dict(timer.totals), version=__version__,
        )  # fmt: skip


def scan(source: str | Path | np.ndarray, template: str | None = None, options: Options | None = None,
         **option_values: object) -> Document:
    """Read every field of every page of ``source`` (a path, or a page as a numpy array)."""
    opts = options or Options()
    if template is not None or option_values:
        opts = opts.replace(**({"template": template} if template is not None else {}), **option_values)
    return Pipeline(opts).scan(source)
