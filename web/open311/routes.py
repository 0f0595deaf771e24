"""The Open311 endpoints. Each view reads the case database through the desk's
sessions; a POSTed request goes to the desk (calls.open311_desk), which keeps it,
files it as a case and hands it on."""

from __future__ import annotations

import logging

from flask import Blueprint, Response, current_app, g, request
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from cases import open311 as o311
from web.context import services
from web.limits import client_address
from web.open311.limits import Rate, SlidingWindow
from web.open311.render import answer, errors

log = logging.getLogger("hotline.open311")
bp = Blueprint("open311", __name__, url_prefix="/open311")

FORMAT = "<any(json, xml):fmt>"
KEY_LIMIT = "120 per minute"  # each API key (or, without one, each address)
FAILED_KEY_LIMIT = "30 per minute"  # refused keys per address: no guessing
CHANGESET = "2026-12-01T00:00:00+08:00"  # when the endpoints below last changed


def fmt_of_path() -> str:
    return "xml" if request.path.endswith(".xml") else "json"


def _given_key() -> str:
    """The api_key in the query or form; from the query alone when the body is too
    large to read (reading it again would raise after the 413 was answered)."""
    if "open311_given_key" not in g:
        try:
            given = request.values.get("api_key")
        except RequestEntityTooLarge:
            given = request.args.get("api_key")
        g.open311_given_key = (given or "").strip()
    return str(g.open311_given_key)


def _valid_key_id() -> int | None:
    """The live key the request names (looked up once a request), or None."""
    if "open311_valid_key_id" not in g:
        given, found = _given_key(), None
        if given:
            with services().desk.sessions() as db:
                row = o311.key_for(db, given)
                found = row.id if row is not None else None
        g.open311_valid_key_id = found
    return g.open311_valid_key_id  # type: ignore[no-any-return]


def _without_a_bad_key() -> bool:
    """The refused-key limit counts and stops only requests naming a key that is not
    valid: a valid key (or none) from the same address, a shared NAT, still passes."""
    return not _given_key() or _valid_key_id() is not None


def rate_key() -> str:
    """A key by its digest (never the key itself), else the caller's address."""
    given = _given_key()
    return "key:" + o311.key_digest(given) if given else "address:" + client_address()


def _key_limit() -> str:
    return str(current_app.config.get("OPEN311_RATE_LIMIT", KEY_LIMIT))


def _failed_key_limit() -> str:
    return str(current_app.config.get("OPEN311_FAILED_KEY_LIMIT", FAILED_KEY_LIMIT))


class TooMany(o311.Open311Error):
    """429: over a rate limit; ``retry_after`` whole seconds until a request passes."""

    def __init__(self, rate: Rate, retry_after: int) -> None:
        super().__init__(429, f"too many requests: at most {rate}; retry later")
        self.retry_after = retry_after


def _windows() -> SlidingWindow:
    ext = current_app.extensions
    if "hotline_open311_windows" not in ext:
        svc = services()
        ext["hotline_open311_windows"] = SlidingWindow(svc.redis, svc.queue.keys)
    return ext["hotline_open311_windows"]  # type: ignore[no-any-return]


def enforce_limits() -> None:
    """Each key (or address without one) has one budget over every endpoint, counted
    and admitted atomically (web.open311.limits); a request naming a key that is not
    valid also spends its address's budget of refused keys."""
    if not current_app.config.get("RATELIMIT_ENABLED", True):
        return
    windows = _windows()
    rate = Rate.parse(_key_limit())
    wait = windows.admit("key", rate_key(), rate)
    if not wait and not _without_a_bad_key():
        rate = Rate.parse(_failed_key_limit())
        wait = windows.admit("failed-key", client_address(), rate)
    if wait:
        raise TooMany(rate, wait)


@bp.errorhandler(o311.Open311Error)
def open311_error(exc: o311.Open311Error) -> Response:
    response = errors(fmt_of_path(), exc.status, exc.description)
    if isinstance(exc, TooMany):
        response.headers["Retry-After"] = str(exc.retry_after)
    return response


def http_error(exc: HTTPException) -> Response:
    """Unknown paths, wrong methods and the like, in the spec's error shape."""
    code = exc.code or 500
    return errors(fmt_of_path(), code, exc.description or exc.name)


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc: RequestEntityTooLarge) -> Response:
    limit = current_app.config.get("MAX_CONTENT_LENGTH") or 0
    return errors(fmt_of_path(), 413, f"the request is larger than {limit // 1024} KB")


@bp.errorhandler(SQLAlchemyError)
def database_error(exc: SQLAlchemyError) -> Response:
    log.error("open311 %s %s: database error %s", request.method, request.path, type(exc).__name__)
    return errors(fmt_of_path(), 503, "the service is unavailable; try again shortly")


@bp.before_request
def check_key_and_jurisdiction() -> None:
    enforce_limits()  # first: a refusal leaves the key to the audit to look up
    g.open311_key_id = None
    wanted = current_app.config.get("OPEN311_JURISDICTION", "")
    given = (request.values.get("jurisdiction_id") or "").strip()
    if given and wanted and given != wanted:
        raise o311.Open311Error(404, f"jurisdiction_id {given!r} not found")
    if not _given_key():
        return
    g.open311_key_id = _valid_key_id()
    if g.open311_key_id is None:
        raise o311.Open311Error(403, "api_key is not valid (unknown or revoked)")


