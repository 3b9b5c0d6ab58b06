"""``python -m formocr``: the same as the ``formocr`` command."""

from formocr.cli import main

main()
