"""The ``formocr`` command: a thin layer that parses options, calls the library, and maps errors to exit codes.

stdout carries data only (JSON); logs and progress go to stderr. Exit codes are listed in
:mod:`formocr.errors` and the README.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from formocr.errors import FormOcrError

# Idle OpenMP threads must sleep, not spin: with data workers or batch workers on the same cores, spinning
# threads made training 40% slower here. Must be set before torch is imported; a user's own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

F = TypeVar("F", bound=Callable[..., Any])
log = logging.getLogger("formocr")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING - 10 * verbose
    logging.basicConfig(level=max(level, logging.DEBUG), stream=sys.stderr, format="formocr: %(message)s")


def _errors_to_exit_codes(fn: F) -> F:
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
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="formocr")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Read handwritten digits on scanned forms into JSON."""
    _setup_logging(verbose)


@main.group()
def train() -> None:
    """Train the shipped models."""


@train.command("digits")
@click.option("--data", type=click.Path(file_okay=False), default=None,
              help="Folder with the MNIST idx files (default: $FORMOCR_MNIST or ../shared/datasets/mnist).")
@click.option("--epochs", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), default="models/digits-cnn.safetensors", show_default=True)
@click.option("--limit", type=click.IntRange(100, 60000), default=None, help="Use only N training images (quick runs).")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Torch threads; results are reproducible for the same seed and thread count.")
@_errors_to_exit_codes
def train_digits_cmd(data: str | None, epochs: int, seed: int, out: str, limit: int | None, threads: int) -> None:
    """Train the digit CNN on MNIST (deterministic for a seed) and write weights + card."""
    from formocr.train.digits import TrainConfig, train_digits

    logging.getLogger("formocr").setLevel(logging.INFO)
    command = "formocr train digits " + shlex.join(sys.argv[3:]) if len(sys.argv) > 3 else "formocr train digits"
    card = train_digits(TrainConfig(data=data, epochs=epochs, seed=seed, out=out, limit=limit, threads=threads),
                        command=command)
    click.echo(json.dumps({"model": str(Path(out)), "figures": card["figures"]}, indent=2))
