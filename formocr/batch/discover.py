"""Which files of the input folder a batch reads, in a deterministic order.

Why sorted relative paths: the record of a document is keyed by its path relative to the input folder (plus
its content hash), so the same folder gives the same keys wherever it is mounted, and two runs visit files in
the same order.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable
from pathlib import Path

from formocr.errors import ConfigError, UnreadableInputError

log = logging.getLogger("formocr.batch")

SUPPORTED_SUFFIXES = frozenset({".pdf", ".png", ".jpg", ".jpeg", ".jpe", ".bmp", ".dib", ".tif", ".tiff"})
"""Extensions picked up by the recursive walk (case-insensitive). The type is still decided by content."""


def discover(root: str | os.PathLike[str], pattern: str | None = None,
             exclude: Iterable[str | os.PathLike[str]] = ()) -> list[str]:
    """Relative POSIX paths of the documents under ``root``, sorted.

    Without ``pattern``: every file with a supported extension, walking subfolders (symlinked folders are not
    followed, so a link loop cannot trap the walk). With ``pattern`` (a glob relative to ``root`` such as
    ``"**/*.pdf"`` or ``"2026-*/*"``): every file it matches, whatever its extension, so a file of the wrong
    type gets its own error record instead of being passed over. Hidden files and folders (a leading dot)
    are skipped either way, as are the paths in ``exclude`` (the results file itself, for one). So are links
    that loop (``a -> b -> a``, ``x -> x``), with a one-line warning each: they name no document, and resolving
    them would stop the whole batch.
    """
    base = Path(root)
    if not base.exists():
        raise UnreadableInputError("no such folder", base)
    if not base.is_dir():
        raise UnreadableInputError("is not a folder", base)
    skip = {os.path.realpath(p) for p in exclude}
    found: list[str] = []
    if pattern is None:
        for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            for name in filenames:
                if name.startswith(".") or Path(name).suffix.lower() not in SUPPORTED_SUFFIXES:
                    continue
                if not _loops(Path(dirpath, name), base):
                    found.append(Path(dirpath, name).relative_to(base).as_posix())
    else:
        try:
            matches = list(base.glob(pattern))
        except (ValueError, NotImplementedError) as e:
            raise ConfigError(f"--glob {pattern!r}: {e}") from None
        for path in matches:
            rel = path.relative_to(base)
            if any(part.startswith(".") for part in rel.parts) or _loops(path, base) or not path.is_file():
                continue
            found.append(rel.as_posix())
    # realpath, not Path.resolve(): it does not raise on a loop (RuntimeError up to Python 3.12)
    return sorted(r for r in set(found) if os.path.realpath(base / r) not in skip)


def _loops(path: Path, base: Path) -> bool:
    """True (after a warning) for a symbolic link that never reaches a file or folder because it loops."""
    try:
        os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            log.warning("%s: skipped: a symbolic link loop (%s)", path, e.strerror)
            return True
    return False
