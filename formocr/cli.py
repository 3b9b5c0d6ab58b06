"""The ``formocr`` command: a thin layer that parses options, calls the library, and maps errors to exit codes.

stdout carries data only (JSON); logs and progress go to stderr. Exit codes are
:class:`formocr.errors.ExitCode`. Training has its own command, ``formocr-train`` (:mod:`formocr.train.cli`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from pathlib import Path
from typing import Any

import click

from formocr.cliutil import errors_to_exit_codes, log, setup_logging, write_text_atomic
from formocr.errors import ExitCode, FormOcrError


@click.group()
@click.version_option(package_name="formocr")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Read handwritten digits on scanned forms into JSON."""
    setup_logging(verbose)


def _options(config: str | None, values: dict[str, Any]) -> Any:
    from formocr.options import Options

    given = {k: v for k, v in values.items() if v is not None}
    return Options.from_file(config, given) if config else Options.from_mapping(given)


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
              help="Fields below this confidence are marked needs_review [default: 0.995].")
@click.option("--compact", is_flag=True, help="One line of JSON per document (JSON Lines).")
@errors_to_exit_codes
def scan(inputs: tuple[Path, ...], output: Path | None, template: str | None, dpi: int | None, config: str | None,
         debug_dir: str | None, digits_model: str | None, review_threshold: float | None, compact: bool) -> None:
    """Read the handwritten digits of each field of INPUTS (PDF, PNG, JPEG, BMP, TIFF) and print JSON.

    One input prints one JSON document; several print one document per line (JSON Lines). A file that fails
    is reported on stderr and the others are still read; the exit code is then that file's (or 8 if several
    files failed). A page that cannot be registered to its template carries an "error" in the JSON and no
    fields; the document is still printed whole, and the exit code is 10 (8 with several inputs).
    """
    from formocr.errors import OutputError
    from formocr.objects import is_document
    from formocr.outputs import check_output_dir, check_replaceable, write_atomic, write_stdout
    from formocr.pipeline import Pipeline

    opts = _options(config, {"template": template, "dpi": dpi, "debug_dir": debug_dir,
                             "digits_model": digits_model, "review_threshold": review_threshold})
    if output is not None:  # a device, a folder, an input or a user's own file is refused before anything is read
        check_replaceable(output, "output", is_document, [(p, "an input") for p in inputs])
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
                codes.append(int(p.error.get("exit_code", ExitCode.INTERNAL)))
        page_codes += codes[:1]
    if output is not None and docs:
        write_atomic(output, lambda f: f.write("\n".join(docs) + "\n"))
    codes = [e.exit_code for e in failures] + page_codes
    if codes:
        sys.exit(codes[0] if len(inputs) == 1 else ExitCode.BATCH_FAILURES)


@main.group("eval")
def eval_group() -> None:
    """Measure results against values people keyed in."""


@eval_group.command("results")
@click.argument("results", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--truth", "truth_files", multiple=True, required=True, type=click.Path(path_type=Path),
              help="Keyed values: a CSV with the columns source, page, field, value, or a formocr *.truth.json "
                   "file, or a folder of them. Give it again for more.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="The options file the results were read with (its review thresholds are used).")
@click.option("--review-threshold", type=float, default=None,
              help="The review threshold the results were read with [default: 0.995].")
@click.option("--target", type=click.FloatRange(0.5, 1, min_open=True, max_open=True), default=0.995,
              show_default=True, help="Accuracy the accepted fields must reach, for the recommended threshold.")
@click.option("--match", type=click.Choice(["exact", "digits"]), default="exact", show_default=True,
              help="exact: a keyed value must equal the field's value or its normalized form; digits: the same "
                   "digits, separators aside (values keyed as 03112026 for 03/11/2026).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON on stdout (tables on stderr).")
@errors_to_exit_codes
def eval_results_cmd(results: tuple[Path, ...], truth_files: tuple[Path, ...], config: str | None,
                     review_threshold: float | None, target: float, match: str, as_json: bool) -> None:
    """Score RESULTS (formocr scan output or a batch results file) against values people keyed in: accuracy, the
    share accepted without review and how often an accepted field is wrong, per review threshold."""
    from formocr.score import format_report, score
    from formocr.scorefiles import load_results, load_truth

    opts = _options(config, {"review_threshold": review_threshold})
    report = score(load_truth(truth_files), load_results(results), opts.review_threshold,
                   opts.char_review_threshold, target, match).to_dict()
    if as_json:
        click.echo(json.dumps(report, indent=2, ensure_ascii=False))
        click.echo(format_report(report), err=True)
    else:
        click.echo(format_report(report))


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
              help="Fields below this confidence are marked needs_review [default: 0.995].")
