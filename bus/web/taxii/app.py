"""TAXII 2.1, read-only, over one member's feed index (mounted by the console at `/taxii2/`).

    GET  /taxii2/                                              discovery
    GET  /taxii2/<member>/                                     the API root (member id, lower case)
    GET  /taxii2/<member>/collections/                         one collection per alert type
    GET  /taxii2/<member>/collections/<id>/                    (<id>: the UUID, or the title as alias)
    GET  /taxii2/<member>/collections/<id>/objects/            added_after, limit, next,
                                                               match[type], [id], [version], [spec_version]
    GET  /taxii2/<member>/collections/<id>/objects/<object>/   the object (added_after, limit, next, match[version],
                                                               match[spec_version])
    GET  /taxii2/<member>/collections/<id>/objects/<object>/versions/
    GET  /taxii2/<member>/collections/<id>/manifest/           same filters as objects
    POST/DELETE on objects                                     415 without the TAXII media type, else 403 (read-only)
    GET  /taxii2/<member>/status/<id>/                         404: nothing is ever added, so there is no status

Every request is authenticated first (401, or 429 after repeated wrong passwords), then
negotiated (406 unless it accepts `application/taxii+json;version=2.1`). Every answer,
errors included, is `application/taxii+json;version=2.1`; errors are TAXII error
messages (`title`, `description`, `http_status`, `details`).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from bus.errors import TaxiiRequestError
from bus.services.taxii.cursor import MAX_FILTER_VALUES, Cursor, Endpoint, Query, decode, encode
from bus.services.taxii.feed import (
    STIX_MEDIA_TYPE,
    Collection,
    ManifestEntry,
    ObjectsPage,
    ServedObject,
    StixFeed,
    date_added,
)
from bus.web.taxii.auth import TaxiiAuth
from bus.web.taxii.media import TAXII_MEDIA_TYPE, accepts_taxii, is_taxii

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "TaxiiConfig", "api_root_name", "create_taxii_app", "error"]

log = structlog.get_logger("bus.taxii")

MAX_LIMIT = 1000
"""A larger `limit` is lowered to this (TAXII lets a server return fewer than asked)."""
DEFAULT_LIMIT = MAX_LIMIT
"""Without `limit`: OpenCTI's built-in TAXII ingester sends none and reads one page per run."""
STIX_TYPE = re.compile(r"^[a-z0-9][a-z0-9-]{1,249}$")
STIX_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,249}--"
                     r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
TIMESTAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})$")
MATCH_FIELDS = ("type", "id", "version", "spec_version")
"""The match fields served; TAXII lets a server ignore others, and this one does."""


@dataclass(frozen=True)
class TaxiiConfig:
    member: str
    """Whose feed: names the API root (`/taxii2/<member lower case>/`) and the titles."""


def api_root_name(member: str) -> str:
    return member.lower()


def error(status: int, title: str, description: str, *, details: Mapping[str, Any] | None = None,
          headers: Mapping[str, str] | None = None) -> Response:
    """A TAXII error message."""
    body: dict[str, Any] = {"title": title, "description": description, "http_status": str(status)}
    if details:
        body["details"] = dict(details)
    return JSONResponse(body, status_code=status, media_type=TAXII_MEDIA_TYPE, headers=dict(headers or {}))


