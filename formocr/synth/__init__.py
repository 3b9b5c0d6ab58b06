"""Synthetic handwriting and scanned forms with exact ground truth (samples, tests, benchmarks).

Everything is drawn by formocr's own pen-stroke renderer; no dataset image is used or shipped.
"""

from formocr.synth.degrade import Degrade
from formocr.synth.files import save_pdf, save_tiff, truth_dict, write_truth
from formocr.synth.forms import SynthPage, render_form
from formocr.synth.handwriting import Writer, render_char, render_digit, render_scribble, render_string
from formocr.synth.values import comb_text, random_value

__all__ = [
    "Degrade",
    "SynthPage",
    "Writer",
    "comb_text",
    "random_value",
    "render_char",
    "render_digit",
    "render_form",
    "render_scribble",
    "render_string",
    "save_pdf",
    "save_tiff",
    "truth_dict",
    "write_truth",
]
