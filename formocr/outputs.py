"""Writing outputs safely: results, CSV, summaries, templates, debug pictures and stdout.

A file is only ever written through a temporary file, fsync and a rename, and only over a regular file (never a
device, FIFO or folder); every failure is an :class:`~formocr.errors.OutputError` naming the path.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO, TypeVar

from formocr.errors import OutputError

__all__ = [
    "STDOUT",
    "check_output",
    "check_output_dir",
    "check_replaceable",
    "default_mode",
    "fsync_dir",
    "stdout_error",
    "write_atomic",
    "write_stdout",
]


T = TypeVar("T")
STDOUT = "<stdout>"


def default_mode() -> int:
    """rw for everyone the umask allows, as a plain open() would create (mkstemp makes files private)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def fsync_dir(folder: Path) -> None:
    """Make a new or renamed directory entry durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc) or type(exc).__name__


def check_output(path: str | os.PathLike[str], error: type[OutputError] = OutputError, what: str = "output"
                 ) -> Path:
    """The file to write for the output ``path``: ``path`` when it is new or a regular file; through a link to
    one, the file it points to (the link stays a link).

    Anything else is an ``error``: renaming a regular file over a device (``/dev/full``: as root that works), a
    FIFO or a folder would break the system or lose the user's data, and a path under a file cannot be created.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        return Path(os.path.realpath(p))  # new (a dangling link: its target is created)
    except NotADirectoryError:
        raise error(f"cannot write the {what}: a folder on its path is a file", p) from None
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", p) from None
    if stat.S_ISDIR(st.st_mode):
        raise error(f"is a folder; give a file name for the {what}", p)
    if not stat.S_ISREG(st.st_mode):
        raise error(f"is not a regular file (a device, FIFO or socket); the {what} only ever replaces a regular "
                    "file", p)
    return Path(os.path.realpath(p))


def check_replaceable(path: str | os.PathLike[str], what: str, ours: Callable[[bytes], bool] | None,
                      keep: Sequence[tuple[str | os.PathLike[str], str]] = (), error: type[OutputError] = OutputError
                      ) -> Path:
    """:func:`check_output` for a file formocr makes (a document's JSON, a CSV, a summary, a template), checked
    before any work: it never replaces one of ``keep`` (each a path and what it is: "an input", "the results
    file"), and an existing file that is not empty only when ``ours`` finds formocr's own output of this kind at its
    start (a rerun's); None: never an existing file (a template the user has edited since). A user's own file
    given by mistake is refused and left as it was."""
    real = check_output(path, error, what)
    shown = Path(path)
    for other, name in keep:
        with contextlib.suppress(OSError):
            if os.path.samefile(real, other):
                raise error(f"is {name}; give the {what} another file name (it was left as it is)", shown)
    try:
        with open(real, "rb") as f:
            head = f.read(4096)
    except FileNotFoundError:
        return real
    except OSError as exc:
        raise error(f"cannot read the file the {what} would replace ({_why(exc)})", shown) from None
    if head.strip() and (ours is None or not ours(head)):
        kind = "a file" if ours is None else f"a file that is not a formocr {what}"
        raise error(f"exists and is {kind}; formocr does not replace it: give a new file name (it was left as it "
                    "is)", shown)
    return real


def write_atomic(path: str | os.PathLike[str], write: Callable[[TextIO], T], error: type[OutputError] = OutputError,
                 what: str = "output") -> T:
    """Write a UTF-8 text file through ``write(stream)``: a temporary file beside it, fsync, then a rename.

    A reader, a crash or a full disk leaves the old file or the whole new one, never half of it; a failure is
    one ``error`` naming ``path``. Only a new path or a regular file is written (:func:`check_output`); a file
    replaced keeps its permissions, a new one gets the umask's. Returns what ``write`` returns.
    """
    name = Path(path)
    dst = check_output(name, error, what)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".tmp")
    except (FileExistsError, NotADirectoryError):
        raise error(f"cannot write the {what}: a folder on its path is a file", name) from None
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", name) from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            try:
                mode = stat.S_IMODE(os.stat(dst).st_mode)
            except FileNotFoundError:
                mode = default_mode()
            os.fchmod(f.fileno(), mode)
            result = write(f)
            f.flush()
            os.fsync(f.fileno())
        check_output(dst, error, what)  # still a regular file (or none) at the moment of the rename
        os.replace(tmp, dst)
        fsync_dir(dst.parent)
    except OSError as exc:
        raise error(f"cannot write the {what} ({_why(exc)})", name) from None
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    return result


def check_output_dir(path: str | os.PathLike[str], what: str = "output folder") -> Path:
    """Create a folder for output files and make sure it takes a file: fail before the work, not after it."""
    p = Path(path)
    try:
        p.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=p, prefix=".formocr-probe.")
        os.close(fd)
        os.unlink(probe)
    except FileExistsError:
        raise OutputError(f"is not a folder; the {what} must be one", p) from None
    except NotADirectoryError:
        raise OutputError(f"cannot create the {what}: a folder on its path is a file", p) from None
    except OSError as exc:
        raise OutputError(f"cannot write in the {what} ({_why(exc)})", p) from None
    return p


def stdout_error(exc: OSError) -> OutputError:
    """The one-line error for a failed write to stdout (full disk, closed pipe).

    stdout is pointed at /dev/null first: the interpreter flushes it again at exit, and that second failure would
    print an "Exception ignored" report and change the exit code.
    """
    with contextlib.suppress(OSError, ValueError, AttributeError):
        target = sys.stdout.fileno()
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, target)
        finally:
            os.close(null)
    return OutputError(f"cannot write ({_why(exc)})", STDOUT)


def write_stdout(text: str) -> None:
    """Write ``text`` to stdout and flush it now, so a failure is an :class:`OutputError` here, not at exit."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except OSError as exc:
        raise stdout_error(exc) from None