@bp.after_request
def audit_keyed_calls(response: Response) -> Response:
    """Who used which key for what: every call that named a key, refused or not, and
    every body too large to read (whose key, if it was in the body, is unknown)."""
    if not _given_key() and response.status_code != 413:
        return response
    try:
        with services().desk.sessions() as db:
            if "open311_key_id" not in g:  # refused before the key was read (429, 413)
                g.open311_key_id = _valid_key_id()
            o311.audit(
                db,
                g.open311_key_id,
                request.method,
                request.path,
                response.status_code,
                client_address(),
                g.get("open311_target", ""),
            )
            db.commit()
    except SQLAlchemyError as exc:
        log.warning("could not audit an Open311 call (%s)", type(exc).__name__)
    return response


def _sessions():  # type: ignore[no-untyped-def]
    return services().desk.sessions()


# -- discovery and services -------------------------------------------------------------


@bp.get(f"/discovery.{FORMAT}")
def discovery(fmt: str) -> Response:
    public = services().settings.public_base_url or request.host_url
    base = public.rstrip("/") + (bp.url_prefix or "") + "/v2"
    data = {
        "changeset": CHANGESET,
        "contact": current_app.config.get("OPEN311_CONTACT", "12345 市民服务热线 12345 hotline"),
        "key_service": current_app.config.get(
            "OPEN311_KEY_SERVICE", "API keys from the hotline's administrators"
        ),
        "endpoints": [
            {
                "specification": "http://wiki.open311.org/GeoReport_v2",
                "url": base,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }
    return answer(fmt, "discovery", None, data)


@bp.get(f"/v2/services.{FORMAT}")
def service_list(fmt: str) -> Response:
    with _sessions() as db:
        return answer(fmt, "services", "service", o311.services(db))


@bp.get(f"/v2/services/<service_code>.{FORMAT}")
def service_definition(service_code: str, fmt: str) -> Response:
    with _sessions() as db:
        data = o311.service_definition(db, service_code)
    return answer(fmt, "service_definition", None, data)


# -- requests -----------------------------------------------------------------------------


def _list_arg(name: str) -> list[str]:
    raw = request.args.get(name, "")
    return [part.strip() for part in raw.split(",") if part.strip()][: o311.MAX_RESULTS]


@bp.post(f"/v2/requests.{FORMAT}")
def post_request(fmt: str) -> Response:
    if g.open311_key_id is None:
        raise o311.Open311Error(403, "api_key is required to create a request")
    form = {name: request.form.get(name, "") for name in request.form}
    lists = {name: request.form.getlist(name) for name in request.form}
    taken = services().desk.open311.submit(g.open311_key_id, form, lists)
    g.open311_target = taken.number or taken.token
    if taken.number is None:  # kept: its token answers for it
        data = [{"token": taken.token, "service_notice": NOTICE_QUEUED, "account_id": None}]
        return answer(fmt, "service_requests", "request", data)
    # The spec: a service_request_id, or else a token, never both.
    data = [
        {
            "service_request_id": taken.number,
            "service_notice": NOTICE_DIRECT if taken.direct else NOTICE_QUEUED,
            "account_id": None,
        }
    ]
    return answer(fmt, "service_requests", "request", data)


NOTICE_QUEUED = "已受理，话务员将在 3 分钟内处理 Received: an operator takes it within 3 minutes"
NOTICE_DIRECT = "已派发至承办单位 Sent to the responsible unit"


@bp.get(f"/v2/requests.{FORMAT}")
def get_requests(fmt: str) -> Response:
    with _sessions() as db:
        cases = o311.find_requests(
            db,
            ids=_list_arg("service_request_id"),
            service_codes=_list_arg("service_code"),
            statuses=_list_arg("status"),
            start=request.args.get("start_date", ""),
            end=request.args.get("end_date", ""),
            key_id=g.open311_key_id,
        )
        own = o311.own_case_ids(db, g.open311_key_id, cases)
        data = [o311.request_view(case, case.id in own) for case in cases]
    return answer(fmt, "service_requests", "request", data)


@bp.get(f"/v2/requests/<service_request_id>.{FORMAT}")
def get_request(service_request_id: str, fmt: str) -> Response:
    g.open311_target = service_request_id
    with _sessions() as db:
        case = o311.request_by_id(db, service_request_id, g.open311_key_id)
        own = o311.own_case_ids(db, g.open311_key_id, [case])
        data = [o311.request_view(case, case.id in own)]
    return answer(fmt, "service_requests", "request", data)


@bp.get(f"/v2/tokens/<token>.{FORMAT}")
def get_token(token: str, fmt: str) -> Response:
    """The request behind a token; one kept without its case (the case could not be
    made when it came) is filed now, so asking again finishes the work."""
    data = [services().desk.open311.finish(token)]
    return answer(fmt, "service_requests", "request", data)


@bp.get(f"/v2/servicerequestupdates.{FORMAT}")
def request_updates(fmt: str) -> Response:
    with _sessions() as db:
        data = o311.updates(
            db,
            request.args.get("start_date", ""),
            request.args.get("end_date", ""),
            g.open311_key_id,
        )
    return answer(fmt, "service_request_updates", "request_update", data)


@bp.post(f"/v2/servicerequestupdates.{FORMAT}")
def post_request_update(fmt: str) -> Response:
    """A client's update (the citizen's comment on FixMyStreet, say): answers our id."""
    if g.open311_key_id is None:
        raise o311.Open311Error(403, "api_key is required to post an update")
    form = {name: request.form.get(name, "") for name in request.form}
    g.open311_target = form.get("service_request_id", "")[:64]
    data = [{"update_id": services().desk.open311.post_update(g.open311_key_id, form)}]
    return answer(fmt, "service_request_updates", "request_update", data)
