"""The ``formocr-train`` command: train, combine and measure the models, and check the datasets.

Apart from ``formocr`` (which reads forms, as kraken has ``kraken`` to read and ``ketos`` to train) so that reading
never imports training or synthesis code. Model cards record the command line that made them
(``formocr-train KIND ...``). Errors become one line on stderr and their :class:`~formocr.errors.ExitCode`.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import click

from formocr.cliutil import errors_to_exit_codes, setup_logging, write_text_atomic


@click.group()
@click.version_option(package_name="formocr")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Train and measure formocr's models (the ``formocr`` command reads forms)."""
    setup_logging(verbose)


_mnist_data_option = click.option(
    "--data", type=click.Path(file_okay=False), default=None,
    help="Folder with the MNIST idx files (default: $FORMOCR_MNIST or ../shared/datasets/mnist).")
_out_option = click.option(
    "--out", type=click.Path(dir_okay=False), required=True,
    help="Where to write the model (a training run never writes the shipped one unless told to).")


def _training_started(kind: str) -> str:
    """Log training progress, and return the command line as the model card records it."""
    logging.getLogger("formocr").setLevel(logging.INFO)
    return f"formocr-train {kind} " + shlex.join(sys.argv[2:]) if len(sys.argv) > 2 else f"formocr-train {kind}"


def _report(out: str, card: dict[str, Any]) -> None:
    """stdout gets the trained model's path and its measured figures, as JSON."""
    click.echo(json.dumps({"model": str(Path(out)), "figures": card["figures"]}, indent=2))


@main.command("digits")
@_mnist_data_option
@click.option("--epochs", type=click.IntRange(1, 1000), default=30, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@_out_option
@click.option("--limit", type=click.IntRange(100, 60000), default=None, help="Use only N training images (quick runs).")
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True,
              help="Torch threads; results are reproducible for the same seed and thread count.")
@click.option("--split-seed", type=int, default=None,
              help="Hold out the 5000 images that `formocr-train strings --split-seed N` holds out (default: 5000 "
                   "drawn from --seed, the shipped model's split).")
@click.option("--cvl", type=click.Path(file_okay=False), default=None,
              help="CVL digits folder (default: $FORMOCR_CVL or ../shared/datasets/cvl-digits).")
@click.option("--real/--no-real", "use_cvl", default=True, show_default=True,
              help="Learn from CVL's real writers beside MNIST (--no-real: MNIST only).")
@click.option("--cvl-repeat", type=click.IntRange(1, 20), default=3, show_default=True,
              help="How many times each CVL training digit is seen per epoch.")
@click.option("--reject-share", type=click.FloatRange(0.0, 0.9), default=0.12, show_default=True,
              help="Share of training tiles that are not digits (an eleventh class, 'reject'); 0: ten classes.")
@click.option("--init", type=click.Path(dir_okay=False), default=None,
              help="Train on from this single digit network (same shape, classes and held-out images: the "
                   "same --seed or --split-seed); give a lower --lr.")
@click.option("--lr", type=click.FloatRange(1e-6, 1.0), default=3e-3, show_default=True, help="Peak learning rate.")
@click.option("--continental", type=click.FloatRange(0.0, 1.0), default=0.3, show_default=True,
              help="Share of MNIST's 7s drawn barred (and half as many of its 0s slashed and 3s flat-topped), as "
                   "continental writers write them.")
@errors_to_exit_codes
def train_digits_cmd(data: str | None, epochs: int, seed: int, out: str, limit: int | None, threads: int,
                     split_seed: int | None, cvl: str | None, use_cvl: bool, cvl_repeat: int,
                     reject_share: float, init: str | None, lr: float, continental: float) -> None:
    """Train the digit CNN on MNIST and CVL's real writers (deterministic for a seed) and write weights + card."""
    from formocr.train.digits import TrainConfig, train_digits

    command = _training_started("digits")
    card = train_digits(TrainConfig(data=data, epochs=epochs, seed=seed, out=out, limit=limit, threads=threads,
                                    split_seed=split_seed, cvl=cvl, use_cvl=use_cvl, cvl_repeat=cvl_repeat,
                                    reject_share=reject_share, init=init, lr=lr, continental=continental),
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


@main.command("strings")
@_mnist_data_option
@click.option("--steps", type=click.IntRange(1, 10**7), default=6000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1, 4096), default=48, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--split-seed", type=int, default=0, show_default=True,
              help="Picks the 5000 held-out training images; keep it fixed across the members of an ensemble.")