@errors_to_exit_codes
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
    from formocr.batch.export import is_csv
    from formocr.batch.runner import is_summary
    from formocr.errors import OutputError
    from formocr.outputs import check_replaceable, write_atomic

    opts = _options(config, {"template": template, "dpi": dpi, "digits_model": digits_model,
                             "review_threshold": review_threshold})
    # Outputs written at the end are checked now, and again before they are written: a device, a folder, the
    # results file or a user's own file must not cost a whole run first, nor be replaced after it.
    extras = [(p, what, ours) for p, what, ours in ((csv_path, "CSV", is_csv), (summary_json, "summary", is_summary))
              if p is not None]

    def check_extras() -> None:
        if csv_path is not None and summary_json is not None and csv_path.resolve() == summary_json.resolve():
            raise OutputError("--csv and --summary-json name the same file; give each its own", csv_path)
        for extra, what, ours in extras:
            if extra.resolve() == output.resolve():  # also a results file not made yet
                raise OutputError(f"is the results file (-o); give the {what} another file name", extra)
            check_replaceable(extra, what, ours, [(output, "the results file")])

    check_extras()
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
    check_extras()  # a file made there during the run is the user's
    if csv_path is not None:
        export_csv(output, csv_path)
    if summary_json is not None:
        text = json.dumps(summary.to_dict(), indent=2, ensure_ascii=False) + "\n"
        write_atomic(summary_json, lambda f: f.write(text), what="summary")
    click.echo(f"formocr: batch: {summary.one_line()}", err=True)
    if summary.failed:
        sys.exit(ExitCode.BATCH_FAILURES)


@main.group("export")
def export_group() -> None:
    """Convert batch results for other tools."""


@export_group.command("csv")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", type=click.Path(readable=False, path_type=Path), default=None,
              help="CSV file to write (atomically; only a new or regular file) [default: stdout].")
@errors_to_exit_codes
def export_csv_cmd(results: Path, output: Path | None) -> None:
    """Field values of a batch RESULTS file as CSV: one row per document, one column per field.

    Columns: source, sha256, status, pages, needs_review (the field columns to check), keyed (the field columns
    a clerk answered in ``formocr review``: their cells hold the keyed value), error, then one column per field
    name (``p2.amount`` when a name repeats on several pages). Cells that a spreadsheet would run as a formula
    get a leading apostrophe.
    """
    from formocr.batch import export_csv
    from formocr.batch.export import is_csv, write_csv
    from formocr.outputs import check_replaceable, stdout_error

    if output is not None:  # before reading RESULTS: never RESULTS itself, nor a user's own file
        check_replaceable(output, "CSV", is_csv, [(results, "the results file")])
    if output is None:
        try:
            write_csv(results, sys.stdout)
            sys.stdout.flush()
        except OSError as e:  # reading errors are ResultsFileErrors: this is stdout (a full disk, a closed pipe)
            raise stdout_error(e) from None
    else:
        rows = export_csv(results, output)
        click.echo(f"formocr: {rows} rows -> {output}", err=True)


@export_group.command("corrections")
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Folder to write the data set into (created; files already there are never replaced).")
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the documents of a batch were read from [default: beside RESULTS].")
@click.option("--config", type=click.Path(dir_okay=False), default=None, help="The options file of the scan.")
@errors_to_exit_codes
def export_corrections_cmd(results: Path, output: Path, root: Path | None, config: str | None) -> None:
    """Fields keyed in ``formocr review`` as a labelled data set: each field's crop (PNG, cut from its document
    as the scan saw it) and labels.csv (file, source, page, field, type, value keyed, value read)."""
    from formocr.review.dataset import export_corrections

    n = export_corrections(results, output, root, _options(config, {}))
    click.echo(f"formocr: {n} labelled crops -> {output}", err=True)


@main.command()
@click.argument("results", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--root", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Folder the documents of a batch were read from [default: beside RESULTS].")
@click.option("--port", type=click.IntRange(0, 65535), default=0, show_default=True,
              help="Port on 127.0.0.1 (0: a free one).")
@click.option("--open", "open_browser", is_flag=True, help="Open the page in the default browser.")
@click.option("--config", type=click.Path(dir_okay=False), default=None,
              help="The options file the results were read with (crops are cleaned up the same way).")
@errors_to_exit_codes
def review(results: Path, root: Path | None, port: int, open_browser: bool, config: str | None) -> None:
    """Settle every field of RESULTS (a scan JSON or a batch results file) that needs review, in a browser.

    Serves a page on 127.0.0.1 and prints its address, with a random token, on stdout. Each answer is appended
    to RESULTS.corrections.jsonl at once (kill the server at any moment: nothing typed is lost, and the next
    review resumes where this one stopped); ``export csv`` and ``eval results`` take the answers into account.
    Stop it with Ctrl+C.
    """
    from formocr.review.server import ReviewSession, serve

    session = ReviewSession.open(results, root, _options(config, {}))
    try:
        if not session.items:
            click.echo(f"formocr: no field of {results} needs review", err=True)
            return
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl+C is how a review ends: every answer is on disk
            serve(session, port, open_browser)
        click.echo(f"formocr: review stopped; the answers are in {session.corrections.path}", err=True)
    finally:
        session.close()


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
@errors_to_exit_codes
def template_from_image_cmd(image: Path, output: Path, name: str | None, dpi: int | None) -> None:
    """Make a template from a BLANK form IMAGE (first page): every box, comb and underline becomes a field.

    Fields are named field_1, field_2, ... in reading order, type digits, boxes in millimetres; edit the names,
    types and constraints afterwards.
    """
    from formocr.layout.from_image import template_from_file
    from formocr.layout.template import parse_template
    from formocr.outputs import check_replaceable

    check_replaceable(output, "template", None, [(image, "the image")])  # a template edited since is the user's
    template = template_from_file(image, dpi=dpi, name=name)
    data = template.to_dict()
    parse_template(data, str(output))  # what we write must load back
    write_text_atomic(output, json.dumps(data, indent=1) + "\n")
    click.echo(f"formocr: {len(template.fields)} fields -> {output}", err=True)
