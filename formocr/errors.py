"""Typed errors of formocr, and the exit codes they end the process with.

Every error a user can cause derives from :class:`FormOcrError`; each class carries the :class:`ExitCode` the CLI
returns for it, so the library never decides how the process ends and the CLI never guesses. The codes (also
documented in the README) are defined here only: :class:`ExitCode`.
"""

from __future__ import annotations

from enum import IntEnum
from pathlib import Path


class ExitCode(IntEnum):
    """The exit codes of ``formocr`` and ``formocr-train``; ints, so they go to ``sys.exit`` and JSON as they are."""

    SUCCESS = 0
    INTERNAL = 1  # unexpected internal error (a bug: please report it)
    USAGE = 2  # bad command line (click's own code)
    INPUT = 3  # input file unreadable, missing, of an unknown type, or empty
    # input file corrupt, encrypted, over the size/pixel limits, a page too small to hold a field, or a batch
    # document over its --timeout
    CORRUPT = 4
    MODEL = 5  # model file missing, corrupt or failing its checksum
    DEPENDENCY = 6  # missing system dependency (poppler)
    # configuration or template error; an output (-o, a batch results file, --csv, --summary-json, --debug-dir,
    # stdout) that is not a regular file (or folder), is not a formocr results file, or cannot be written
    CONFIG = 7
    BATCH_FAILURES = 8  # batch finished but some documents failed
    DATASET = 9  # dataset missing or corrupt (training / evaluation)
    REGISTRATION = 10  # a page could not be aligned to its template (the other pages are still read)
    INTERRUPTED = 130  # Ctrl-C or SIGTERM (128 + SIGINT, as shells report it)


class FormOcrError(Exception):
    """Base of every error formocr raises on purpose."""

    exit_code: ExitCode = ExitCode.INTERNAL

    def __init__(self, message: str, path: str | Path | None = None) -> None:
        self.message = message
        self.path = str(path) if path is not None else None
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message as one line, naming the file when there is one."""
        text = f"{self.path}: {self.message}" if self.path else self.message
        return " ".join(text.split())


class InputError(FormOcrError):
    """The input cannot be read at all (missing, unreadable, unknown type)."""

    exit_code = ExitCode.INPUT


class UnreadableInputError(InputError):
    """Missing file, a directory, or no permission to read."""


class UnsupportedInputError(InputError):
    """A file whose type formocr does not read."""


class EmptyInputError(InputError):
    """A zero-byte file or a document without pages."""


class CorruptInputError(FormOcrError):
    """The file claims a known type but its content is broken."""

    exit_code = ExitCode.CORRUPT


class EncryptedInputError(CorruptInputError):
    """A password-protected PDF."""


class InputTooLargeError(CorruptInputError):
    """Pages beyond the pixel limit (decompression-bomb guard) or too many pages."""


class PageTooSmallError(CorruptInputError):
    """A page too small to hold a field (under 16 px, or about a millimetre, on a side: see formocr.preprocess).

    Exit code CORRUPT (4) like the other size limits: the file's content decides it, so a batch keeps its record instead
    of reading the document again on every rerun. Caught at loading, before the resizes that such a page breaks.
    """


class ModelError(FormOcrError):
    """A model file is missing, corrupt, or fails its checksum."""

    exit_code = ExitCode.MODEL


class DependencyError(FormOcrError):
    """A system tool formocr needs (poppler's pdftoppm) is missing."""

    exit_code = ExitCode.DEPENDENCY


class ConfigError(FormOcrError):
    """Bad options, an unknown option key, or a bad config file."""

    exit_code = ExitCode.CONFIG


class TemplateError(ConfigError):
    """A template file with a mistake; the message names the key."""


class OutputError(ConfigError):
    """An output that is not a regular file (a device, FIFO, folder) or that cannot be written (full disk...).

    Outputs only ever replace a regular file, via a temporary file and a rename, so a failure leaves the old
    file (or none) in place, never half of a new one.
    """


class ResultsFileError(OutputError):
    """A batch results file that is not one, is being written by another run, or cannot be written."""


class DatasetError(FormOcrError):
    """A training/evaluation dataset that is missing, truncated or not what it claims."""

    exit_code = ExitCode.DATASET


class Timeout(FormOcrError):
    """A batch document that ran past ``--timeout`` seconds; its worker is stopped and the batch goes on.

    Exit code CORRUPT (4), as for poppler's own render timeout (a CorruptInputError): what takes that long is the
    document's doing, so a rerun keeps the record rather than spend the time again (``--retry-failed`` redoes
    it, e.g. with a longer timeout).
    """

    exit_code = ExitCode.CORRUPT


class RegistrationError(FormOcrError):
    """A page that cannot be aligned to its template well enough to cut fields: an error for that page."""

    exit_code = ExitCode.REGISTRATION

