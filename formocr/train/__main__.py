"""``python -m formocr.train``: the same as the ``formocr-train`` command."""

from formocr.train.cli import main

main()