def _taxii(body: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse(dict(body), media_type=TAXII_MEDIA_TYPE, headers=dict(headers or {}))


# -- request parameters ---------------------------------------------------------------------------


def _micros(parameter: str, text: str) -> int:
    match = TIMESTAMP.fullmatch(text.strip())
    if match is None:
        raise TaxiiRequestError(parameter, f"{text[:40]!r} is not a timestamp like 2026-11-30T09:38:35.123Z")
    whole, fraction, zone = match.groups()
    try:
        when = datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    except ValueError:
        raise TaxiiRequestError(parameter, f"{text[:40]!r} is not a valid date and time") from None
    micros = int((fraction or "0")[:6].ljust(6, "0"))
    return int(when.timestamp()) * 1_000_000 + micros


def _values(request: Request, name: str) -> tuple[str, ...]:
    """A filter's comma-separated values (TAXII: each field at most once, its values ORed)."""
    given = request.query_params.getlist(name)
    if len(given) > 1:
        raise TaxiiRequestError(name, "give it once, its values separated by commas")
    values = [v.strip() for v in (given[0] if given else "").split(",") if v.strip()]
    if len(values) > MAX_FILTER_VALUES:
        raise TaxiiRequestError(name, f"at most {MAX_FILTER_VALUES} values")
    return tuple(dict.fromkeys(values))


def _limit(request: Request) -> int:
    given = request.query_params.get("limit")
    if given is None:
        return DEFAULT_LIMIT
    try:
        value = int(given)
    except ValueError:
        raise TaxiiRequestError("limit", f"{given[:20]!r} is not a whole number") from None
    if value < 1:
        raise TaxiiRequestError("limit", "must be at least 1")
    return min(value, MAX_LIMIT)


def _requested(request: Request, endpoint: Endpoint, collection: Collection,
               object_id: str | None = None) -> tuple[Query, set[str]]:
    """The query a request states, and which of its fields it stated."""
    given: set[str] = set()
    fields: dict[str, Any] = {}
    added_after = request.query_params.getlist("added_after")
    if len(added_after) > 1:
        raise TaxiiRequestError("added_after", "give it once")
    if added_after:
        fields["added_after_us"] = _micros("added_after", added_after[0])
        given.add("added_after_us")
    types = _values(request, "match[type]")
    if bad := [t for t in types if not STIX_TYPE.fullmatch(t)]:
        raise TaxiiRequestError("match[type]", f"{bad[0][:60]!r} is not a STIX type name")
    ids = _values(request, "match[id]")
    if bad := [i for i in ids if not STIX_ID.fullmatch(i)]:
        raise TaxiiRequestError("match[id]", f"{bad[0][:80]!r} is not a STIX identifier (type--uuid)")
    versions = _values(request, "match[version]")
    stated = [v for v in request.query_params.get("match[version]", "").split(",") if v.strip()]
    if len(stated) != len(versions):
        raise TaxiiRequestError("match[version]", "each keyword and version at most once")
    if "all" in versions and len(versions) > 1:
        raise TaxiiRequestError("match[version]", "`all` goes alone")
    for version in versions:
        if version not in ("first", "last", "all"):
            _micros("match[version]", version)
    spec_versions = _values(request, "match[spec_version]")
    if object_id is not None:
        if not STIX_ID.fullmatch(object_id):
            raise TaxiiRequestError("object", f"{object_id[:80]!r} is not a STIX identifier (type--uuid)")
        if ids or types:
            raise TaxiiRequestError("match[id]" if ids else "match[type]", "not a filter of a single object")
        ids = (object_id.lower(),)
    for name, values in (("types", types), ("ids", ids), ("versions", versions), ("spec_versions", spec_versions)):
        if values:
            fields[name] = values
            given.add(name)
    return Query(endpoint, collection.id, **fields), given


NEXT_SET_ASIDE = "X-EPA-Next-Set-Aside"
"""Response header naming why a `next` was not followed (it contradicted the request's own filters)."""
LABELS = {"added_after_us": "added_after", "types": "match[type]", "ids": "match[id]", "versions": "match[version]",
          "spec_versions": "match[spec_version]"}


def _cursor(request: Request, endpoint: Endpoint, collection: Collection,
            object_id: str | None = None) -> tuple[Cursor, str | None]:
    """Where this request starts: its `next` cursor, or the beginning of its query; and, if a `next`
    was set aside, why.

    A cursor continues the query it was issued for: sent alone, or with the same filters, it is
    followed. Sent with filters that contradict it (another collection, endpoint, added_after or
    match), the request's own filters win and it starts from the beginning: OpenCTI's TAXII2
    connector keeps the last `next` of a run and sends it again with the next run's `added_after`,
    and to the other collections it polls. Following it would answer another query; refusing it
    would stop that connector for good. Something that is not a cursor of ours is refused (400).
    """
    query, given = _requested(request, endpoint, collection, object_id)
    text = request.query_params.get("next")
    if text is None:
        return Cursor(query), None
    cursor = decode(text)
    if cursor.query.endpoint != endpoint or cursor.query.collection != collection.id:
        return Cursor(query), "issued for another collection or endpoint"
    for name in sorted(given):
        if getattr(query, name) != getattr(cursor.query, name):
            return Cursor(query), f"issued for another {LABELS[name]}"
    return cursor, None


def _notes(aside: str | None) -> dict[str, str]:
    if aside is None:
        return {}
    log.info("TAXII next set aside", why=aside)
    return {NEXT_SET_ASIDE: f"next was {aside}: answered from the start of this request's filters"}


def _date_headers(page: ObjectsPage) -> dict[str, str]:
    if page.first_added_ms is None or page.last_added_ms is None:
        return {}
    return {"X-TAXII-Date-Added-First": date_added(page.first_added_ms),
            "X-TAXII-Date-Added-Last": date_added(page.last_added_ms)}


def _envelope(page: ObjectsPage, key: str, items: list[Any]) -> dict[str, Any]:
    """TAXII forbids empty lists: an empty answer has no `objects` (or `versions`) at all."""
    body: dict[str, Any] = {"more": page.more}
    if page.more and page.next is not None:
        body["next"] = encode(page.next)
    if items:
        body[key] = items
    return body


# -- the application ------------------------------------------------------------------------------


def create_taxii_app(config: TaxiiConfig, feed: StixFeed, auth: TaxiiAuth) -> FastAPI:
    """The TAXII 2.1 application; the console mounts it at `/taxii2`."""
    root = api_root_name(config.member)
    app = FastAPI(title=f"EPA bus TAXII: {config.member}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.middleware("http")
    async def authenticate_then_negotiate(request: Request,
                                          call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        who = await run_in_threadpool(auth.identify, request)  # argon2 takes tens of milliseconds
        if who.client is None:
            if who.locked:
                return error(429, "Too many failed attempts", who.problem, headers={"Retry-After": "60"})
            if who.bypassed_proxy:
                return error(403, "Forbidden", who.problem)
            challenge = f'Basic realm="EPA bus TAXII {config.member}", charset="UTF-8"'  # TAXII: 401 with a challenge
            return error(401, "Authentication required", who.problem, headers={"WWW-Authenticate": challenge})
        if not accepts_taxii(request.headers.get("accept")):
            return error(406, "Not acceptable",
                         f"this server speaks TAXII 2.1 only: send Accept: {TAXII_MEDIA_TYPE}",
                         details={"accept": request.headers.get("accept", "")[:200]})
        return await call_next(request)

    @app.exception_handler(StarletteHTTPException)
    async def http_problem(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return error(404, "Not found", f"nothing at {request.url.path[:200]} on this TAXII server; the API "
                                           f"root is {request.scope.get('root_path', '')}/{root}/")
        if exc.status_code == 405:
            return error(405, "Method not allowed", "this TAXII server is read-only",
                         headers={"Allow": exc.headers.get("Allow", "GET") if exc.headers else "GET"})
        return error(exc.status_code, "Request failed", str(exc.detail)[:300])

    @app.exception_handler(TaxiiRequestError)
    async def bad_request(request: Request, exc: TaxiiRequestError) -> Response:
        return error(400, "Bad request", str(exc), details={"parameter": exc.parameter})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("TAXII request failed", path=request.url.path[:200])
        return error(500, "Internal error", "the server could not answer; its log says why")

    def root_url(request: Request) -> str:
        return f"{request.scope.get('root_path', '')}/{root}/"

    def collection_or_404(api_root: str, collection_id: str) -> Collection | Response:
        if api_root != root:
            return error(404, "Unknown API root", f"this server's API root is {root}/")
        found = feed.collection(collection_id)
        if found is None:
            return error(404, "Unknown collection", f"no collection {collection_id[:80]!r} in {root}/",
                         details={"collections": [c.id for c in feed.collections]})
        return found

    def collection_resource(c: Collection) -> dict[str, Any]:
        return {"id": c.id, "title": c.title, "description": c.description, "alias": c.title,
                "can_read": True, "can_write": False, "media_types": [STIX_MEDIA_TYPE]}

    @app.get("/")
    def discovery(request: Request) -> Response:
        url = root_url(request)
        return _taxii({
            "title": f"EPA bus: {config.member}'s feed",
            "description": (f"Alerts delivered to {config.member} on the European Ports Alliance bus, verified "
                            "against the signed federation directory, as STIX 2.1."),
            "default": url,
            "api_roots": [url],
        })

    @app.get("/{api_root}/")
    def api_root_info(api_root: str) -> Response:
        if api_root != root:
            return error(404, "Unknown API root", f"this server's API root is {root}/")
        return _taxii({
            "title": f"{config.member}'s feed",
            "description": "One read-only collection per alert type. Objects are added when the alert reaches "
                           "the feed (date_added is the Kafka timestamp); next cursors are built from Kafka offsets.",
            "versions": [TAXII_MEDIA_TYPE],
            "max_content_length": 0,
        })

    @app.get("/{api_root}/status/{status_id}/")
    def status(api_root: str, status_id: str) -> Response:
        return error(404, "Unknown status", "this server is read-only: no add request ever had a status")

    @app.get("/{api_root}/collections/")
    def collections(api_root: str) -> Response:
        if api_root != root:
            return error(404, "Unknown API root", f"this server's API root is {root}/")
        return _taxii({"collections": [collection_resource(c) for c in feed.collections]})

    @app.get("/{api_root}/collections/{collection_id}/")
    def collection(api_root: str, collection_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        return found if isinstance(found, Response) else _taxii(collection_resource(found))

    @app.get("/{api_root}/collections/{collection_id}/objects/")
    def objects(request: Request, api_root: str, collection_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        cursor, aside = _cursor(request, "objects", found)
        page = feed.page(found, cursor, _limit(request))
        bodies = [o.body for o in page.items if isinstance(o, ServedObject)]
        return _taxii(_envelope(page, "objects", bodies), {**_date_headers(page), **_notes(aside)})

    @app.post("/{api_root}/collections/{collection_id}/objects/")
    async def add_objects(request: Request, api_root: str, collection_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        if not is_taxii(request.headers.get("content-type")):
            return error(415, "Unsupported media type", f"objects are added as {TAXII_MEDIA_TYPE}; "
                                                        "and this collection is read-only anyway")
        return error(403, "Read-only collection", "alerts reach this feed through the bus (bus publish), "
                                                  "never through TAXII", details={"can_write": False})

    @app.get("/{api_root}/collections/{collection_id}/objects/{object_id}/")
    def get_object(request: Request, api_root: str, collection_id: str, object_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        cursor, aside = _cursor(request, "object", found, object_id)
        page = feed.versions(found, cursor, _limit(request))
        bodies = [o.body for o in page.items if isinstance(o, ServedObject)]
        if not bodies and cursor.skip == 0:
            return error(404, "Unknown object", f"no {object_id[:80]} in collection {found.title}")
        return _taxii(_envelope(page, "objects", bodies), {**_date_headers(page), **_notes(aside)})

    @app.delete("/{api_root}/collections/{collection_id}/objects/{object_id}/")
    def delete_object(api_root: str, collection_id: str, object_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        return error(403, "Read-only collection", "objects of the feed cannot be deleted through TAXII",
                     details={"can_write": False})

    @app.get("/{api_root}/collections/{collection_id}/objects/{object_id}/versions/")
    def versions(request: Request, api_root: str, collection_id: str, object_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        cursor, aside = _cursor(request, "versions", found, object_id)
        page = feed.versions(found, cursor, _limit(request))
        if not page.items and cursor.skip == 0:
            return error(404, "Unknown object", f"no {object_id[:80]} in collection {found.title}")
        return _taxii(_envelope(page, "versions", list(page.items)), {**_date_headers(page), **_notes(aside)})

    @app.get("/{api_root}/collections/{collection_id}/manifest/")
    def manifest(request: Request, api_root: str, collection_id: str) -> Response:
        found = collection_or_404(api_root, collection_id)
        if isinstance(found, Response):
            return found
        cursor, aside = _cursor(request, "manifest", found)
        page = feed.page(found, cursor, _limit(request))
        entries = [{"id": e.id, "date_added": e.date_added, "version": e.version, "media_type": e.media_type}
                   for e in page.items if isinstance(e, ManifestEntry)]
        return _taxii(_envelope(page, "objects", entries), {**_date_headers(page), **_notes(aside)})

    app.state.api_root = root
    return app

