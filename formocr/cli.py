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


_mnist_data_option = click.option(
    "--data", type=click.Path(file_okay=False), default=None,
    help="Folder with the MNIST idx files (default: $FORMOCR_MNIST or ../shared/datasets/mnist).")


def _training_started(kind: str) -> str:
    """Log training progress, and return the command line as the model card records it."""
    logging.getLogger("formocr").setLevel(logging.INFO)
    return f"formocr train {kind} " + shlex.join(sys.argv[3:]) if len(sys.argv) > 3 else f"formocr train {kind}"


def _report(out: str, card: dict[str, Any]) -> None:
    """stdout gets the trained model's path and its measured figures, as JSON."""
    click.echo(json.dumps({"model": str(Path(out)), "figures": card["figures"]}, indent=2))


@train.command("digits")
@_mnist_data_option
@click.option("--epochs", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the model (a training run never writes the shipped one unless told to).")
@click.option("--limit", type=click.IntRange(100, 60000), default=None, help="Use only N training images (quick runs).")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Torch threads; results are reproducible for the same seed and thread count.")
@click.option("--split-seed", type=int, default=None,
              help="Hold out the 5000 images that `train strings --split-seed N` holds out (default: 5000 drawn "
                   "from --seed, the shipped model's split).")
@click.option("--cvl", type=click.Path(file_okay=False), default=None,
              help="CVL digits folder (default: $FORMOCR_CVL or ../shared/datasets/cvl-digits).")
@click.option("--real/--no-real", "use_cvl", default=True, show_default=True,
              help="Learn from CVL's real writers beside MNIST (--no-real: MNIST only).")
@click.option("--cvl-repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many times each CVL training digit is seen per epoch.")
@click.option("--reject-share", type=click.FloatRange(0.0, 0.9), default=0.12, show_default=True,
              help="Share of training tiles that are not digits (an eleventh class, 'reject'); 0: ten classes.")
@_errors_to_exit_codes
def train_digits_cmd(data: str | None, epochs: int, seed: int, out: str, limit: int | None, threads: int,
                     split_seed: int | None, cvl: str | None, use_cvl: bool, cvl_repeat: int,
                     reject_share: float) -> None:
    """Train the digit CNN on MNIST and CVL's real writers (deterministic for a seed) and write weights + card."""
    from formocr.train.digits import TrainConfig, train_digits

    command = _training_started("digits")
    card = train_digits(TrainConfig(data=data, epochs=epochs, seed=seed, out=out, limit=limit, threads=threads,
                                    split_seed=split_seed, cvl=cvl, use_cvl=use_cvl, cvl_repeat=cvl_repeat,
                                    reject_share=reject_share),
                        command=command)
    _report(out, card)


_STRING_WIDTHS = (16, 32, 64, 64, 96)  # = formocr.recognize.strings.DEFAULT_WIDTHS (not imported: torch)
_STRING_HIDDEN = 96


def _widths(text: str) -> tuple[int, ...]:
    try:
        w = tuple(int(v) for v in text.split(","))
    except ValueError:
        w = ()
    if len(w) != 5 or min(w) < 1:
        raise click.BadParameter(f"expected five positive integers, got {text!r}", param_hint="--widths")
    return w


@train.command("strings")
@_mnist_data_option
@click.option("--steps", type=click.IntRange(1, 10**7), default=6000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=48, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="Picks the 5000 held-out training images; keep it fixed across the members of an ensemble.")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the model (a training run never writes the shipped one unless told to).")
@click.option("--limit", type=click.IntRange(100, 60000), default=None, help="Use only N training images (quick runs).")
@click.option("--val-size", type=click.IntRange(10, 100000), default=1000, show_default=True)
@click.option("--val-every", type=click.IntRange(1, 10**7), default=500, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Torch threads; results are reproducible for the same seed, threads and workers.")
@click.option("--workers", type=click.IntRange(0, 64), default=1, show_default=True,
              help="Processes drawing the synthetic strings (0: in the training process).")
@click.option("--widths", default=",".join(map(str, _STRING_WIDTHS)), show_default=True,
              help="Channels of the five convolution blocks, comma-separated.")
@click.option("--hidden", type=click.IntRange(4, 4096), default=_STRING_HIDDEN, show_default=True,
              help="LSTM units per direction.")
@click.option("--banded/--no-banded", default=False, show_default=True,
              help="Batches of similar string lengths, CTC over each strip's own width (less padding computed).")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=2e-3, show_default=True,
              help="Peak learning rate of the one-cycle schedule.")
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="Train on from this string model (same shape and --split-seed) instead of random weights.")
@click.option("--channels-last/--no-channels-last", default=False, show_default=True,
              help="Channels-last convolutions: the same maths in another memory order, not bit-identical to "
                   "off; 1.45x faster on the project's 2-CPU machine (README).")
