"""Marks the digit CNN calls "not a digit" at a field's ends: which leave the string reader's view too, and how a
digit such a mark took along (a "$" touching the amount's first digit) is read back.

A "$" before an amount resembles an 8 or a 5 to both readers. The digit CNN's reject class leaves it out of
segmentation; :func:`without_marks` paints it out of the string reader's grey as well. Where that was wrong (two
touching digits the CNN took for a blot, a "$" touching the first digit) both readers would lose a digit, so
:mod:`formocr.read` asks the string reader once more, with the mark in view, and compares (:func:`one_digit_before`).
"""

from __future__ import annotations

import cv2
import numpy as np

from formocr.objects import Box, Component

# A mark left out of the field at either end of it is also painted out of the string reader's input where the
# digit CNN gives "not a digit" at least this chance (a mark is left out where it is likelier than any one digit).
# Marks the CNN only leans against stay for the string reader, which may still read a digit the CNN doubted. Such
# a field then goes to review (two touching digits the CNN took for a blot would be lost to both readers) unless
# the string reader, reading the field once more with the mark in it, finds the very digits chosen: then two
# readers, not the CNN alone, have decided the mark away.
SURE_NOT_DIGIT = 0.9
# ... and the string reader, reading the field with the mark in it, confirms the reading only at least this sure
# of the very digits chosen (a split between "3685" and "83685" confirms nothing)
SURE_WITH_MARK = 0.9


def without_marks(cut: tuple[np.ndarray, Box, np.ndarray], gray: np.ndarray, marks: list[Component]
                  ) -> tuple[tuple[np.ndarray, Box, np.ndarray], np.ndarray]:
    """The field's ink and grey with the marks the digit CNN called "not a digit" taken out: they leave the field
    before the string reader too, which would otherwise read a "$" before an amount as the 8 it resembles. In
    the grey each mark (grown by two pixels, its soft edge) becomes the paper around it."""
    ink, box, lines = cut
    ink, gray = ink.copy(), np.array(gray, copy=True)
    gone = np.zeros(ink.shape, bool)
    for c in marks:
        x, y = c.box.x - box.x, c.box.y - box.y
        part = gone[max(0, y) : max(0, y + c.box.h), max(0, x) : max(0, x + c.box.w)]
        part |= c.mask[max(0, -y) : max(0, -y) + part.shape[0], max(0, -x) : max(0, -x) + part.shape[1]]
    ink[gone] = 0
    paper = ~cv2.dilate(np.asarray(cut[0] > 0, np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    grown = cv2.dilate(gone.astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool) & ~(ink > 0)
    if paper.any() and grown.any():
        gray[grown] = np.median(gray[paper])
    return (ink, box, lines), gray


def digits_of(text: str) -> str:
    """The digits of a reading, without its separators."""
    return "".join(ch for ch in text if ch.isdigit())


def one_digit_before(with_marks: str, chosen: str) -> bool:
    """Whether the reading with the marks in it holds one digit more than the chosen one, before the same digits."""
    a, b = digits_of(with_marks), digits_of(chosen)
    return len(b) > 0 and a[1:] == b


def end_mark(b: Box, digits: list[Box]) -> bool:
    """A mark before the first digit or after the last one, no wider than it is tall and taller than the digits
    (a "$" whose bar runs past them, a rule along the crop's side): not two touching digits the CNN took for one
    blot ("14", "81"), which the string reader may still read. With no digit left there is no end: the string
    reader keeps all it may read."""
    if not digits:
        return False
    before = all(b.x2 <= d.x + d.w // 2 for d in digits)
    after = all(b.x >= d.x + d.w // 2 for d in digits)
    return b.w <= b.h and b.h >= 1.1 * float(np.median([d.h for d in digits])) and (before or after)
