"""The staged pipeline: load → preprocess → locate → segment → normalize → classify → assemble.

Each stage is a plain function in its own module; this one strings them together page by page (a document is
never held in memory whole), times each stage, and turns readings into :class:`FieldResult` objects with a
confidence a person can act on.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from formocr import __version__
from formocr.calibration import SHIPPED as SHIPPED_CALIBRATION
from formocr.calibration import FieldCalibration, load_calibration
from formocr.errors import ModelError, RegistrationError, TemplateError
from formocr.io import load_pages
from formocr.layout.detect import find_fields
from formocr.layout.locate import choose_registration
from formocr.layout.register import register
from formocr.layout.registration import Registration, warp_fields
from formocr.layout.template import Template, load_template
from formocr.limits import LoadLimits
from formocr.objects import Box, CleanPage, Component, Document, FieldRegion, Page, PageResult
from formocr.options import Options
from formocr.preprocess import preprocess, reading_preprocess
from formocr.read import FieldReader
from formocr.recognize.digits import DigitClassifier
from formocr.recognize.strings import StringReader
from formocr.timing import StageTimer

log = logging.getLogger("formocr")


@dataclass(frozen=True)
class PageWork:
    """Everything the pipeline learnt about one page; the debug writer draws from it.

    Boxes (regions, components, results) are in deskewed-page pixels, like ``clean``; ``registration`` is None
    for a page that could not be registered (its result then carries the error and no fields).
    """

    clean: CleanPage
    registration: Registration | None
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
            strings = StringReader.load(self.options.strings_model, self.options.string_views)
        self.strings = strings
        self.reader = FieldReader(self.options, self.classifier, strings, self._calibration())
        self._auto = self.options.template == "auto"
        self._template: Template | None = (
            load_template(self.options.template) if self.options.template and not self._auto else None
        )
        self.pre = reading_preprocess(self.options)

    def _calibration(self) -> FieldCalibration | None:
        """The field calibration fitted to the models in use: the one named in the options (an error if it was
        fitted to others), else the shipped one where it fits; ``"none"``: fusion's own confidence stands, as it does
        where no calibration fits."""
        named = self.options.calibration not in (None, "none")
        cal = load_calibration(str(self.options.calibration)) if named else None  # checked even where unused
        if self.strings is None or self.options.reader != "fused" or self.options.calibration == "none":
            return None
        digits, strings = self.classifier.loaded.sha256, self.strings.loaded.sha256
        if cal is not None:
            if not cal.fits(digits, strings):
                raise ModelError("this field calibration was fitted to other models than those in use",
                                 str(self.options.calibration))
            return cal
        if not SHIPPED_CALIBRATION.exists():
            log.warning("no field calibration beside the shipped models (%s): confidences are fusion's own, "
                        "uncalibrated", SHIPPED_CALIBRATION)
            return None
        cal = load_calibration(SHIPPED_CALIBRATION)
        if cal.fits(digits, strings):
            return cal
        log.warning("the shipped field calibration does not fit these models: confidences are fusion's own, "
                    "uncalibrated (formocr-train calibrate-fields fits one)")
        return None

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
        try:
            if self._auto:
                return self._read_auto(clean, timer)
            if self._template is not None:
                template, reg = self._template, register(clean, self._template)
            else:
                try:
                    template, reg = choose_registration(clean)
                except TemplateError:
                    # No built-in form: find the boxes, combs and underlined blanks people wrote in.
                    return self._read_auto(clean, timer, fallback=True)
        except RegistrationError as e:
            # This page alone fails: report why, read the document's other pages.
            timer.lap("locate")
            result = PageResult(
                number=page.number, width=page.width, height=page.height, dpi=page.dpi, skew_deg=clean.skew_deg,
                template=self._template.name if self._template else None, fields=(),
                alignment={"template": self._template.name} if self._template else {},
                error={"type": type(e).__name__, "message": e.one_line(), "exit_code": e.exit_code},
            )  # fmt: skip
            return PageWork(clean, None, (), {}, {}, result)
        # Fields are read in the template frame (frames axis-aligned at their nominal boxes) ...
        framed, nominal = warp_fields(clean, reg, template)
        timer.lap("locate")
        works = self.reader.read(framed, nominal, timer)
        # ... and reported in the deskewed page's pixels.
        h, w = clean.gray.shape

        def back(box: Box) -> Box:
            return reg.to_page_box(box, w, h)

        result = PageResult(
            number=page.number, width=page.width, height=page.height, dpi=page.dpi,
            skew_deg=clean.skew_deg, template=reg.template, fields=tuple(x.result.mapped(back) for x in works),
            alignment=reg.to_dict(),
        )  # fmt: skip
        regions = tuple(replace(r, box=back(r.box)) for r in nominal)
        comps = {x.region.name: [replace(c, box=back(c.box)) for c in x.components] for x in works}
        return PageWork(clean, reg, regions, comps, {x.region.name: x.tiles for x in works}, result)

    def _read_auto(self, clean: CleanPage, timer: StageTimer, fallback: bool = False) -> PageWork:
        """Automatic mode: fields found on the page itself (no template), read where they lie."""
        page = clean.page
        regions = find_fields(clean)
        if not regions and fallback:
            h, w = clean.gray.shape
            raise TemplateError(
                f"page {page.number}: no built-in template fits this page ({w}×{h} px at {page.dpi:g} dpi) and "
                "no filled box, comb or underlined field was found on it; give --template",
                page.source,
            )
        timer.lap("locate")
        works = self.reader.read(clean, regions, timer)
        result = PageResult(
            number=page.number, width=page.width, height=page.height, dpi=page.dpi, skew_deg=clean.skew_deg,
            template="auto", fields=tuple(x.result for x in works),
            alignment={"template": "auto", "fields_found": len(regions)},
        )  # fmt: skip
        return PageWork(clean, None, tuple(regions), {x.region.name: x.components for x in works},
                        {x.region.name: x.tiles for x in works}, result)

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
    with _PIPELINES_LOCK:  # models load once per process and options, not once per call
        pipe = _PIPELINES.get(opts)
        if pipe is None:
            pipe = _PIPELINES[opts] = Pipeline(opts)
    return pipe.scan(source)


_PIPELINES: dict[Options, Pipeline] = {}
_PIPELINES_LOCK = threading.Lock()
