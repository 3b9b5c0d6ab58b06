"""What a clerk has to settle: every field of a results file that needs review, in document order.

A results file is what ``formocr scan`` printed (JSON or JSON Lines) or a ``formocr batch`` results file. Each item
keeps what the review screen shows (the reading, the top alternatives per character, ``why``, the document and
page) and what checking a typed value needs (the field's type and, for a built-in or named template, its
constraints). Where the document lies: a scan document's ``source`` as written (absolute, or relative to the
working directory), else relative to ``root`` (a batch's input folder), else to the results file's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from formocr.errors import EmptyInputError, TemplateError
from formocr.fields import interpret
from formocr.layout.template import Template, load_template
from formocr.objects import Box
from formocr.scorefiles import iter_documents

__all__ = ["ReviewItem", "check_value", "load_queue", "locate_document"]


@dataclass(frozen=True)
class ReviewItem:
    """One field needing review (``key`` is how corrections name it: source, page, field)."""

    index: int
    source: str  # as the results name the document (a batch key, or the scan's path)
    path: Path | None  # where the document was found; None: the crop cannot be shown
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


def locate_document(source: str, document_source: str | None, results: Path, root: Path | None) -> Path | None:
    """The document file behind a results entry, or None when it is nowhere to be found."""
    tries: list[Path] = []
    for name in dict.fromkeys(n for n in (document_source, source) if n):
        p = Path(name)
        tries.append(p)
        if not p.is_absolute():
            if root is not None:
                tries.append(root / p)
            tries.append(results.parent / p)
    return next((p for p in tries if p.is_file()), None)


def _template(name: str | None, cache: dict[str, Template | None]) -> Template | None:
    if not name or name == "auto":
        return None
    if name not in cache:
        try:
            cache[name] = load_template(name)
        except TemplateError:
            cache[name] = None  # a template file that moved: the field's type still checks the value
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
    """Every field needing review in ``results``, in document, page and field order."""
    path = Path(results)
    base = Path(root) if root is not None else None
    templates: dict[str, Template | None] = {}
    items: list[ReviewItem] = []
    seen: dict[str, int] = {}
    docs: list[tuple[str, dict[str, Any]]] = []
    for _, source, document, _error in iter_documents(path):
        if document is None:
            continue
        if source in seen:  # the last line of a source wins, as in a batch results file
            docs[seen[source]] = (source, document)
        else:
            seen[source] = len(docs)
            docs.append((source, document))
    for source, document in docs:
        found = locate_document(source, document.get("source"), path, base)
        for pg in document.get("pages") or []:
            template = _template(pg.get("template"), templates)
            for f in pg.get("fields") or []:
                if not f.get("needs_review"):
                    continue
                tf = next((t for t in template.fields if t.name == f["name"]), None) if template else None
                items.append(ReviewItem(
                    index=len(items), source=source, path=found, page=int(pg.get("page", 1)),
                    dpi=float(pg.get("dpi") or 300), field=str(f["name"]), type=str(f.get("type", "digits")),
                    comb=bool(tf and tf.style == "comb"), constraints=dict(tf.constraints) if tf else {},
                    value=None if f.get("value") is None else str(f["value"]), raw=str(f.get("raw") or ""),
                    confidence=float(f.get("confidence") or 0.0), why=tuple(str(w) for w in f.get("why") or ()),
                    box=Box(*(int(v) for v in f.get("box") or (0, 0, 0, 0))), alternatives=_alternatives(f),
                    chars=tuple((str(c.get("char", "")), tuple((str(a), float(p)) for a, p in c.get("top3") or ()))
                                for c in f.get("chars") or ()),
                ))  # fmt: skip
    if not docs:
        raise EmptyInputError("no documents in the results", path)
    return items


def check_value(item: ReviewItem, typed: str) -> tuple[str | None, str | None]:
    """(the value as it will be recorded, None) for a typed value the field accepts, else (None, the problem in
    words). Checked as the readers' own readings are: a date must be a calendar date, an amount an amount."""
    text = typed.strip()
    if not text:
        return None, "type a value, or mark the field illegible / not filled"
    if len(text) > 64:
        return None, "longer than any field holds"
    got = interpret(item.type, text, item.constraints, comb=item.comb)
    if got.problems:
        return None, "; ".join(got.problems)
    return got.value, None
