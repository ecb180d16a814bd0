"""The console's HTTP application (FastAPI, Jinja2 templates, shipped static files).

Pages: `/` the feed (filters, search, pictures, live list), `/record/{partition}/{offset}`
an alert with every field, its related alerts, why it reached us and the acknowledge
buttons; `/login`. Machinery: `/events` (server-sent events: the index moved on),
`/rows` (list rows after an id, for the live list), `/status` (the indexer's state).

Everything shown comes from the feed index; nothing is fetched from elsewhere at run
time (no CDN): the content security policy allows only this origin.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.middleware.sessions import SessionMiddleware
from starlette.types import ASGIApp

from bus.adapters.feed_index import FeedIndex, IndexedRecord
from bus.errors import BusError
from bus.services.feed_indexer import IndexerStatus, Listener
from bus.web.console import charts, views
from bus.web.console.acks import MAX_NOTE_CHARS, NO_KEY_REASON, Acknowledger, AckRequest, AckStatus
from bus.web.console.auth import Authenticator, csrf_ok, csrf_token

PACKAGE = files("bus.web.console")
SECURITY_HEADERS = {
    "Content-Security-Policy": ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
                                "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
}
KEEPALIVE_SECONDS = 15.0


class FeedSource(Protocol):
    """What the pages need from the indexer: its state, and word when the index moves on."""

    @property
    def status(self) -> IndexerStatus: ...

    def subscribe(self, listener: Listener) -> Callable[[], None]: ...


@dataclass(frozen=True)
class ConsoleConfig:
    member: str
    topic: str
    auth: Authenticator
    session_secret: str = ""
    secure_cookies: bool = False
    page_size: int = 100


def _template_dir() -> Path:
    return Path(str(PACKAGE.joinpath("templates")))


def _static_dir() -> Path:
    return Path(str(PACKAGE.joinpath("static")))


def create_app(config: ConsoleConfig, index: FeedIndex, source: FeedSource,
               acknowledger: Acknowledger | None = None, mounts: Mapping[str, ASGIApp] | None = None) -> FastAPI:
    """The console application over one member's feed index.

    `mounts` are further applications under a path prefix (`/taxii2`: the TAXII server), which
    authenticate their own clients (in proxy mode too) and answer in their own format.
    """
    mounted = tuple(prefix.rstrip("/") for prefix in (mounts or {}))
    streams: dict[asyncio.Queue[dict[str, Any] | None], asyncio.AbstractEventLoop] = {}

    def close_streams() -> None:
        """End every open event stream (thread-safe): a server stops without waiting for browsers."""
        for queue, loop in list(streams.items()):
            loop.call_soon_threadsafe(queue.put_nowait, None)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        close_streams()

    app = FastAPI(title=f"EPA bus console: {config.member}", docs_url=None, redoc_url=None, openapi_url=None,
                  lifespan=lifespan)
    app.state.close_streams = close_streams
    templates = Jinja2Templates(directory=_template_dir())
    templates.env.globals.update(member=config.member, topic=config.topic, tlp_css=views.TLP_CSS,
                                 handling_meaning=views.HANDLING_MEANING)
    auth = config.auth

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        path = request.url.path
        own = not (path.startswith("/static/") or any(path == m or path.startswith(f"{m}/") for m in mounted))
        if auth.proxy_mode and not auth.from_trusted_proxy(request) and own:
            response: Response = HTMLResponse("This console accepts requests only through its reverse proxy.\n",
                                              status_code=403)
        else:
            response = await call_next(request)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        if not request.url.path.startswith("/static/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    app.add_middleware(SessionMiddleware, secret_key=config.session_secret or secrets.token_urlsafe(32),
                       session_cookie="epa_console", same_site="strict", https_only=config.secure_cookies,
                       max_age=12 * 3600)
    app.mount("/static", StaticFiles(directory=_static_dir()), name="static")
    for prefix, sub_app in (mounts or {}).items():
        app.mount(prefix.rstrip("/"), sub_app)

    def page(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
        officer = auth.officer(request)
        base = {"officer": officer, "csrf": csrf_token(request), "proxy_mode": auth.proxy_mode,
                "status": source.status, "flash": request.session.pop("flash", None)}
        return templates.TemplateResponse(request, name, {**base, **context}, status_code=status_code)

    def sign_in_first(request: Request) -> Response:
        if auth.proxy_mode:
            return HTMLResponse("Sign-in is done by the reverse proxy; no user header came with this request.\n",
                                status_code=401)
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target)}", status_code=303)

    # -- signing in --------------------------------------------------------------------------

    @app.get("/login", response_class=HTMLResponse)
    def login_form(request: Request, next: str = "/") -> Response:
        if auth.proxy_mode:
            return RedirectResponse("/", status_code=303)
        return page(request, "login.html", {"next": _local(next), "error": None})

    @app.post("/login", response_class=HTMLResponse)
    async def login(request: Request) -> Response:
        form = await request.form()
        name, password = str(form.get("username", "")), str(form.get("password", ""))
        target = _local(str(form.get("next", "/")))
        if not csrf_ok(request, _text(form.get("csrf"))):
            return page(request, "login.html", {"next": target, "error": "the form expired; please try again"},
                        status_code=400)
        problem = auth.sign_in(request, name, password)
        if problem is not None:
            return page(request, "login.html", {"next": target, "error": problem, "username": name[:64]},
                        status_code=401)
        return RedirectResponse(target, status_code=303)

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        form = await request.form()
        if csrf_ok(request, _text(form.get("csrf"))):
            request.session.clear()
        return RedirectResponse("/login", status_code=303)

    # -- the feed ----------------------------------------------------------------------------

    @app.get("/", response_class=HTMLResponse)
    def feed(request: Request, before: str = "") -> Response:
        if auth.officer(request) is None:
            return sign_in_first(request)
        filters = views.parse_filters(request.query_params)
        cursor = _cursor(before)
        records = index.search(filters.query, limit=config.page_size, before=cursor)
        now = datetime.now(UTC)
        last = records[-1] if len(records) == config.page_size else None
        return page(request, "feed.html", {
            "filters": filters,
            "rows": [views.row_view(r, now) for r in records],
            "total": index.count(filters.query),
            "last_id": index.last_id(),
            "more": f"/?{filters.query_string(before=f'{last.timestamp_ms}-{last.id}')}" if last else None,
            "paged": cursor is not None,
            "facets": index.facets(),
            "types": [t for t in charts.TYPE_CLASS],
            "tlps": list(views.TLP_CSS),
            "handling_codes": list(views.HANDLING_MEANING),
            "per_day": Markup(charts.per_day_chart(index.per_day(filters.query), now.date())),
            "ports": Markup(charts.ports_chart(index.port_counts(filters.query))),
        })

    @app.get("/rows", response_class=HTMLResponse)
    def rows(request: Request, after: int = 0) -> Response:
        """Rows indexed after `after` that match the page's filters, newest first (live list)."""
        if auth.officer(request) is None:
            return Response(status_code=401)
        filters = views.parse_filters(request.query_params)
        last = index.last_id()
        found = [r for r in index.since(after, filters.query) if r.id <= last]
        now = datetime.now(UTC)
        response = templates.TemplateResponse(
            request, "_rows.html", {"rows": [views.row_view(r, now) for r in reversed(found)], "fresh": True})
        response.headers["X-Last-Id"] = str(last)
        response.headers["X-Count"] = str(len(found))
        return response

    @app.get("/status")
    def status(request: Request) -> Response:
        if auth.officer(request) is None:
            return Response(status_code=401)
        return JSONResponse(_status(source.status, index.last_id()))

    @app.get("/events")
    async def events(request: Request) -> Response:
        """Server-sent events: `feed` with the last record id and the indexer's state on every change."""
        if auth.officer(request) is None:
            return Response(status_code=401)
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

        def changed(last_id: int) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, _status(source.status, last_id))

        unsubscribe = source.subscribe(changed)
        streams[queue] = loop

        async def stream() -> AsyncIterator[str]:
            try:
                yield "retry: 1000\n\n"
                yield _event(_status(source.status, index.last_id()))
                while True:
                    try:
                        message = await asyncio.wait_for(queue.get(), KEEPALIVE_SECONDS)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                        continue
                    if message is None:
                        return
                    while not queue.empty():  # only the newest state matters
                        newer = queue.get_nowait()
                        if newer is None:
                            return
                        message = newer
                    yield _event(message)
            finally:
                unsubscribe()
                streams.pop(queue, None)

        return StreamingResponse(stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    # -- one alert ---------------------------------------------------------------------------

    def record_page(request: Request, record: IndexedRecord, *, status_code: int = 200,
                    ack_error: str | None = None) -> Response:
        related = index.related(record)
        now = datetime.now(UTC)
        return page(request, "record.html", {
            "record": record,
            "row": views.row_view(record, now),
            "fields": views.fields(record.alert) or views.fields({"header": record.header} if record.header else None),
            "related": [(views.row_view(r, now), [(t, views.term_href(t)) for t in shared]) for r, shared in related],
            "terms": [(t, views.term_href(t)) for t in index.terms_of(record.id)
                      if t.kind.value in ("container", "imo", "bl", "operation", "subject")],
            "acks": index.acknowledgements(record.id),
            "ack_statuses": list(AckStatus),
            "ackable": record.verdict.trusted and record.message_id is not None,
            "can_ack": acknowledger is not None and record.verdict.trusted and record.message_id is not None,
            "acks_enabled": acknowledger is not None,
            "acks_off_reason": NO_KEY_REASON,
            "ack_error": ack_error,
            "note_limit": MAX_NOTE_CHARS,
            "claimed": record.claimed,
            "key": (record.key or b"").decode("utf-8", "replace"),
        }, status_code=status_code)

    @app.get("/record/{partition}/{offset}", response_class=HTMLResponse)
    def record(request: Request, partition: int, offset: int) -> Response:
        if auth.officer(request) is None:
            return sign_in_first(request)
        found = index.get(partition, offset)
        if found is None:
            return page(request, "missing.html", {"what": f"record {partition}/{offset}"}, status_code=404)
        return record_page(request, found)

    @app.get("/alert/{message_id}", response_class=HTMLResponse)
    def alert(request: Request, message_id: str) -> Response:
        if auth.officer(request) is None:
            return sign_in_first(request)
        found = index.by_message_id(message_id)
        if not found:
            return page(request, "missing.html", {"what": f"alert {message_id[:40]}"}, status_code=404)
        return RedirectResponse(views.record_href(found[0]), status_code=303)

    @app.post("/record/{partition}/{offset}/ack", response_class=HTMLResponse)
    async def acknowledge(request: Request, partition: int, offset: int) -> Response:
        officer = auth.officer(request)
        if officer is None:
            return sign_in_first(request)
        form = await request.form()
        found = index.get(partition, offset)
        if found is None:
            return page(request, "missing.html", {"what": f"record {partition}/{offset}"}, status_code=404)
        if not csrf_ok(request, _text(form.get("csrf"))):
            return record_page(request, found, status_code=400, ack_error="the form expired; please try again")
        if acknowledger is None:
            return record_page(request, found, status_code=503,
                               ack_error=f"acknowledgements are not configured on this console: {NO_KEY_REASON}")
        if not found.verdict.trusted or found.message_id is None:
            return record_page(request, found, status_code=409,
                               ack_error="a record that failed verification cannot be acknowledged")
        try:
            status_value = AckStatus(str(form.get("status", "")))
        except ValueError:
            return record_page(request, found, status_code=400,
                               ack_error=f"status must be one of {', '.join(s.value for s in AckStatus)}")
        note = (_text(form.get("note")) or "").strip()[:MAX_NOTE_CHARS] or None
        ack = AckRequest(found.message_id, found.key, status_value, note, officer)
        try:
            outcome = await asyncio.to_thread(acknowledger.acknowledge, ack)
        except BusError as exc:
            index.log_acknowledgement(found.id, status_value.value, officer, note, f"failed: {exc}",
                                      datetime.now(UTC))
            return record_page(request, found, status_code=502, ack_error=f"not sent: {exc}")
        index.log_acknowledgement(found.id, status_value.value, officer, note, outcome, datetime.now(UTC))
        request.session["flash"] = f"Acknowledgement “{status_value.label}” sent ({outcome})."
        return RedirectResponse(views.record_href(found), status_code=303)

    return app


def _status(status: IndexerStatus, last_id: int) -> dict[str, Any]:
    return {"last_id": last_id, "state": status.state.value, "message": status.message,
            "since": status.since.isoformat()}


def _event(data: dict[str, Any]) -> str:
    return f"event: feed\ndata: {json.dumps(data)}\n\n"


def _text(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _local(target: str) -> str:
    """Only paths on this site are followed after sign-in (no open redirect)."""
    return target if target.startswith("/") and not target.startswith("//") and "\\" not in target else "/"


def _cursor(text: str) -> tuple[int, int] | None:
    try:
        ms, _, rid = text.partition("-")
        return (int(ms), int(rid)) if text else None
    except ValueError:
        return None


__all__ = ["ConsoleConfig", "FeedSource", "create_app"]