@_out_option
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
@errors_to_exit_codes
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


@main.command("combine-strings")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_out_option
@errors_to_exit_codes
def combine_strings_cmd(models: tuple[str, ...], out: str) -> None:
    """Join trained string models into one ensemble model file (each member reads every view)."""
    from formocr.recognize.strings import combine

    card = combine(list(models), out, command="formocr-train combine-strings " + shlex.join(sys.argv[2:]))
    _report(out, card)


@main.command("combine-digits")
@click.argument("models", nargs=-1, required=True, type=click.Path(dir_okay=False))
@_out_option
@errors_to_exit_codes
def combine_digits_cmd(models: tuple[str, ...], out: str) -> None:
    """Join trained digit models into one ensemble model file (the mean of their calibrated probabilities)."""
    from formocr.recognize.digits import combine

    card = combine(list(models), out, command="formocr-train combine-digits " + shlex.join(sys.argv[2:]))
    _report(out, card)


@main.command("real-strings")
@_mnist_data_option
@click.option("--init", type=click.Path(dir_okay=False), required=True,
              help="A single string model to train on from (`formocr-train extract-member`).")
@_out_option
@click.option("--steps", type=click.IntRange(1, 10**6), default=1500, show_default=True)
@click.option("--batch-size", type=click.IntRange(2, 1024), default=48, show_default=True)
@click.option("--real-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Share of each batch from real register lines; the rest strings composed of real digits.")
@click.option("--synth-share", type=click.FloatRange(0, 1), default=0.15, show_default=True,
              help="Share of the composed strings' digits drawn by the stroke renderer.")
@click.option("--cvl-repeat", type=click.IntRange(1, 20), default=1, show_default=True,
              help="How many times each CVL training digit stands in the composed strings' bank (MNIST: 55,000).")
@click.option("--currency-share", type=click.FloatRange(0, 1), default=0.0, show_default=True,
              help="Share of the composed strings written after a \"$\", labelled without it.")
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=5e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--threads", type=click.IntRange(1, 256), default=2, show_default=True)
@click.option("--val-every", type=click.IntRange(1, 10**6), default=250, show_default=True)
@click.option("--limit", type=click.IntRange(10, 10**6), default=None, help="Use only N cells and digits (quick runs).")
@click.option("--cvl", type=click.Path(file_okay=False), default=None, help="CVL digits folder.")
@click.option("--registers", type=click.Path(file_okay=False), default=None, help="Danish registers folder.")
@errors_to_exit_codes
def train_real_strings_cmd(data: str | None, init: str, out: str, steps: int, batch_size: int, real_share: float,
                           synth_share: float, cvl_repeat: int, currency_share: float, lr: float, seed: int,
                           threads: int, val_every: int, limit: int | None, cvl: str | None,
                           registers: str | None) -> None:
    """Train a string model on from INIT on real register lines and strings of real digits."""
    from formocr.train.real_strings import RealStringConfig, train_real_strings

    command = _training_started("real-strings")
    card = train_real_strings(RealStringConfig(
        init=init, out=out, steps=steps, batch_size=batch_size, real_share=real_share, synth_share=synth_share,
        cvl_repeat=cvl_repeat, currency_share=currency_share, lr=lr, seed=seed, threads=threads, val_every=val_every,
        limit=limit, data=data, cvl=cvl, registers=registers), command=command)
    _report(out, card)


@main.command("calibrate-fields")
@click.option("--out", type=click.Path(dir_okay=False), required=True,
              help="Where to write the calibration (never the shipped one unless told to).")
