"""Which template a page is: the built-in that registers best (:mod:`formocr.layout.register` does the fitting)."""

from __future__ import annotations

from dataclasses import replace

from formocr.errors import RegistrationError, TemplateError
from formocr.layout.frames import frame_length_mm
from formocr.layout.register import register
from formocr.layout.registration import Registration
from formocr.layout.strokes import page_lines
from formocr.layout.template import BUILTIN, Template, load_template
from formocr.objects import CleanPage, FieldRegion


def choose_registration(clean: CleanPage, candidates: list[Template] | None = None) -> tuple[Template, Registration]:
    """Register every candidate (built-ins by default) that could lie on the page, and keep the best.

    The page's aspect ratio says nothing when a form lies on a larger scanner bed, so candidates are judged by
    registration itself: among those that register and that :func:`accepts` (its fields' frames are there, not
    just lines that happen to lie where some of its frames would), the one whose frames explain the most printed
    line length (quality × frame length) wins. That is what separates a cheque from an envelope
    whose single comb resembles part of the cheque's account comb: both may fit, the cheque explains more.
    """
    temps = candidates if candidates is not None else [load_template(n) for n in BUILTIN]
    h, w = clean.gray.shape
    dpi = clean.page.dpi
    lines = page_lines(clean)
    best: tuple[float, Template, Registration] | None = None
    # Most frame length first: once a template explains more line length than the next one has in all, no
    # later candidate can win, and the rest are not tried.
    for t in sorted(temps, key=frame_length_mm, reverse=True):
        if best is not None and best[0] >= frame_length_mm(t):
            break
        tw, th = t.page_size_px(dpi)
        if tw * 0.88 > w * 1.25 or th * 0.88 > h * 1.25:
            continue  # even at the smallest scale, over a fifth of the form would lie off this page
        try:
            reg = register(clean, t, lines, give_up_below=GIVE_UP_BELOW)
        except RegistrationError:
            continue
        if not accepts(reg):
            continue
        explained = reg.quality * frame_length_mm(t)
        if best is None or explained > best[0]:
            best = (explained, t, reg)
    if best is None:
        # No template registers. This is where automatic field finding (no template) is to be tried before
        # giving up; until then the document fails as before.
        raise TemplateError(
            f"page {clean.page.number}: no built-in template fits this page ({w}×{h} px at {dpi:g} dpi); "
            "give --template",
            clean.page.source,
        )
    return best[1], best[2]


ACCEPT_QUALITY = 0.75  # the automatic choice: a built-in's frames found this well ...
ACCEPT_FIELDS = 0.9  # ... and this share of its fields' own frames; measured in benchmarks/template_acceptance.py
# A candidate fit below this after the per-field stage is not refined at the corners: on pages of other layouts
# the per-field quality was 0.29 (median), 0.51 (90th percentile), 0.64 at most; the fits that registered the
# built-ins' own scans had at least 0.99 there. About two thirds of the template choice's time on a stranger page.
GIVE_UP_BELOW = 0.5


def accepts(reg: Registration) -> bool:
    """Whether the automatic choice may take the page for ``reg``'s template: its frames, and its fields'
    frames, are really there. Over 200 generated pages of other layouts the best any reached was 0.655 quality
    with 2 of a cheque's 3 fields; the built-ins' own scans (30 each, stamps, scribbles, blur, skew) reached at
    least 0.854 with every field found (``benchmarks/template_acceptance.py``)."""
    fields = len(reg.per_field)
    return reg.quality >= ACCEPT_QUALITY and (fields == 0 or reg.found >= ACCEPT_FIELDS * fields)


def choose_template(clean: CleanPage, candidates: list[Template] | None = None
                    ) -> tuple[list[FieldRegion], Registration]:
    """The best-registering template's field regions in deskewed-page pixels, and its registration."""
    t, reg = choose_registration(clean, candidates)
    h, w = clean.gray.shape
    regions = [replace(r, box=reg.to_page_box(r.box, w, h)) for r in (f.region(clean.page.dpi) for f in t.fields)]
    return regions, reg