@click.option("--distort", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Warp each MNIST digit of the training strings (turn, shear, scale, elastic) by this strength.")
@click.option("--touching", type=click.FloatRange(0, 1), default=None,
              help="Ask this share of the training strings to touch and the rest not to, checked on the drawn ink "
                   "(default: the generator's own tendency, which about 40% follow).")
@click.option("--synth-share", type=click.FloatRange(0, 1), default=0.3, show_default=True,
              help="Share of the training strings' digits drawn by the project's stroke renderer instead of taken "
                   "from MNIST.")
@click.option("--bf16/--no-bf16", default=False, show_default=True,
              help="Convolutions in bfloat16 (autocast), for CPUs with AVX-512 BF16 or AMX; slower without.")
@click.option("--input", "input_", type=click.Choice(["ink", "grey", "grey-box"]), default="ink", show_default=True,
              help="Read the binarized ink, how dark that ink is in the grey image (keeps loops blur closes), or how "
                   "dark the ink's whole box is (keeps faint strokes and strokes along printed borders).")
@click.option("--borders-out/--borders-in", default=False, show_default=True,
              help="With --input grey-box: paint the removed printed borders out of the training strips away from "
                   "the strokes, as the pipeline shows them.")
@click.option("--device", type=click.Choice(["cpu", "cuda"]), default="cpu", show_default=True,
              help="Train on the CPU (deterministic for a seed, threads and workers) or an NVIDIA GPU (strips are "
                   "still drawn by --workers CPU processes; not bit-for-bit repeatable).")
@_errors_to_exit_codes
def train_strings_cmd(data: str | None, steps: int, batch_size: int, seed: int, split_seed: int, out: str,
                      limit: int | None,
                      val_size: int, val_every: int, threads: int, workers: int, widths: str, hidden: int,
                      banded: bool, lr: float, init: str | None, channels_last: bool, distort: float,
                      bf16: bool, input_: str, borders_out: bool, device: str, touching: float | None,
                      synth_share: float) -> None:
    """Train the string reader (CRNN + CTC) on synthetic strings of MNIST training digits; write weights + card."""
    from formocr.train.strings import StringTrainConfig, train_strings

    command = _training_started("strings")
    cfg = StringTrainConfig(data=data, steps=steps, batch_size=batch_size, seed=seed, split_seed=split_seed, out=out,
                            limit=limit,
                            val_size=val_size, val_every=val_every, threads=threads, workers=workers,
                            widths=_widths(widths), hidden=hidden, banded=banded, lr=lr, init=init,
                            channels_last=channels_last, bf16=bf16, distort=distort, input=input_,
                            borders_out=borders_out, device=device, touching=touching, synth_share=synth_share)
    card = train_strings(cfg, command=command)
    _report(out, card)


@train.command("combine-strings")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the model (a training run never writes the shipped one unless told to).")
@_errors_to_exit_codes
def combine_strings_cmd(models: tuple[str, ...], out: str) -> None:
    """Join trained string models into one ensemble model file (each member reads every view)."""
    from formocr.recognize.strings import combine

    card = combine(list(models), out, command="formocr train combine-strings " + shlex.join(sys.argv[3:]))
    _report(out, card)


@train.command("combine-digits")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the model (a training run never writes the shipped one unless told to).")
@_errors_to_exit_codes
def combine_digits_cmd(models: tuple[str, ...], out: str) -> None:
    """Join trained digit models into one ensemble model file (the mean of their calibrated probabilities)."""
    from formocr.recognize.digits import combine

    card = combine(list(models), out, command="formocr train combine-digits " + shlex.join(sys.argv[3:]))
    _report(out, card)


@train.command("real-strings")
@_mnist_data_option
@click.option("--init", type=click.Path(dir_okay=False), required=True,
              help="A single string model to train on from (`formocr train extract-member`).")
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@click.option("--steps", type=click.IntRange(1, 10**6), default=1500, show_default=True)
@click.option("--batch-size", type=click.IntRange(2, 1024), default=48, show_default=True)
@click.option("--real-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of each batch from real register lines; the rest strings composed of real digits.")
@click.option("--synth-share", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Share of the composed strings' digits drawn by the stroke renderer.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True)
@click.option("--val-every", type=click.IntRange(1, 10**6), default=250, show_default=True)
@click.option("--limit", type=click.IntRange(10, 10**6), default=None, help="Use only N cells and digits (quick runs).")
@click.option("--cvl", type=click.Path(file_okay=False), default=None, help="CVL digits folder.")
@click.option("--registers", type=click.Path(file_okay=False), default=None, help="Danish registers folder.")
@_errors_to_exit_codes
def train_real_strings_cmd(data: str | None, init: str, out: str, steps: int, batch_size: int, real_share: float,
                           synth_share: float, lr: float, seed: int, threads: int, val_every: int,
                           limit: int | None, cvl: str | None, registers: str | None) -> None:
    """Train a string model on from INIT on real register lines and strings of real digits."""
    from formocr.train.real_strings import RealStringConfig, train_real_strings

    command = _training_started("real-strings")
    card = train_real_strings(RealStringConfig(
        init=init, out=out, steps=steps, batch_size=batch_size, real_share=real_share, synth_share=synth_share,
        lr=lr, seed=seed, threads=threads, val_every=val_every, limit=limit, data=data, cvl=cvl,
        registers=registers), command=command)
    _report(out, card)


@train.command("extract-member")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--member", "index", type=click.IntRange(min=0), required=True, help="Which member, from 0.")
@click.option("--out", type=click.Path(dir_okay=False), required=True)
@_errors_to_exit_codes
def extract_member_cmd(model: str, index: int, out: str) -> None:
    """Write one member of an ensemble as the single model it was trained as (to train on from it with --init)."""
    from formocr.recognize.strings import extract_member

    card = extract_member(model, index, out)
    _report(out, card)


def _options(config: str | None, values: dict[str, Any]) -> Any:
    from formocr.options import Options

    given = {k: v for k, v in values.items() if v is not None}
    return Options.from_file(config, given) if config else Options.from_mapping(given)


def _write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and rename, so a crash never leaves a half-written result."""
    import tempfile

    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


@main.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path(readable=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(readable=False, path_type=Path), default=None,
              help="Write the JSON here (atomically; only a new or regular file) instead of stdout.")
@click.option("-t", "--template", default=None,
              help="Built-in template (cheque, envelope, numeric_form), a template JSON file, or 'auto' "
                   "(find boxes, combs and underlined blanks on the page itself). Default: the built-in "
                   "template that registers best on each page, else 'auto'.")
@click.option("--dpi", type=int, default=None, help="PDF rasterization resolution [default: 300].")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="JSON or TOML file of options (see README); flags given here win.")
@click.option("--debug-dir", type=click.Path(readable=False), default=None,
              help="Write per-page pictures: binarized page, overlay of what was read, the 28×28 tiles.")
@click.option("--model", "digits_model", type=click.Path(dir_okay=False), default=None,
              help="Digit model (.safetensors with its .card.json) [default: the shipped model].")
@click.option("--review-threshold", type=float, default=None,
              help="Fields below this confidence are marked needs_review [default: 0.95].")
@click.option("--compact", is_flag=True, help="One line of JSON per document (JSON Lines).")
@_errors_to_exit_codes
def scan(inputs: tuple[Path, ...], output: Path | None, template: str | None, dpi: int | None, config: str | None,
         debug_dir: str | None, digits_model: str | None, review_threshold: float | None, compact: bool) -> None:
    """Read the handwritten digits of each field of INPUTS (PDF, PNG, JPEG, BMP, TIFF) and print JSON.

    One input prints one JSON document; several print one document per line (JSON Lines). A file that fails
    is reported on stderr and the others are still read; the exit code is then that file's (or 8 if several
    files failed). A page that cannot be registered to its template carries an "error" in the JSON and no
    fields; the document is still printed whole, and the exit code is 10 (8 with several inputs).
    """
    from formocr.errors import OutputError
    from formocr.io import check_output, check_output_dir, write_atomic, write_stdout
    from formocr.pipeline import Pipeline

    opts = _options(config, {"template": template, "dpi": dpi, "debug_dir": debug_dir,
                             "digits_model": digits_model, "review_threshold": review_threshold})
    if output is not None:
        check_output(output)  # a device, FIFO or folder is refused before anything is read
    if opts.debug_dir:
        check_output_dir(opts.debug_dir, "debug folder")
    pipeline = Pipeline(opts)
    docs: list[str] = []
    failures: list[FormOcrError] = []
    page_codes: list[int] = []  # per document printed with a failed page (registration: 10), its first code
    one_line = compact or len(inputs) > 1
    for path in inputs:
        try:
            doc = pipeline.scan(path)
        except FormOcrError as e:
            click.echo(f"formocr: error: {e.one_line()}", err=True)
            failures.append(e)
            continue
        except OSError as e:  # the loader maps its own; one left is the debug folder's (disk full, removed...)
            if opts.debug_dir and str(e.filename or "").startswith(str(opts.debug_dir)):
                raise OutputError(f"cannot write the debug pictures ({e.strerror or e})", opts.debug_dir) from None
            raise
        text = json.dumps(doc.to_dict(), ensure_ascii=False, indent=None if one_line else 2)
        if output is None:
            write_stdout(text + "\n")  # a full disk or closed pipe: one line, exit 7
        docs.append(text)
        for f in doc.fields:
            if f.needs_review:
                log.info("%s: field %s needs review: %s", path, f.name, "; ".join(f.why))
        codes = []
        for p in doc.pages:
            if p.error is not None:
                click.echo(f"formocr: error: {p.error.get('message', '')}", err=True)
                codes.append(int(p.error.get("exit_code", 1)))
        page_codes += codes[:1]
    if output is not None and docs:
        write_atomic(output, lambda f: f.write("\n".join(docs) + "\n"))
    codes = [e.exit_code for e in failures] + page_codes
    if codes:
        sys.exit(codes[0] if len(inputs) == 1 else 8)


@main.group("eval")
def eval_group() -> None:
    """Measure the shipped models, or results against values people keyed in."""


@eval_group.command("digits")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="MNIST folder (as for training).")
@click.option("--model", type=click.Path(dir_okay=False), default=None, help="Model [default: the shipped one].")
@click.option("--crops", type=click.IntRange(0, 10000), default=10000, show_default=True,
              help="How many test digits to re-render as scanned crops and read through the pipeline (0: skip).")
@click.option("--no-speed", is_flag=True, help="Skip the throughput measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
@click.option("--write-card", is_flag=True,
              help="Record the report in the model's card under 'evaluation' (the weights are untouched).")
@_errors_to_exit_codes
def eval_digits_cmd(data: str | None, model: str | None, crops: int, no_speed: bool, as_json: bool,
                    write_card: bool) -> None:
    """Accuracy, confusion matrix, calibration and throughput of the digit model on MNIST test digits."""
    from formocr.recognize.digits import DigitClassifier
    from formocr.recognize.modelfile import card_path
    from formocr.train.evaluate import evaluate_digits, format_report

    clf = DigitClassifier.load(model)
    report = evaluate_digits(clf, data, crops=crops, speed=not no_speed)
    if write_card:
        card = dict(clf.loaded.card)
        command = "formocr eval digits " + shlex.join(sys.argv[3:])
        card["evaluation"] = {"command": command.strip(), **report}
        _write_atomic(card_path(clf.loaded.path), json.dumps(card, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report, indent=2))
        click.echo(format_report(report), err=True)
    else:
        click.echo(format_report(report))


@eval_group.command("results")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--truth", "truth_files", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Keyed values: a CSV with the columns source, page, field, value, or a formocr *.truth.json "
                   "file, or a folder of them. Give it again for more.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="The options file the results were read with (its review thresholds are used).")
@click.option("--review-threshold", type=float, default=None,
              help="The review threshold the results were read with [default: 0.95].")
@click.option("--target", type=click.FloatRange(0.5, 1, min_open=True, max_open=True), default=0.995,
              show_default=True, help="Accuracy the accepted fields must reach, for the recommended threshold.")
@click.option("--match", type=click.Choice(["exact", "digits"]), default="exact", show_default=True,
              help="exact: a keyed value must equal the field's value or its normalized form; digits: the same "
                   "digits, separators aside (values keyed as 03112026 for 03/11/2026).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout (tables on stderr).")
@_errors_to_exit_codes
def eval_results_cmd(results: tuple[Path, ...], truth_files: tuple[Path, ...], config: str | None,
                     review_threshold: float | None, target: float, match: str, as_json: bool) -> None:
    """Score RESULTS (formocr scan output or a batch results file) against values people keyed in: accuracy, the
    share accepted without review and how often an accepted field is wrong, per review threshold."""
    from formocr.score import format_report, load_results, load_truth, score

    opts = _options(config, {"review_threshold": review_threshold})
    report = score(load_truth(truth_files), load_results(results), opts.review_threshold,
                   opts.char_review_threshold, target, match).to_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        click.echo(format_report(report), err=True)
    else:
        click.echo(format_report(report))


@main.group()
def data() -> None:
    """Datasets used for training and evaluation."""


@data.command("mnist")
@click.option("--dir", "folder", type=click.Path(file_okay=False), default=None,
              help="Where the files are or go [default: $FORMOCR_MNIST or ../shared/datasets/mnist].")
@click.option("--download", is_flag=True, help="Fetch missing files from the mirror, verifying checksums.")
@click.option("--mirror", default=None, help="Base URL of the mirror.")
@_errors_to_exit_codes
def data_mnist(folder: str | None, download: bool, mirror: str | None) -> None:
    """Check (and optionally download) the MNIST idx files."""
    from formocr.data import mnist

    target = Path(folder) if folder else mnist.default_dir()
    if download:
        mnist.download(target, mirror or mnist.DEFAULT_MIRROR)
    report = {}
    for split in ("train", "test"):
        s = mnist.load_split(split, target)
        report[split] = {"n": len(s.labels), "sha256": s.sha256}
    click.echo(json.dumps({"dir": str(target), **report}, indent=2))


# --- batch (issue #6) --------------------------------------------------------------------------------------


def _sigterm_as_interrupt(signum: int, frame: Any) -> None:
    """SIGTERM ends a batch like Ctrl-C: workers stopped, results so far kept, exit 130."""
    raise KeyboardInterrupt


@main.command()
@click.argument("in_dir", type=click.Path(path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(readable=False, path_type=Path),
              help="Results file (JSON Lines, one record per document). An existing one is resumed: "
                   "documents already done (same path, same content) are skipped; any other existing file is "
                   "refused and left as it is.")
@click.option("-w", "--workers", type=click.IntRange(1, 4096), default=None,
              help="Worker processes (Ray: actors) [default: the CPU count; with --address, the cluster's CPUs].")
@click.option("--engine", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="local: processes on this machine; ray: actors on a Ray cluster (pip install 'formocr[ray]').")
@click.option("--address", default=None,
              help="Ray cluster to join (host:6379 or ray://host:10001) [default: a local Ray instance].")
@click.option("--glob", "pattern", default=None,
              help="Read the files matching this pattern under IN_DIR (e.g. '**/*.pdf'), whatever their extension "
                   "[default: every PDF/PNG/JPEG/BMP/TIFF file, walking subfolders].")
@click.option("--retry-failed", is_flag=True,
              help="Also redo documents recorded as unreadable, corrupt or fitting no template (other errors, "
                   "such as a crashed worker, are always retried).")
@click.option("--csv", "csv_path", type=click.Path(readable=False, path_type=Path), default=None,
              help="Also write the field values as CSV at the end (as `formocr export csv`).")
@click.option("--summary-json", type=click.Path(readable=False, path_type=Path), default=None,
              help="Write the run's summary (counts, speed, failures, fields to review) as JSON.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=None,
              help="Seconds a document may take once a worker starts it; one over it gets a Timeout error record "
                   "(exit code 4, kept on a rerun like other content errors) and the batch goes on [default: no "
                   "limit; local engine only].")
@click.option("--progress/--no-progress", "show_progress", default=None,
              help="Progress bar on stderr [default: only when stderr is a terminal].")
@click.option("-t", "--template", default=None,
              help="Built-in template (cheque, envelope, numeric_form), a template JSON file, or 'auto' "
                   "[default: the best-registering built-in template per page, else 'auto'].")
@click.option("--dpi", type=int, default=None, help="PDF rasterization resolution [default: 300].")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="JSON or TOML file of options (see README); flags given here win.")
@click.option("--model", "digits_model", type=click.Path(dir_okay=False), default=None,
              help="Digit model (.safetensors with its .card.json) [default: the shipped model].")
@click.option("--review-threshold", type=float, default=None,
              help="Fields below this confidence are marked needs_review [default: 0.95].")
@_errors_to_exit_codes
def batch(in_dir: Path, output: Path, workers: int | None, engine: str, address: str | None, pattern: str | None,
          retry_failed: bool, csv_path: Path | None, summary_json: Path | None, timeout: float | None,
          show_progress: bool | None, template: str | None, dpi: int | None, config: str | None,
          digits_model: str | None, review_threshold: float | None) -> None:
    """Read every document of the folder IN_DIR into one JSON Lines file, in parallel and resumably.

    One line per document, appended as each finishes (completion order, not sorted); a document that fails
    gets a line with its error and the run goes on. Run the same command again to finish an interrupted
    run: documents already done are skipped. A summary goes to stderr; the exit code is 8 when any
    document of the folder failed.
    """
    import signal
    import threading

    from formocr.batch import BatchConfig, Progress, export_csv, run_batch
    from formocr.errors import EXIT_BATCH_FAILURES
    from formocr.io import check_output, write_atomic

    opts = _options(config, {"template": template, "dpi": dpi, "digits_model": digits_model,
                             "review_threshold": review_threshold})
    # Outputs written at the end are checked now: a device or folder must not cost a whole run first.
    for extra, what in ((csv_path, "CSV"), (summary_json, "summary")):
        if extra is not None:
            check_output(extra, what=what)
    cfg = BatchConfig(input_dir=in_dir, output=output, workers=workers, engine=engine, address=address,
                      pattern=pattern, retry_failed=retry_failed, timeout=timeout,
                      exclude=tuple(p for p in (csv_path, summary_json) if p is not None))
    progress = Progress(enabled=show_progress, verbose=log.isEnabledFor(logging.INFO))
    main_thread = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGTERM, _sigterm_as_interrupt) if main_thread else None
    try:
        summary = run_batch(cfg, opts, progress)
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, old)
    if csv_path is not None:
        export_csv(output, csv_path)
    if summary_json is not None:
        text = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(summary_json, lambda f: f.write(text), what="summary")
    click.echo(f"formocr: batch: {summary.one_line()}", err=True)
    if summary.failed:
        sys.exit(EXIT_BATCH_FAILURES)


@main.group("export")
def export_group() -> None:
    """Convert batch results for other tools."""


@export_group.command("csv")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(readable=False, path_type=Path), default=None,
              help="CSV file to write (atomically; only a new or regular file) [default: stdout].")
@_errors_to_exit_codes
def export_csv_cmd(results: Path, output: Path | None) -> None:
    """Field values of a batch RESULTS file as CSV: one row per document, one column per field.

    Columns: source, sha256, status, pages, needs_review (the field columns to check), error, then one
    column per field name (``p2.amount`` when a name repeats on several pages). Cells that a spreadsheet
    would run as a formula get a leading apostrophe.
    """
    from formocr.batch import export_csv
    from formocr.batch.export import write_csv
    from formocr.io import stdout_error

    if output is None:
        try:
            write_csv(results, sys.stdout)
            sys.stdout.flush()
        except OSError as e:  # reading errors are ResultsFileErrors: this is stdout (a full disk, a closed pipe)
            raise stdout_error(e) from None
    else:
        rows = export_csv(results, output)
        click.echo(f"formocr: {rows} rows -> {output}", err=True)


@main.group("template")
def template_group() -> None:
    """Make form templates."""


@template_group.command("from-image")
@click.argument("image", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Template JSON to write (atomically).")
@click.option("--name", default=None, help="The template's name [default: the image's file name].")
@click.option("--dpi", type=click.IntRange(50, 2400), default=None,
              help="The image's resolution, overriding the file's own [default: the file's, else 300].")
@_errors_to_exit_codes
def template_from_image_cmd(image: Path, output: Path, name: str | None, dpi: int | None) -> None:
    """Make a template from a BLANK form IMAGE (first page): every box, comb and underline becomes a field.

    Fields are named field_1, field_2, ... in reading order, type digits, boxes in millimetres; edit the names,
    types and constraints afterwards.
    """
    from formocr.layout.detect import template_from_file
    from formocr.layout.template import parse_template

    template = template_from_file(image, dpi=dpi, name=name)
    data = template.to_dict()
    parse_template(data, str(output))  # what we write must load back
    _write_atomic(output, json.dumps(data, indent=1) + "\n")
    click.echo(f"formocr: {len(template.fields)} fields -> {output}", err=True)
