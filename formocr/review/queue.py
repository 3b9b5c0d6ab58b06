"""What a clerk has to settle: every field of a results file that needs review, in document order.

A results file is what ``formocr scan`` printed (JSON or JSON Lines) or a ``formocr batch`` results file. Each item
keeps what the review screen shows (the reading, the top alternatives per character, ``why``, the document and
page) and what checking a typed value needs (the field's type and, for a built-in template, its constraints; a
template file is not named in the results, so its fields are checked by type alone, with a warning). Where the
document lies: a batch key under ``root`` (the batch's input folder), else beside the results file, else as the
document recorded it; a scan document's ``source`` as written, else under ``root``, else beside the results file.
A batch document whose file no longer has the sha256 the batch recorded is not shown (the picture would not be
what was read).
"""

from __future__ import annotations

import hashlib
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formocr.errors import ConfigError, EmptyInputError, TemplateError
from formocr.fields import constraint_for, interpret
from formocr.layout.template import FIELD_TYPES, Template, load_template
from formocr.objects import Box
from formocr.scorefiles import iter_documents

__all__ = ["ReviewItem", "check_value", "load_queue", "locate_document"]

log = logging.getLogger("formocr.review")


@dataclass(frozen=True)
class ReviewItem:
    """One field needing review (``key`` is how corrections name it: source, page, field)."""

    index: int
    source: str  # as the results name the document (a batch key, or the scan's path)
    path: Path | None  # where the document was found; None: the crop cannot be shown
    sha256: str | None  # the document's, as the batch recorded it (None for scan output): answers are tied to it
    page: int
    dpi: float
    field: str
    type: str
    comb: bool
    constraints: dict[str, Any]
    value: str | None
    raw: str
    confidence: float
    why: tuple[str, ...]
    box: Box
    alternatives: tuple[str, ...]  # whole-field candidates: the value, each reader's reading, second choices
    chars: tuple[tuple[str, tuple[tuple[str, float], ...]], ...]  # per character: (char, top 3)

    @property
    def key(self) -> tuple[str, int, str]:
        return self.source, self.page, self.field

    def public(self) -> dict[str, Any]:
        """What the review page is sent (never a filesystem path)."""
        return {"index": self.index, "source": self.source, "page": self.page, "field": self.field,
                "type": self.type, "constraints": self.constraints, "value": self.value, "raw": self.raw,
                "confidence": round(self.confidence, 4), "why": list(self.why),
                "alternatives": list(self.alternatives), "crop": self.path is not None,
                "chars": [{"char": c, "top": [[a, round(p, 4)] for a, p in top]} for c, top in self.chars]}


def locate_document(source: str, document_source: str | None, results: Path, root: Path | None,
                    sha256: str | None = None) -> Path | None:
    """The document file behind a results entry, or None when it is nowhere to be found (or, given the sha256 the
    batch recorded, when the file found is no longer that document)."""
    tries: list[Path] = []
    key = Path(source)
    if sha256 is not None and not key.is_absolute():  # a batch key: relative to the batch's input folder
        if root is not None:
            tries.append(root / key)
        tries.append(results.parent / key)
    for name in dict.fromkeys(n for n in (document_source, source) if n):
        p = Path(name)
        tries.append(p)
        if sha256 is None and not p.is_absolute():  # scan output, read from elsewhere
            tries += [root / p] if root is not None else []
            tries.append(results.parent / p)
    found = next((p for p in tries if p.is_file()), None)
    if found is not None and sha256 is not None and _sha256(found) != sha256:
        log.warning("%s: the file was changed since it was read; its crops are not shown", found)
        return None
    return found


def _sha256(path: Path) -> str | None:
    h = hashlib.sha256()
    try:
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError:
        return None
    return h.hexdigest()


def _template(name: str | None, cache: dict[str, Template | None]) -> Template | None:
    if not name or name == "auto":
        return None
    if name not in cache:
        try:
            cache[name] = load_template(name)
        except TemplateError:
            log.warning("template %r is not a built-in: its fields' constraints are unknown here, so typed values "
                        "are checked against the field type alone", name)
            cache[name] = None
    return cache[name]


def _alternatives(f: dict[str, Any]) -> tuple[str, ...]:
    """Whole-field candidates in the order a clerk would want them: the value, the readers' readings, then the
    value with its least sure character replaced by that character's second choice."""
    out: list[str] = []
    if f.get("value"):
        out.append(str(f["value"]))
    for r in (f.get("readings") or {}).values():
        if isinstance(r, dict) and r.get("raw"):
            out.append(str(r["raw"]))
    chars = f.get("chars") or []
    if chars:
        weakest = min(range(len(chars)), key=lambda i: float(chars[i].get("p", 1.0)))
        top = chars[weakest].get("top3") or []
        if len(top) > 1:
            text = [str(c.get("char", "")) for c in chars]
            text[weakest] = str(top[1][0])
            out.append("".join(text))
    return tuple(dict.fromkeys(a for a in out if a))


