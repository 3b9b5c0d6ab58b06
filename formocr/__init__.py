"""formocr: read handwritten digits on scanned forms into trustworthy JSON."""

from formocr.errors import FormOcrError

__version__ = "0.1.0"

__all__ = ["FormOcrError", "__version__"]
