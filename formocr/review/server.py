"""``formocr review``: a local web page on which a clerk settles every field that needs review.

Starlette serves one page (plain HTML and a little JavaScript, :mod:`formocr.review` ``static/``) and a small
JSON API; uvicorn runs it on 127.0.0.1 only. Every request must carry the session's random token (``?token=`` or
the ``X-Formocr-Token`` header) and name a host of this machine (no DNS rebinding); crops are asked for by item
number, so nothing in a request ever names a file. Typed values are checked against the field's type and
constraints before they are written, and each answer is fsynced to the corrections file
(:mod:`formocr.review.corrections`) before the page moves on.
"""

from __future__ import annotations

import json
import logging
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from formocr.errors import FormOcrError
from formocr.options import Options
from formocr.review.corrections import Correction, Corrections
from formocr.review.crops import CropCache
from formocr.review.queue import ReviewItem, check_value, load_queue

__all__ = ["ReviewSession", "make_app", "serve"]

log = logging.getLogger("formocr.review")

_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


@dataclass
class ReviewSession:
    """One review: the queue, the open corrections file, the crops and the token."""

    results: Path
    items: list[ReviewItem]
    corrections: Corrections
    crops: CropCache
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, results: str | Path, root: str | Path | None = None, options: Options | None = None
             ) -> ReviewSession:
        items = load_queue(results, root)
        corrections = Corrections(results).open()
        return cls(Path(results), items, corrections, CropCache(options))

    def close(self) -> None:
        self.corrections.close()

    def latest(self, item: ReviewItem) -> dict[str, Any] | None:
        """The last answer for ``item``'s field of this very document (one given for an older version of the
        document, since replaced and read again, does not count)."""
        c = self.corrections.latest.get(item.key)
        return None if c is None or c.sha256 != item.sha256 else {"action": c.action, "value": c.value}

    def state(self) -> dict[str, Any]:
        out = []
        for it in self.items:
            d = it.public()
            d["answer"] = self.latest(it)
            out.append(d)
        return {"results": self.results.name, "items": out}

    def answer(self, index: int, action: str, typed: str | None, seconds: float, seen: Any = None
               ) -> tuple[int, dict[str, Any]]:
        """Record an answer. ``seen`` is the answer the page showed for the field: when another page answered
        it meanwhile (a second tab, a second clerk on the same link), nothing is written and the page must reload."""
        if not 0 <= index < len(self.items):
            return 404, {"error": "no such field"}
        item = self.items[index]
        value: str | None = None
        if action == "keyed":
            value, problem = check_value(item, typed or "")
            if problem is not None:
                return 422, {"error": problem}
        elif action not in ("illegible", "skipped"):
            return 400, {"error": "action must be keyed, illegible or skipped"}
        seconds = seconds if 0.0 <= seconds < 86_400 else 0.0
        c = Correction(item.source, item.page, item.field, action, value, item.value, time.time(), seconds,  # type: ignore[arg-type]
                       item.sha256)
        with self.lock:
            if self.latest(item) != seen:
                return 409, {"error": "this field was answered elsewhere meanwhile; reload the page",
                             "answer": self.latest(item)}
            self.corrections.append(c)
        return 200, {"index": index, "answer": {"action": c.action, "value": c.value}}


def _static(name: str) -> str:
    return (resources.files("formocr.review") / "static" / name).read_text(encoding="utf-8")


class _TokenGate:
    """Refuses every request without the session's token, before any route sees it."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app, self.token = app, token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            given = request.query_params.get("token") or request.headers.get("x-formocr-token") or ""
            if not secrets.compare_digest(given.encode(), self.token.encode()):
                await PlainTextResponse("forbidden: this review needs the link formocr printed", 403)(
                    scope, receive, send)
                return
        await self.app(scope, receive, send)


def make_app(session: ReviewSession) -> Starlette:
    """The review web app of ``session`` (run it with uvicorn, or test it with Starlette's TestClient)."""
    page = _static("review.html").replace("{{TOKEN}}", session.token)
    script, style = _static("review.js"), _static("review.css")
    headers = {"Content-Security-Policy": _CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
               "Cache-Control": "no-store"}

    async def index(request: Request) -> Response:
        return HTMLResponse(page, headers=headers)

    async def app_js(request: Request) -> Response:
        return Response(script, media_type="text/javascript", headers=headers)

    async def app_css(request: Request) -> Response:
        return Response(style, media_type="text/css", headers=headers)

    async def state(request: Request) -> Response:
        return JSONResponse(session.state(), headers=headers)

    def crop(request: Request) -> Response:  # plain def: rendering a page runs in a worker thread
        index = request.path_params["index"]
        if not 0 <= index < len(session.items):
            return PlainTextResponse("no such field", 404, headers=headers)
        try:
            png = session.crops.crop(session.items[index])
        except FormOcrError as e:
            return PlainTextResponse(e.one_line(), 404, headers=headers)
        return Response(png, media_type="image/png", headers=headers)

    async def answer(request: Request) -> Response:
        try:
            body = json.loads(await request.body())
            index, action = int(body["index"]), str(body["action"])
            typed = None if body.get("value") is None else str(body["value"])
            seconds = float(body.get("seconds") or 0.0)
            seen = body.get("seen")
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError, RecursionError):
            return JSONResponse({"error": "expected {index, action, value, seconds, seen}"}, 400, headers=headers)
        try:  # checking and the fsync run in a worker thread, not on the event loop
            code, out = await run_in_threadpool(session.answer, index, action, typed, seconds, seen)
        except FormOcrError as e:  # the disk is full: the clerk must know the answer was not kept
            return JSONResponse({"error": e.one_line()}, 500, headers=headers)
        return JSONResponse(out, code, headers=headers)

    routes = [
        Route("/", index), Route("/review.js", app_js), Route("/review.css", app_css),
        Route("/api/state", state), Route("/api/crop/{index:int}", crop),
        Route("/api/answer", answer, methods=["POST"]),
    ]  # fmt: skip
    app = Starlette(routes=routes, middleware=[
        Middleware(TrustedHostMiddleware, allowed_hosts=["127.0.0.1", "localhost"]),
        Middleware(_TokenGate, token=session.token),
    ])  # fmt: skip
    return app


def serve(session: ReviewSession, port: int = 0, open_browser: bool = False) -> None:
    """Serve ``session`` on 127.0.0.1 until interrupted; prints the page's address (with its token) on stdout."""
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(("127.0.0.1", port))
    except OSError as e:
        sock.close()
        raise FormOcrError(f"cannot listen on 127.0.0.1:{port} ({e.strerror or e})") from None
    sock.listen(64)  # accepting before the address is printed: the first request cannot be refused
    url = f"http://127.0.0.1:{sock.getsockname()[1]}/?token={session.token}"
    print(url, flush=True)
    log.info("%d field(s) need review; corrections go to %s", len(session.items), session.corrections.path)
    if open_browser:
        import webbrowser

        webbrowser.open(url)
    config = uvicorn.Config(make_app(session), log_level="warning", access_log=False, lifespan="off")
    uvicorn.Server(config).run(sockets=[sock])
