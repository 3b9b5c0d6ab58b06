"""What the ``formocr`` and ``formocr-train`` commands share: logging on stderr, errors as exit codes, atomic files.

Imported by both before torch: it sets ``OMP_WAIT_POLICY`` first.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from formocr.errors import ExitCode, FormOcrError

# Idle OpenMP threads must sleep, not spin: with data workers or batch workers on the same cores, spinning
# threads made training 40% slower here. Must be set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

__all__ = ["errors_to_exit_codes", "log", "setup_logging", "write_text_atomic"]


F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("formocr")


def setup_logging(verbose: int) -> None:
    """Logs go to stderr, one line each: stdout carries data only."""
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr, format="formocr: %(message)s")


def errors_to_exit_codes(fn: F) -> F:
    """Turn a FormOcrError into one line on stderr and its documented exit code; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except FormOcrError as e:
            click.echo(f"formocr: error: {e.one_line()}", err=True)
            sys.exit(e.exit_code)
        except KeyboardInterrupt:
            click.echo("formocr: interrupted", err=True)
            sys.exit(ExitCode.INTERRUPTED)

    return wrapper  # type: ignore[return-value]


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` through the one atomic writer (:func:`formocr.outputs.write_atomic`): temp file, fsync,
    rename, and only ever over a regular file."""
    from formocr.outputs import write_atomic

    write_atomic(path, lambda f: f.write(text))