@click.option("--digits-model", type=click.Path(dir_okay=False), default=None, help="[default: the shipped one]")
@click.option("--strings-model", type=click.Path(dir_okay=False), default=None, help="[default: the shipped one]")
@click.option("--limit", type=click.IntRange(10, 10**6), default=None, help="At most N register cells of each part.")
@click.option("--strings", "n_strings", type=click.IntRange(0, 10**5), default=1000, show_default=True,
              help="CVL strings composed for each half (as many again read with their length given).")
@click.option("--digits", "n_digits", type=click.IntRange(0, 3500), default=1500, show_default=True,
              help="CVL digits read as one-digit fields, for each half.")
@click.option("--l2", type=click.FloatRange(min=0), default=1.0, show_default=True, help="Ridge on the weights.")
@click.option("--cvl", type=click.Path(file_okay=False), default=None, help="CVL digits folder.")
@click.option("--registers", type=click.Path(file_okay=False), default=None, help="Danish registers folder.")
@errors_to_exit_codes
def calibrate_fields_cmd(out: str, digits_model: str | None, strings_model: str | None, limit: int | None,
                         n_strings: int, n_digits: int, l2: float, cvl: str | None, registers: str | None) -> None:
    """Fit the field calibration of a pair of models on real development fields (half A), confirm on half B."""
    import time

    from formocr.api import FieldReaderAPI
    from formocr.options import Options
    from formocr.train import fieldcal

    command = _training_started("calibrate-fields")
    t0 = time.perf_counter()
    api = FieldReaderAPI(Options(digits_model=digits_model, strings_model=strings_model, calibration="none"))
    strings = api.pipeline.strings
    if strings is None:
        raise click.UsageError("the field calibration needs a string model")
    fields = [*fieldcal.register_fields(api, limit, registers, whole_cells=False),
              *fieldcal.row_fields(api, limit, registers),
              *fieldcal.cvl_string_fields(api, n_strings, folder=cvl),
              *fieldcal.cvl_string_fields(api, n_strings, folder=cvl, length_given=True),
              *fieldcal.cvl_digit_fields(api, n_digits, folder=cvl)]
    models = {"digits": api.pipeline.classifier.loaded.sha256, "strings": strings.loaded.sha256}
    cal, n_fit = fieldcal.fit_fields(fields, models, l2)
    card = fieldcal.card_for(command, fields, cal, n_fit, time.perf_counter() - t0)
    fieldcal.write_calibration(out, cal, card)
    click.echo(json.dumps({"calibration": out, "fitted_on": n_fit, "uncalibrated_B": card["uncalibrated_B"],
                           "calibrated_B": card["calibrated_B"]}, indent=2))


@main.command("extract-member")
@click.argument("model", type=click.Path(dir_okay=False))
@click.option("--member", "index", type=click.IntRange(min=0), required=True, help="Which member, from 0.")
@_out_option
@errors_to_exit_codes
def extract_member_cmd(model: str, index: int, out: str) -> None:
    """Write one member of an ensemble as the single model it was trained as (to train on from it with --init)."""
    from formocr.recognize.strings import extract_member

    card = extract_member(model, index, out)
    _report(out, card)


@main.group("eval")
def eval_group() -> None:
    """Measure the shipped models on their datasets."""


@eval_group.command("digits")
@click.option("--data", type=click.Path(file_okay=False), default=None, help="MNIST folder (as for training).")
@click.option("--model", type=click.Path(dir_okay=False), default=None, help="Model [default: the shipped one].")
@click.option("--crops", type=click.IntRange(0, 10000), default=10000, show_default=True,
              help="How many test digits to re-render as scanned crops and read through the pipeline (0: skip).")
@click.option("--no-speed", is_flag=True, help="Skip the throughput measurement.")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout.")
@click.option("--write-card", is_flag=True,
              help="Record the report in the model's card under 'evaluation' (the weights are untouched).")
@errors_to_exit_codes
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
        command = "formocr-train eval digits " + shlex.join(sys.argv[3:])
        card["evaluation"] = {"command": command.strip(), **report}
        write_text_atomic(card_path(clf.loaded.path), json.dumps(card, indent=2) + "\n")
    if as_json:
        click.echo(json.dumps(report, indent=2))
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
@errors_to_exit_codes
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