def load_queue(results: str | Path, root: str | Path | None = None) -> list[ReviewItem]:
    """Every field needing review in ``results``: documents by source (a batch writes them as they finish), then
    pages and fields in order."""
    path = Path(results)
    base = Path(root) if root is not None else None
    templates: dict[str, Template | None] = {}
    items: list[ReviewItem] = []
    docs: dict[str, tuple[int, dict[str, Any] | None, str | None]] = {}  # source → its last line
    for line, source, document, _error, sha in iter_documents(path):
        docs.pop(source, None)  # the last line of a source wins, as in a batch results file: in its place
        docs[source] = (line, document, sha)
    if not docs:
        raise EmptyInputError("no documents in the results", path)
    for source, (line, document, sha) in sorted(docs.items()):  # by source, as export csv lists them
        if document is None:
            continue  # the document failed: nothing was read, so there is nothing to settle
        try:
            found = locate_document(source, document.get("source"), path, base, sha)
            for pg in document.get("pages") or []:
                template = _template(pg.get("template"), templates)
                for f in pg.get("fields") or []:
                    if f.get("needs_review"):
                        items.append(_item(len(items), source, found, sha, pg, f, template))
        except (AttributeError, KeyError, TypeError, ValueError) as e:
            raise ConfigError(f"line {line}: the document {source!r} is not as formocr writes it "
                              f"({type(e).__name__}: {e})", path) from None
    return items


def _item(index: int, source: str, found: Path | None, sha: str | None, pg: dict[str, Any], f: dict[str, Any],
          template: Template | None) -> ReviewItem:
    ftype = str(f.get("type", "digits"))
    if ftype not in FIELD_TYPES:
        raise ValueError(f"field {f.get('name')!r} has an unknown type {ftype!r}")
    tf = next((t for t in template.fields if t.name == f["name"]), None) if template else None
    box = [int(v) for v in f.get("box") or (0, 0, 0, 0)]
    if len(box) != 4:
        raise ValueError(f"field {f['name']!r}: a box has 4 numbers")
    return ReviewItem(
        index=index, source=source, path=found, sha256=sha, page=int(pg.get("page", 1)),
        dpi=float(pg.get("dpi") or 300), field=str(f["name"]), type=ftype,
        comb=bool(tf and tf.style == "comb"), constraints=dict(tf.constraints) if tf else {},
        value=None if f.get("value") is None else str(f["value"]), raw=str(f.get("raw") or ""),
        confidence=float(f.get("confidence") or 0.0), why=tuple(str(w) for w in f.get("why") or ()),
        box=Box(*box), alternatives=_alternatives(f),
        chars=tuple((str(c.get("char", "")), tuple((str(a), float(p)) for a, p in c.get("top3") or ()))
                    for c in f.get("chars") or ()),
    )  # fmt: skip


def check_value(item: ReviewItem, typed: str) -> tuple[str | None, str | None]:
    """(the value as it will be recorded, None) for a typed value the field accepts, else (None, the problem in
    words). Checked as the readers' own readings are: the characters the field's decoder may produce (full-width
    digits from an input method are taken as the digits they are), then a date must be a calendar date, an amount
    an amount, lengths and patterns as the field's constraints say."""
    text = unicodedata.normalize("NFKC", typed).strip()
    if not text:
        return None, "type a value, or mark the field illegible / not filled"
    if len(text) > 64:
        return None, "longer than any field holds"
    allowed = constraint_for(item.type, item.constraints, comb=False).chars
    bad = sorted({c for c in text if not (c.isascii() and (c in allowed or c.isdigit()))})
    if bad:
        return None, "not allowed here: " + " ".join(repr(c) for c in bad)
    got = interpret(item.type, text, item.constraints, comb=item.comb)
    if got.problems:
        return None, "; ".join(got.problems)
    if item.type == "date" and got.value is not None and not _four_digit_year(text):
        return None, "write the year with 4 digits"
    return got.value, None


def _four_digit_year(text: str) -> bool:
    """A date written in three groups has one of four digits (``1/1/5`` is no date a clerk means)."""
    groups = [g for g in text.replace(".", "/").replace("-", "/").split("/") if g]
    return len(groups) != 3 or any(len(g) == 4 for g in groups)
