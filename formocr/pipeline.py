"""The staged pipeline: load → preprocess → locate → segment → normalize → classify → assemble.

Each stage is a plain function in its own module; this one strings them together page by page (a document is
never held in memory whole), times each stage, and turns readings into :class:`FieldResult` objects with a
confidence a person can act on.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from formocr import __version__
from formocr.io import LoadLimits, load_pages
from formocr.layout.locate import Alignment, align, choose_template
from formocr.layout.template import Template, load_template
from formocr.objects import CleanPage, Component, Document, FieldRegion, Page, PageResult
from formocr.options import Options
from formocr.preprocess import PreprocessOptions, preprocess
from formocr.read import FieldReader
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.strings import StringReader
from formocr.timing import StageTimer


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

    def __init__(self, options: Options | None = None, classifier: DigitClassifier | None = None,
                 strings: StringReader | None = None) -> None:
        self.options = options or Options()
        self.classifier = classifier or DigitClassifier.load(self.options.digits_model)
        if strings is None and self.options.reader != "segmentation":
            strings = StringReader.load(self.options.strings_model)
        self.strings = strings
        self.reader = FieldReader(self.options, self.classifier, strings)
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
    def models(self) -> dict[str, str]:
        out = {"digits": self.classifier.identity}
        if self.strings is not None:
            out["strings"] = self.strings.identity
        return out

    @property
    def limits(self) -> LoadLimits:
        return LoadLimits(max_pixels=self.options.max_pixels, max_pages=self.options.max_pages)

    def iter_pages(self, source: str | Path | np.ndarray, timer: StageTimer) -> Iterator[PageWork]:
        timer.restart()
        pages = iter(load_pages(source, dpi=self.options.dpi, limits=self.limits))
        while True:
            try:
                page = next(pages)
            except StopIteration:
                break
            finally:
                timer.lap("load")
            yield self.process_page(page, timer)
            timer.restart()

    def process_page(self, page: Page, timer: StageTimer) -> PageWork:
        timer.restart()
        clean = preprocess(page, self.pre)
        timer.lap("preprocess")
        if self._template is not None:
            regions, alignment = align(clean, self._template)
        else:
            regions, alignment = choose_template(clean)
        timer.lap("locate")
        works = self.reader.read(clean, regions, timer)
        result = PageResult(
            number=page.number, width=page.width, height=page.height, dpi=page.dpi,
            skew_deg=clean.skew_deg, template=alignment.template, fields=tuple(w.result for w in works),
            alignment=alignment.to_dict(),
        )  # fmt: skip
        return PageWork(clean, alignment, tuple(regions), {w.region.name: w.components for w in works},
                        {w.region.name: w.tiles for w in works}, result)

    def scan(self, source: str | Path | np.ndarray, debug_dir: str | Path | None = None) -> Document:
        timer = StageTimer()
        pages = []
        debug = debug_dir or self.options.debug_dir
        for work in self.iter_pages(source, timer):
            pages.append(work.result)
            if debug:
                from formocr.debug import write_debug

                timer.restart()
                write_debug(Path(debug), source, work)
                timer.lap("debug")
        src = "<array>" if isinstance(source, np.ndarray) else str(source)
        return Document(
            source=src, pages=tuple(pages), models=self.models,
            timings_ms=dict(timer.totals), version=__version__,
        )  # fmt: skip


def scan(source: str | Path | np.ndarray, template: str | None = None, options: Options | None = None,
         **option_values: object) -> Document:
    """Read every field of every page of ``source`` (a path, or a page as a numpy array)."""
    opts = options or Options()
    if template is not None or option_values:
        opts = opts.replace(**({"template": template} if template is not None else {}), **option_values)
    return Pipeline(opts).scan(source)
