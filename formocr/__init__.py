"""formocr: read handwritten digits on scanned forms into trustworthy JSON.

The Python API::

    import formocr
    doc = formocr.scan("cheque.pdf")             # every field of every page
    doc.field("amount").value, doc.field("amount").needs_review
    formocr.read_field(crop, "amount", decimals=2)              # one field cut out by your own layout code
    formocr.read_postal_code("envelope.jpg")                  # a whole envelope or the postal-code boxes
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from formocr.api import FieldReaderAPI, read_field, read_postal_code
from formocr.errors import FormOcrError
from formocr.objects import CharResult, Document, FieldResult, PageResult, PostalCode
from formocr.options import Options

__version__ = "0.1.0"


def scan(source: str | Path | np.ndarray, template: str | None = None, options: Options | None = None,
         **option_values: Any) -> Document:
    """Read every field of ``source`` (path or numpy page image); see :func:`formocr.pipeline.scan`."""
    from formocr.pipeline import scan as _scan

    return _scan(source, template=template, options=options, **option_values)


__all__ = [
    "CharResult",
    "Document",
    "FieldReaderAPI",
    "FieldResult",
    "FormOcrError",
    "Options",
    "PageResult",
    "PostalCode",
    "__version__",
    "read_field",
    "read_postal_code",
    "scan",
]
