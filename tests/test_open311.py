"""Open311 GeoReport v2 over real HTTP (the app in a werkzeug server, a real
redis-server, SQLite): every endpoint in JSON and XML, the spec's errors, date windows,
privacy, keys (CLI, revocation, rate limit, audit), and updates flowing back.

No Open311 client library is installed, so the answers are read as the spec's published
example documents are shaped (wiki.open311.org/GeoReport_v2): the same root and item
elements, the same field names, errors as a list of code and description."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from cases.dispatch import apply_return_visit, resolve, sign_for
from cases.models import Case, Category, Department
from cases.open311 import Open311Audit, Open311Key, Open311Request, issue_key
from cases.service import utcnow
from hotline.config import load_settings
from hotline.webapp import create_app
from tests.test_console import PASSWORD

# The spec's example documents' fields, in their order.
SERVICE_FIELDS = [
    "service_code",
    "service_name",
    "description",
    "metadata",
    "type",
    "keywords",
    "group",
]
ATTRIBUTE_FIELDS = [
    "variable",
    "code",
    "datatype",
    "required",
    "datatype_description",
    "order",
    "description",
    "values",
]
REQUEST_FIELDS = [
    "service_request_id",
    "status",
    "status_notes",
    "service_name",
    "service_code",
    "description",
    "agency_responsible",
    "service_notice",
    "requested_datetime",
    "updated_datetime",
    "expected_datetime",
    "address",
    "address_id",
    "zipcode",
    "lat",
    "long",
    "media_url",
]
UPDATE_FIELDS = [  # mySociety's extension
    "update_id",
    "service_request_id",
    "status",
    "updated_datetime",
    "description",
    "media_url",
]
CITIZEN = {
    "first_name": "小明",
    "last_name": "张",
    "email": "zhang.xiaoming@example.com",
    "phone": "13900139000",
}


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    return build_app(redis_server, redis, tmp_path, f"sqlite:///{tmp_path / 'open311.db'}")


def build_app(redis_server, redis, tmp_path, db_url: str):  # type: ignore[no-untyped-def]
    """The web app on a fresh, seeded database, with a traffic police clerk."""
    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from cases.users import add_user

    upgrade(db_url)
    with session_factory(engine_for(db_url))() as s:
        seed(s)
        s.commit()
        add_user(s, "traffic", "department", PASSWORD, department_code="traffic-police")
    settings = load_settings(
        {
            "HOTLINE_VAR_DIR": str(tmp_path),
            "DATABASE_URL": db_url,
            "REDIS_URL": redis_server.url,
            "HOTLINE_SECRET_KEY": "test",
        }
    )
    app = create_app(
        {
            "SETTINGS": settings,
            "REDIS": redis,
            "TESTING": True,
            "OPEN311_RATE_LIMIT": "40 per minute",
        }
    )
    app.config["DB_URL"] = db_url
    return app


@pytest.fixture
def base(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    """The app over real HTTP on a loopback port."""
    yield from serve(app)


@pytest.fixture(params=["sqlite", "postgresql"])
def any_app(request, redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    """The app on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'open311.db'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.create_database(f"open311_{tmp_path.name.lower()[-40:]}")
    return build_app(redis_server, redis, tmp_path, url)


def serve(app) -> Iterator[str]:  # type: ignore[no-untyped-def]
    from tests.served import served_app

    with served_app(app) as url:
        yield url + "/open311"


def sessions(app):  # type: ignore[no-untyped-def]
    return app.extensions["hotline"].handler.directory.sessions


@pytest.fixture
def key(app) -> str:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        _, plain = issue_key(db, "fixmystreet-test", "test")
        db.commit()
    return plain


def xml_of(response: requests.Response) -> ET.Element:
    assert response.headers["Content-Type"].startswith("text/xml"), response.headers
    assert response.content.startswith(b'<?xml version="1.0" encoding="utf-8"?>')
    return ET.fromstring(response.content)


def record(element: ET.Element) -> dict[str, Any]:
    """An XML item as the JSON one reads: its children's text (lists as lists)."""
    out: dict[str, Any] = {}
    for child in element:
        if len(child):
            out[child.tag] = [record(c) if len(c) else c.text for c in child]
        else:
            out[child.tag] = child.text or ""
    return out


def errors_of(response: requests.Response, fmt: str) -> list[tuple[int, str]]:
    """The spec's error document, in either format."""
    if fmt == "xml":
        root = xml_of(response)
        assert root.tag == "errors"
        assert all(e.tag == "error" and [c.tag for c in e] == ["code", "description"] for e in root)
        return [(int(e.findtext("code") or 0), e.findtext("description") or "") for e in root]
    data = response.json()
    assert isinstance(data, list) and all(set(e) == {"code", "description"} for e in data)
    return [(e["code"], e["description"]) for e in data]


def post(base: str, fmt: str, **form: Any) -> requests.Response:
    return requests.post(f"{base}/v2/requests.{fmt}", data=form, timeout=10)


def new_request(base: str, key: str, fmt: str = "json", **form: Any) -> dict[str, Any]:
    fields = {
        "api_key": key,
        "service_code": "street-vending",
        "lat": "20.0440",
        "long": "110.1999",
        "address_string": "龙华区 滨海大道 32 号",
        "description": "夜市摊贩占道经营，行人只能走机动车道",
        **form,
    }
    answer = post(base, fmt, **fields)
    assert answer.status_code == 200, answer.text
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "service_requests" and [c.tag for c in root] == ["request"]
        return record(root[0])
    data = answer.json()
    assert isinstance(data, list) and len(data) == 1
    return data[0]


FORMATS = ("json", "xml")


# -- discovery and services ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_discovery_names_the_v2_endpoint_and_both_formats(base: str, fmt: str) -> None:
    answer = requests.get(f"{base}/discovery.{fmt}", timeout=10)
    assert answer.status_code == 200
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "discovery"
        assert [c.tag for c in root] == ["changeset", "contact", "key_service", "endpoints"]
        endpoint = root.find("endpoints/endpoint")
        assert endpoint is not None
        formats = [f.text for f in endpoint.findall("formats/format")]
        url = endpoint.findtext("url")
        spec = endpoint.findtext("specification")
    else:
        data = answer.json()
        endpoint = data["endpoints"][0]
        formats, url, spec = endpoint["formats"], endpoint["url"], endpoint["specification"]
    assert spec == "http://wiki.open311.org/GeoReport_v2"
    assert url == base + "/v2"
    assert set(formats) == {"text/xml", "application/json"}


@pytest.mark.parametrize("fmt", FORMATS)
def test_services_are_the_catalogue_categories(app, base: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    answer = requests.get(f"{base}/v2/services.{fmt}", timeout=10)
    assert answer.status_code == 200
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "services" and {c.tag for c in root} == {"service"}
        assert all([f.tag for f in s] == SERVICE_FIELDS for s in root)
        services = [record(s) for s in root]
        metadata = {s["service_code"]: s["metadata"] == "true" for s in services}
    else:
        services = answer.json()
        assert all(list(s) == SERVICE_FIELDS for s in services)
        metadata = {s["service_code"]: s["metadata"] for s in services}
    with sessions(app)() as db:
        codes = set(db.scalars(select(Category.code)))
    assert set(metadata) == codes
    assert metadata["traffic-lights"] is True and metadata["street-vending"] is False
    vending = next(s for s in services if s["service_code"] == "street-vending")
    assert vending["service_name"] == "占道经营、流动摊贩"
    assert vending["group"] == "市综合行政执法局（城管）"


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_service_with_metadata_has_a_definition_with_attributes(base: str, fmt: str) -> None:
    answer = requests.get(f"{base}/v2/services/traffic-lights.{fmt}", timeout=10)
    assert answer.status_code == 200
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "service_definition"
        assert [c.tag for c in root] == ["service_code", "attributes"]
        attributes = root.findall("attributes/attribute")
        assert all([f.tag for f in a] == ATTRIBUTE_FIELDS for a in attributes)
        first = record(attributes[0])
        assert first["required"] == "true" and first["order"] == "1"
        assert [v["key"] for v in first["values"]] == ["dark", "stuck", "flashing", "damaged"]
    else:
        data = answer.json()
        assert data["service_code"] == "traffic-lights"
        assert all(list(a) == ATTRIBUTE_FIELDS for a in data["attributes"])
        first = data["attributes"][0]
        assert first["required"] is True and first["order"] == 1
        assert first["datatype"] == "singlevaluelist"
        assert {"key": "dark", "name": "全部不亮 all dark"} in first["values"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_unknown_service_or_path_is_a_404_in_the_spec_error_shape(base: str, fmt: str) -> None:
    answer = requests.get(f"{base}/v2/services/no-such-thing.{fmt}", timeout=10)
    assert answer.status_code == 404
    assert errors_of(answer, fmt) == [(404, "service_code 'no-such-thing' not found")]
    answer = requests.get(f"{base}/v2/nothing-here.{fmt}", timeout=10)
    assert answer.status_code == 404 and errors_of(answer, fmt)[0][0] == 404
    answer = requests.delete(f"{base}/v2/services.{fmt}", timeout=10)
    assert answer.status_code == 405 and errors_of(answer, fmt)[0][0] == 405


# -- posting ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_request_becomes_a_case_with_its_source_and_location_for_the_operators(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    answer = new_request(base, key, fmt, **CITIZEN, **{"attribute[fixmystreet_id]": "42"})
    # As the spec's example: an id, so no token (the spec has one or the other).
    assert list(answer) == ["service_request_id", "service_notice", "account_id"]
    number = answer["service_request_id"]
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        assert case.channel == "open311"
        assert (case.latitude, case.longitude) == (20.044, 110.1999)
        assert case.address == "龙华区 滨海大道 32 号"
        assert case.category is not None and case.category.code == "street-vending"
        assert case.caller_phone == "+8613900139000" and case.caller_name == "张小明"
        # Waits for an operator's review: not dispatched by itself.
        assert case.status == "received" and case.dispatched_at is None
        kept = db.scalar(select(Open311Request).where(Open311Request.case_id == case.id))
        assert kept is not None and len(kept.token) == 32
        assert "zhang.xiaoming@example.com" in kept.payload  # kept, never shown
        assert key not in kept.payload
        assert '"attribute[fixmystreet_id]": ["42"]' in kept.payload  # not lost either


def test_where_the_catalogue_allows_a_request_goes_straight_to_its_unit_with_its_clocks(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        lights = db.scalar(select(Category).where(Category.code == "traffic-lights"))
        assert lights is not None
        lights.open311_direct = True
        db.commit()
    answer = new_request(
        base,
        key,
        service_code="traffic-lights",
        **{"attribute[fault]": "dark", "attribute[direction][]": ["n", "e"]},
    )
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == answer["service_request_id"]))
        assert case is not None and case.status == "dispatched"
        assert case.department is not None and case.department.code == "traffic-police"
        assert case.respond_by is not None and case.handle_by is not None
        assert "全部不亮 all dark" in case.description and "北 north、东 east" in case.description
        assert case.urgency == "urgent"  # the catalogue's own flag for the category


def test_a_street_light_whose_address_names_its_district_goes_to_that_districts_government(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    """Street lights have no city department of their own: the district government
    answers for them, and the address is where the request says which district."""
    with sessions(app)() as db:
        lights = db.scalar(select(Category).where(Category.code == "street-lights"))
        assert lights is not None and lights.department is None
        lights.open311_direct = True
        db.commit()
    named = new_request(
        base, key, service_code="street-lights", address_string="海口市美兰区海甸五西路 8 号对面"
    )
    unnamed = new_request(
        base, key, service_code="street-lights", address_string="海甸五西路 8 号对面"
    )
    both = new_request(
        base, key, service_code="street-lights", address_string="美兰区与琼山区交界处，国兴大道"
    )
    with sessions(app)() as db:
        by_number = {c.number: c for c in db.scalars(select(Case).where(Case.channel == "open311"))}
        went = by_number[named["service_request_id"]]
        assert went.status == "dispatched" and went.district is not None
        assert went.department is not None and went.department.code == "district-meilan"
        for waiting in (unnamed, both):  # no district, or two: an operator decides
            case = by_number[waiting["service_request_id"]]
            assert case.status == "received" and case.department is None
            assert case.district is None


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_requests_answer_a_clear_error_and_make_no_case(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    good = {"api_key": key, "service_code": "street-vending", "address_string": "滨海大道"}
    cases = [
        ({**good, "api_key": ""}, 403, "api_key is required"),
        ({**good, "api_key": "o311_wrong"}, 403, "api_key is not valid"),
        ({**good, "service_code": ""}, 400, "service_code is required"),
        ({**good, "service_code": "unicorns"}, 404, "service_code 'unicorns' not found"),
        ({**good, "address_string": ""}, 400, "a location is required"),
        ({**good, "lat": "91", "long": "110"}, 400, "lat must be between -90 and 90"),
        ({**good, "lat": "north", "long": "110"}, 400, "lat must be a number"),
        ({**good, "lat": "20"}, 400, "lat and long go together"),
        ({**good, "email": "not-an-address"}, 400, "email is not an e-mail address"),
        ({**good, "description": "长" * 4001}, 400, "description is at most 4000 characters"),
        ({**good, "service_code": "traffic-lights"}, 400, "attribute[fault] is required"),
        (
            {**good, "service_code": "traffic-lights", "attribute[fault]": "purple"},
            400,
            "attribute[fault] must be one of: dark, stuck, flashing, damaged",
        ),
        ({**good, "description": "bad\x00byte"}, 400, ""),
    ]
    for form, status, words in cases:
        answer = post(base, fmt, **form)
        assert answer.status_code == status, (form, answer.text)
        [(code, description)] = errors_of(answer, fmt)
        assert code == status and description.startswith(words), (form, description)
    with sessions(app)() as db:
        assert db.scalar(select(Case.id).where(Case.channel == "open311")) is None


def test_an_invalid_phone_does_not_lose_the_request(app, base: str, key: str) -> None:  # type: ignore[no-untyped-def]
    answer = new_request(base, key, phone="call me maybe")
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == answer["service_request_id"]))
        assert case is not None and case.caller_phone == ""
        kept = db.scalar(select(Open311Request).where(Open311Request.case_id == case.id))
        assert kept is not None and "call me maybe" in kept.payload


# -- reading requests ---------------------------------------------------------------------


def get(base: str, path: str, fmt: str, **params: Any) -> requests.Response:
    return requests.get(f"{base}/v2/{path}.{fmt}", params=params, timeout=10)


def requests_of(answer: requests.Response, fmt: str) -> list[dict[str, Any]]:
    assert answer.status_code == 200, answer.text
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "service_requests"
        assert all(c.tag == "request" and [f.tag for f in c] == REQUEST_FIELDS for c in root)
        return [record(c) for c in root]
    data = answer.json()
    assert all(list(r) == REQUEST_FIELDS for r in data)
    return data  # type: ignore[no-any-return]


@pytest.mark.parametrize("fmt", FORMATS)
def test_requests_never_show_the_requesters_name_phone_or_email(
    base: str, key: str, fmt: str
) -> None:
    written = "请联系我 13900139000 或 zhang.xiaoming@example.com，我是张小明"
    number = new_request(base, key, description=written, **CITIZEN)["service_request_id"]
    for path, params in (
        ("requests", {}),
        ("requests", {"service_request_id": number}),
        (f"requests/{number}", {}),
    ):
        answer = get(base, path, fmt, **params)
        found = requests_of(answer, fmt)
        assert [r["service_request_id"] for r in found] == [number]
        text = answer.text
        for secret in (
            "13900139000",
            "zhang.xiaoming",
            "example.com",
            "小明",
            "139 0013",
            "8613900",
        ):
            assert secret not in text, (secret, text)
        assert "请联系我 139****9000" in found[0]["description"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_request_reads_back_with_its_location_and_status(base: str, key: str, fmt: str) -> None:
    number = new_request(base, key, fmt)["service_request_id"]
    [found] = requests_of(get(base, f"requests/{number}", fmt), fmt)
    assert found["status"] == "open"
    assert found["service_code"] == "street-vending"
    assert float(found["lat"]) == 20.044 and float(found["long"]) == 110.1999
    assert found["address"] == "龙华区 滨海大道 32 号"
    assert found["requested_datetime"].endswith("+08:00")
    assert found["status_notes"].startswith("已受理")
    answer = get(base, "requests/12345-20000101-000001", fmt)
    assert answer.status_code == 404
    assert errors_of(answer, fmt) == [(404, "service_request_id '12345-20000101-000001' not found")]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_token_answers_with_its_service_request_id(app, base: str, key: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    number = new_request(base, key)["service_request_id"]
    with sessions(app)() as db:
        kept = db.scalar(
            select(Open311Request)
            .join(Case, Open311Request.case_id == Case.id)
            .where(Case.number == number)
        )
        assert kept is not None
        made = {"service_request_id": number, "token": kept.token}
    answer = get(base, f"tokens/{made['token']}", fmt)
    assert answer.status_code == 200
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "service_requests"
        found = record(root[0])
    else:
        [found] = answer.json()
    assert found == {"service_request_id": made["service_request_id"], "token": made["token"]}
    answer = get(base, "tokens/nope", fmt)
    assert answer.status_code == 404 and errors_of(answer, fmt)[0][0] == 404


def age(app, number: str, days: float) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        case.created_at = utcnow() - timedelta(days=days)
        db.commit()


@pytest.mark.parametrize("fmt", FORMATS)
def test_filters_and_date_windows(app, base: str, key: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    vending = new_request(base, key)["service_request_id"]
    parking = new_request(base, key, service_code="illegal-parking")["service_request_id"]
    old = new_request(base, key)["service_request_id"]
    age(app, old, 100)

    def ids(**params: Any) -> list[str]:
        return [
            r["service_request_id"] for r in requests_of(get(base, "requests", fmt, **params), fmt)
        ]

    # The default is the last 90 days, newest first.
    assert ids() == [parking, vending]
    assert ids(service_code="illegal-parking") == [parking]
    assert ids(service_code="illegal-parking,street-vending") == [parking, vending]
    assert ids(status="open") == [parking, vending] and ids(status="closed") == []
    # service_request_id overrides every other filter, the window included.
    assert ids(service_request_id=f"{old},{vending}", status="closed") == [vending, old]
    start = (utcnow() - timedelta(days=120)).isoformat(timespec="seconds")
    end = (utcnow() - timedelta(days=40)).isoformat(timespec="seconds")
    assert ids(start_date=start, end_date=end) == [old]
    assert ids(start_date=start) == [old]  # 90 days from the start
    assert ids(end_date=end) == [old]  # 90 days up to the end
    yesterday = (utcnow() - timedelta(days=1)).isoformat(timespec="seconds")
    assert ids(end_date=yesterday) == []  # 91 days ago to yesterday: neither old nor new
    for params, words in (
        (
            {"start_date": start, "end_date": utcnow().isoformat()},
            "start_date and end_date are at most 90 days apart",
        ),
        ({"start_date": end, "end_date": start}, "end_date is before start_date"),
        ({"start_date": "yesterday"}, "start_date must be a W3C date and time"),
        (
            {"start_date": "1999-01-01T00:00:00Z"},
            "start_date must be between the years 2000 and 2100",
        ),
        ({"status": "pending"}, "status is open or closed"),
    ):
        answer = get(base, "requests", fmt, **params)
        assert answer.status_code == 400, params
        [(code, description)] = errors_of(answer, fmt)
        assert code == 400 and description.startswith(words), description


def test_the_default_list_stops_at_1000_requests(app, base: str) -> None:  # type: ignore[no-untyped-def]
    from cases.service import next_case_number

    with sessions(app)() as db:
        vending = db.scalar(select(Category).where(Category.code == "street-vending"))
        now = utcnow()
        for i in range(1005):
            at = now - timedelta(minutes=i)
            db.add(
                Case(
                    number=next_case_number(db, at),
                    category=vending,
                    created_at=at,
                    updated_at=at,
                    channel="open311",
                    status="received",
                )
            )
        db.commit()
    assert len(requests_of(get(base, "requests", "json"), "json")) == 1000


# -- updates flow back --------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_updates_flow_back_through_status_notes_and_servicerequestupdates(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        lights = db.scalar(select(Category).where(Category.code == "traffic-lights"))
        assert lights is not None
        lights.open311_direct = True
        db.commit()
    number = new_request(
        base, key, service_code="traffic-lights", **{"attribute[fault]": "dark"}, **CITIZEN
    )["service_request_id"]
    reply = "张小明您好：龙昆路口信号灯已于今日修复，如有问题请回电 13900139000。"
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        unit = db.scalar(select(Department.id).where(Department.code == "traffic-police"))
        assert case is not None
        sign_for(db, case, "traffic", unit)
        db.commit()
        [found] = requests_of(get(base, f"requests/{number}", fmt), fmt)
        assert found["status"] == "open" and "已签收" in found["status_notes"]
        assert found["agency_responsible"] == "市公安局交通警察支队"
        resolve(db, case, "traffic", unit, reply)
        db.commit()
        [found] = requests_of(get(base, f"requests/{number}", fmt, api_key=key), fmt)
        assert found["status"] == "closed"
        assert (
            found["status_notes"]
            == "***您好：龙昆路口信号灯已于今日修复，如有问题请回电 139****9000。"
        )
        apply_return_visit(db, case, "unsatisfied")
        db.commit()
    answer = get(base, "servicerequestupdates", fmt, api_key=key)
    assert answer.status_code == 200
    if fmt == "xml":
        root = xml_of(answer)
        assert root.tag == "service_request_updates"  # as mySociety's extension has it
        assert all(c.tag == "request_update" and [f.tag for f in c] == UPDATE_FIELDS for c in root)
        steps = [record(c) for c in root]
    else:
        steps = answer.json()
        assert all(list(s) == UPDATE_FIELDS for s in steps)
    mine = [(s["status"], s["description"]) for s in steps if s["service_request_id"] == number]
    assert [status for status, _ in mine] == ["OPEN", "IN_PROGRESS", "FIXED", "OPEN", "OPEN"]
    assert mine[2][1].startswith("***您好") and "13900139000" not in answer.text
    assert mine[3][1].startswith("回访不满意")
    assert len({s["update_id"] for s in steps}) == len(steps)
    later = (utcnow() + timedelta(days=1)).isoformat(timespec="seconds")
    answer = get(base, "servicerequestupdates", fmt, start_date=later)
    assert answer.status_code == 200 and "<request_update>" not in answer.text
    assert answer.text.strip().endswith(("[]", "<service_request_updates />"))
    answer = get(
        base,
        "servicerequestupdates",
        fmt,
        start_date="2026-01-01T00:00:00Z",
        end_date="2026-12-31T00:00:00Z",
    )
    assert answer.status_code == 400 and errors_of(answer, fmt)[0][0] == 400


# -- keys: CLI, revocation, rate limit, audit ---------------------------------------------


def test_keys_from_the_cli_are_stored_hashed_listed_revoked_and_audited(
    app, base: str, redis_server
) -> None:  # type: ignore[no-untyped-def]
    from hotline.cli import main

    env = {"DATABASE_URL": app.config["DB_URL"], "REDIS_URL": redis_server.url}
    runner = CliRunner()
    made = runner.invoke(main, ["open311", "key", "add", "FixMyStreet Haikou"], env=env)
    assert made.exit_code == 0, made.output
    plain = made.output.strip().splitlines()[-1]
    with sessions(app)() as db:
        row = db.scalar(select(Open311Key).where(Open311Key.app_name == "FixMyStreet Haikou"))
        assert row is not None and plain not in row.key_hash and len(row.key_hash) == 64
        key_id = row.id
    number = new_request(base, plain)["service_request_id"]
    assert get(base, f"requests/{number}", "xml", api_key=plain).status_code == 200
    listed = runner.invoke(main, ["open311", "key", "list"], env=env)
    assert listed.exit_code == 0 and "FixMyStreet Haikou" in listed.output
    assert plain not in listed.output
    revoked = runner.invoke(main, ["open311", "key", "revoke", str(key_id)], env=env)
    assert revoked.exit_code == 0, revoked.output
    answer = post(base, "xml", api_key=plain, service_code="street-vending", address_string="x")
    assert answer.status_code == 403
    assert errors_of(answer, "xml") == [(403, "api_key is not valid (unknown or revoked)")]
    with sessions(app)() as db:
        trail = [
            (a.key_id, a.method, a.path, a.status, a.target)
            for a in db.scalars(select(Open311Audit).order_by(Open311Audit.id))
        ]
    assert trail == [
        (key_id, "POST", "/open311/v2/requests.json", 200, number),
        (key_id, "GET", f"/open311/v2/requests/{number}.xml", 200, number),
        (None, "POST", "/open311/v2/requests.xml", 403, ""),
    ]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_key_over_its_rate_answers_429_with_retry_after(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    app.config["OPEN311_RATE_LIMIT"] = "3 per minute"
    for _ in range(3):
        assert get(base, "services", fmt, api_key=key).status_code == 200
    answer = get(base, "services", fmt, api_key=key)
    assert answer.status_code == 429
    assert int(answer.headers["Retry-After"]) > 0
    [(code, description)] = errors_of(answer, fmt)
    assert code == 429 and description.startswith("too many requests")
    with sessions(app)() as db:
        refused = db.scalars(select(Open311Audit).where(Open311Audit.status == 429)).one()
        assert refused.key is not None and refused.key.app_name == "fixmystreet-test"
    # Another key has its own budget.
    with sessions(app)() as db:
        _, other = issue_key(db, "another-app", "test")
        db.commit()
    assert get(base, "services", fmt, api_key=other).status_code == 200


def test_posting_needs_no_csrf_token_but_a_key(app, base: str, key: str) -> None:  # type: ignore[no-untyped-def]
    session = requests.Session()
    session.get(base.removesuffix("/open311") + "/login", timeout=10)  # a cookie, if any
    answer = session.post(
        f"{base}/v2/requests.json",
        data={"api_key": key, "service_code": "street-vending", "address_string": "滨海大道"},
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json()[0]["service_request_id"]


def test_on_sqlite_and_postgresql_a_request_round_trips_with_beijing_date_windows(any_app) -> None:  # type: ignore[no-untyped-def]
    """A window written in Beijing time (+08:00) means the same instants on either
    database (SQLite keeps times without their offset)."""
    from cases.service import HOTLINE_TZ

    base = next(serve_app := serve(any_app))
    try:
        with sessions(any_app)() as db:
            _, key = issue_key(db, "pg-and-sqlite", "test")
            db.commit()
        number = new_request(base, key, "xml", **CITIZEN)["service_request_id"]
        now = utcnow().astimezone(HOTLINE_TZ)

        def ids(**params: Any) -> list[str]:
            found = requests_of(get(base, "requests", "xml", **params), "xml")
            return [r["service_request_id"] for r in found]

        minute = timedelta(minutes=1)
        assert ids(start_date=(now - minute).isoformat()) == [number]
        assert ids(start_date=(now + minute).isoformat()) == []
        assert ids(end_date=(now - minute).isoformat()) == []
        naive_beijing = (now - minute).replace(tzinfo=None).isoformat(timespec="seconds")
        assert ids(start_date=naive_beijing) == [number]
        [found] = requests_of(get(base, f"requests/{number}", "json"), "json")
        assert found["lat"] == 20.044 and "小明" not in str(found)
    finally:
        next(serve_app, None)


def test_a_request_kept_without_its_case_is_filed_when_its_token_is_asked_for(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    """The case could not be made when the request came (here: its service left the
    catalogue meanwhile, so the kept row names a code no longer there): the POST still
    answered with a token, and asking for the token files it once it can be."""
    with sessions(app)() as db:
        vending = db.scalar(select(Category).where(Category.code == "street-vending"))
        assert vending is not None
        vending.code = "street-vending-old"
        db.commit()
        row = issue_key(db, "retry-app", "test")[0]
        from cases.open311 import receive_request

        kept = receive_request(
            db,
            row,
            {
                "service_code": "street-vending",
                "address_string": "滨海大道",
                "lat": None,
                "long": None,
                "attributes": {},
                "description": "占道",
            },
        )
        token = kept.token
    answer = get(base, f"tokens/{token}", "json")
    assert answer.status_code == 200 and answer.json() == [
        {"service_request_id": None, "token": token}
    ]
    with sessions(app)() as db:
        kept_row = db.scalar(select(Open311Request).where(Open311Request.token == token))
        assert kept_row is not None and "not found" in kept_row.problem
        vending = db.scalar(select(Category).where(Category.code == "street-vending-old"))
        assert vending is not None
        vending.code = "street-vending"
        db.commit()
    [found] = requests_of_token(base, token)  # files it now
    assert found["service_request_id"].startswith("12345-")
    [case] = requests_of(get(base, f"requests/{found['service_request_id']}", "json"), "json")
    assert case["service_code"] == "street-vending"


def requests_of_token(base: str, token: str) -> list[dict[str, Any]]:
    root = xml_of(get(base, f"tokens/{token}", "xml"))
    return [record(c) for c in root]


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_client_posts_the_citizens_update_to_the_cases_trail_once(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    """mySociety's POST servicerequestupdates, as FixMyStreet sends a comment."""
    number = new_request(base, key)["service_request_id"]
    update = {
        "api_key": key,
        "service_request_id": number,
        "update_id": "fms-248",
        "status": "OPEN",
        "updated_datetime": "2026-12-01T09:00:00Z",
        "description": "摊贩今晚又来了",
        "email": "zhang.xiaoming@example.com",
        "first_name": "小明",
        "last_name": "张",
    }
    answers = []
    for _ in range(2):  # the same update sent twice is one update
        answer = requests.post(f"{base}/v2/servicerequestupdates.{fmt}", data=update, timeout=10)
        assert answer.status_code == 200, answer.text
        if fmt == "xml":
            root = xml_of(answer)
            assert root.tag == "service_request_updates"
            assert [c.tag for c in root] == ["request_update"]
            assert [f.tag for f in root[0]] == ["update_id"]
            answers.append(root[0].findtext("update_id"))
        else:
            [item] = answer.json()
            answers.append(item["update_id"])
    assert answers[0] == answers[1]
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        notes = [e.note for e in case.events if e.action == "open311_update"]
        assert len(notes) == 1 and notes[0].endswith("OPEN 摊贩今晚又来了")
        assert case.status == "received"  # a client's status is recorded, not applied
    # Not echoed back as one of the case's own steps.
    steps = get(base, "servicerequestupdates", "json").json()
    assert all(s["update_id"] != answers[0] for s in steps)
    for form, status, words in (
        ({**update, "api_key": ""}, 403, "api_key is required"),
        ({**update, "service_request_id": "12345-20000101-000009"}, 404, "service_request_id"),
        ({**update, "status": "MAYBE"}, 400, "status is one of: OPEN, CLOSED"),
        ({**update, "updated_datetime": ""}, 400, "updated_datetime is required"),
        ({**update, "update_id": ""}, 400, "update_id is required"),
    ):
        answer = requests.post(f"{base}/v2/servicerequestupdates.{fmt}", data=form, timeout=10)
        assert answer.status_code == status, (form, answer.text)
        [(code, description)] = errors_of(answer, fmt)
        assert code == status and description.startswith(words), description


def test_a_request_waits_in_the_operators_queue_as_an_open311_task_unless_it_goes_direct(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    from cases.channel_tasks import ChannelTask

    queued = new_request(base, key)["service_request_id"]
    with sessions(app)() as db:
        lights = db.scalar(select(Category).where(Category.code == "traffic-lights"))
        assert lights is not None
        lights.open311_direct = True
        db.commit()
    direct = new_request(base, key, service_code="traffic-lights", **{"attribute[fault]": "dark"})
    with sessions(app)() as db:
        tasks = {t.case_number: t.channel for t in db.scalars(select(ChannelTask))}
    assert tasks == {queued: "open311"}
    assert direct["service_request_id"] not in tasks


# -- privacy: what is listed, and how its text reads (security review) ---------------------

ID_NUMBER = "460100199001011234"
BANK_CARD = "6222021234567890123"
PRIVATE_WORDS = f"身份证{ID_NUMBER}，工资卡{BANK_CARD}，住国贸路88号3单元502，电话13900139000"


def case_from_another_channel(app, code: str, channel: str = "phone", reply: str = "") -> str:  # type: ignore[no-untyped-def]
    """A case filed by an operator from a call (or a text, the web form, a patrol),
    dispatched to its unit, and resolved with ``reply`` when one is given."""
    from cases.service import _record, dispatch, next_case_number

    with sessions(app)() as db:
        now = utcnow()
        category = db.scalar(select(Category).where(Category.code == code))
        assert category is not None
        case = Case(
            number=next_case_number(db, now),
            caller_phone="+8613900139000",
            caller_name="王五",
            channel=channel,
            category=category,
            address="龙华区国贸路88号3单元502",
            description=PRIVATE_WORDS,
            urgency="normal",
            status="received",
            created_at=now,
            updated_at=now,
        )
        db.add(case)
        _record(case, "op", "create", None, "received", at=now)
        db.flush()
        dispatch(db, case, "op")
        if reply:
            sign_for(db, case, "traffic", case.department_id)
            resolve(db, case, "traffic", case.department_id, reply)
        db.commit()
        return case.number


def numbers_of(answer: requests.Response, fmt: str) -> set[str]:
    return {r["service_request_id"] for r in requests_of(answer, fmt)}


@pytest.mark.parametrize("fmt", FORMATS)
def test_only_open311_requests_outside_sensitive_categories_are_listed_to_others(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    phoned = case_from_another_channel(app, "traffic-lights", reply=f"已修复。{PRIVATE_WORDS}")
    texted = case_from_another_channel(app, "street-lights", channel="sms")
    wages_phoned = case_from_another_channel(app, "unpaid-wages")
    posted = new_request(base, key, description=PRIVATE_WORDS)["service_request_id"]
    wages = new_request(base, key, service_code="unpaid-wages", description="老板拖欠三个月工资")[
        "service_request_id"
    ]
    medical = new_request(base, key, service_code="medical-service", description="医生态度差")[
        "service_request_id"
    ]
    with sessions(app)() as db:
        _, other = issue_key(db, "another-app", "test")
        db.commit()
    hidden = {phoned, texted, wages_phoned}
    for reader in ({}, {"api_key": other}):
        assert numbers_of(get(base, "requests", fmt, **reader), fmt) == {posted}
        everything = ",".join([*hidden, posted, wages, medical])
        answer = get(base, "requests", fmt, service_request_id=everything, **reader)
        assert numbers_of(answer, fmt) == {posted}
        for number in (*hidden, wages, medical):
            assert get(base, f"requests/{number}", fmt, **reader).status_code == 404
        steps = get(base, "servicerequestupdates", fmt, **reader)
        assert steps.status_code == 200
        assert not any(number in steps.text for number in (*hidden, wages, medical))
    # The client sees its own sensitive requests, in full status.
    mine = get(base, "requests", fmt, api_key=key)
    assert numbers_of(mine, fmt) == {posted, wages, medical}
    assert numbers_of(get(base, f"requests/{wages}", fmt, api_key=key), fmt) == {wages}
    # No phone case even for a key.
    assert phoned not in get(base, "servicerequestupdates", fmt, api_key=key).text


@pytest.mark.parametrize("fmt", FORMATS)
def test_descriptions_addresses_and_replies_are_redacted_for_every_reader(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    with sessions(app)() as db:
        lights = db.scalar(select(Category).where(Category.code == "traffic-lights"))
        assert lights is not None
        lights.open311_direct = True
        db.commit()
    number = new_request(
        base,
        key,
        service_code="traffic-lights",
        description=f"{PRIVATE_WORDS}，邮箱 wang.wu@example.com",
        address_string="龙华区国贸路88号3单元502",
        **{"attribute[fault]": "dark"},
    )["service_request_id"]
    reply = f"已修复，回访请联系{PRIVATE_WORDS}"
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        sign_for(db, case, "traffic", case.department_id)
        resolve(db, case, "traffic", case.department_id, reply)
        db.commit()
    secrets = (ID_NUMBER, BANK_CARD, "3单元", "502", "13900139000", "wang.wu", "example.com")
    for reader in ({}, {"api_key": key}):
        answers = [
            get(base, "requests", fmt, **reader),
            get(base, f"requests/{number}", fmt, **reader),
            get(base, "servicerequestupdates", fmt, **reader),
        ]
        for answer in answers:
            assert answer.status_code == 200 and number in answer.text
            for secret in secrets:
                assert secret not in answer.text, (reader, secret, answer.text)
        [found] = [r for r in requests_of(answers[0], fmt) if r["service_request_id"] == number]
        assert found["address"] == "龙华区国贸路88号***"
        redacted = "身份证***，工资卡***，住国贸路88号***，电话139****9000"
        assert found["description"].startswith(redacted)
        if reader:  # the unit's reply goes to the client that made the request
            assert found["status_notes"].startswith("已修复，回访请联系身份证***")
        else:
            assert found["status_notes"] == "已办结 Resolved"


@pytest.mark.parametrize(
    ("written", "read"),
    [
        ("身份证460100199001011234", "身份证***"),
        ("身份证46010019900101123X号", "身份证***号"),
        ("旧身份证460100900101123", "旧身份证***"),
        ("卡号 6222 0212 3456 7890 123 谢谢", "卡号 *** 谢谢"),
        ("国贸路88号3单元502", "国贸路88号***"),
        ("滨海大道32号5号楼2单元301室门口", "滨海大道32号***门口"),
        ("海甸岛A座1203", "海甸岛***"),
        ("和平路12号3-2-502", "和平路12号***"),
        ("Flat 12, 8 Binhai Road", "***, 8 Binhai Road"),
        ("邮箱 a.b@example.com", "邮箱 ***"),
        ("龙华区 滨海大道 32 号", "龙华区 滨海大道 32 号"),
        ("工单12345-20261201-000001已办结", "工单12345-20261201-000001已办结"),
    ],
)
def test_redact_hides_numbers_that_identify_a_person_and_the_flat(written: str, read: str) -> None:
    from cases.open311 import redact

    assert redact(written) == read


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_key_updates_only_the_requests_it_made(app, base: str, key: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    phoned = case_from_another_channel(app, "traffic-lights")
    with sessions(app)() as db:
        _, other = issue_key(db, "FMS", "test")
        db.commit()
    others = new_request(base, other)["service_request_id"]
    for number in (phoned, others):
        answer = requests.post(
            f"{base}/v2/servicerequestupdates.{fmt}",
            data={
                "api_key": key,
                "service_request_id": number,
                "update_id": "fms-1",
                "status": "OPEN",
                "updated_datetime": "2026-12-01T09:00:00Z",
                "description": "我来补充一句",
            },
            timeout=10,
        )
        assert answer.status_code == 404, answer.text
        assert errors_of(answer, fmt) == [(404, f"service_request_id {number!r} not found")]
    with sessions(app)() as db:
        notes = db.scalars(select(Case).where(Case.number.in_([phoned, others]))).all()
        assert [e for case in notes for e in case.events if e.action == "open311_update"] == []


CONTROLS = "摊贩\x01\x0b\x1f占道"


@pytest.mark.parametrize("fmt", FORMATS)
def test_control_characters_are_refused_in_a_post_and_never_break_the_xml(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    for form in ({"description": CONTROLS}, {"address_string": "滨海大道\x0c32号"}):
        answer = post(
            base, fmt, api_key=key, service_code="street-vending", lat="20.04", long="110.2", **form
        )
        assert answer.status_code == 400, answer.text
        assert errors_of(answer, fmt) == [(400, "text may not contain control characters")]
    with sessions(app)() as db:
        assert db.scalars(select(Open311Request)).all() == []
    # Tabs and line breaks are text.
    number = new_request(base, key, fmt, description="第一行\r\n第二行\t完")["service_request_id"]
    # Text from elsewhere (an operator's edit, the unit's reply in the portal) may hold
    # them: the XML drops them and still parses; JSON keeps them escaped.
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        assert case is not None
        case.description = CONTROLS + "\ufffe"
        case.address = "滨海大道\x0b32号"
        sign_for_and_resolve(db, case, "已清理\x01\x0b")
    for path, params in (
        ("requests", {}),
        (f"requests/{number}", {"api_key": key}),
        ("servicerequestupdates", {"api_key": key}),
    ):
        answer = get(base, path, "xml", **params)
        assert answer.status_code == 200 and number in answer.text
        root = xml_of(answer)  # parses
        text = ET.tostring(root, encoding="unicode")
        assert "\x01" not in text and "\x0b" not in text
    [found] = requests_of(get(base, f"requests/{number}", "xml", api_key=key), "xml")
    assert found["description"] == "摊贩占道" and found["address"] == "滨海大道32号"
    assert found["status_notes"] == "已清理"
    assert get(base, "requests", "json").json()[0]["description"] == CONTROLS + "\ufffe"


def sign_for_and_resolve(db, case: Case, reply: str) -> None:  # type: ignore[no-untyped-def]
    from cases.service import dispatch

    dispatch(db, case, "op", "urban-management")
    sign_for(db, case, "urban", case.department_id)
    resolve(db, case, "urban", case.department_id, reply)
    db.commit()


@pytest.mark.slow
def test_api_keys_never_reach_gunicorns_access_log(redis_server, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`hotline web` as it runs in production: a key sent in a query (GET requests
    with ?api_key=, a token, a key inside an encoded next=) is logged as ***."""
    from tests.test_web_command import hotline_web

    secret = "o311_Zk3sEcReT-kEy_4711"
    var = tmp_path / "var"
    with hotline_web(redis_server, var, tmp_path) as url:
        for path in (
            f"/open311/v2/requests.json?api_key={secret}&status=open",
            f"/open311/v2/services.xml?jurisdiction_id=haikou&API_KEY={secret}",
            f"/open311/v2/servicerequestupdates.json?token={secret}",
            f"/console/cases?access_token={secret}",  # signed out: sent on to /login?next=
        ):
            requests.get(url + path, timeout=10)
    lines = (var / "web.log").read_text().splitlines()
    requested = [line for line in lines if "/open311/v2/" in line or "/console/cases" in line]
    assert len(requested) >= 4, lines
    for line in lines:
        assert "Zk3sEcReT" not in line, line
    text = "\n".join(requested)
    assert "GET /open311/v2/requests.json?api_key=***&status=open HTTP/1.1" in text, text
    assert "jurisdiction_id=haikou&API_KEY=*** HTTP/1.1" in text, text


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_body_over_64_kb_answers_413_in_the_spec_shape_and_is_audited(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    large = {
        "service_code": "street-vending",
        "address_string": "滨海大道",
        "description": "摊" * 30000,
    }
    for query, form in (({}, {"api_key": key, **large}), ({"api_key": key}, large)):
        answer = requests.post(f"{base}/v2/requests.{fmt}", params=query, data=form, timeout=10)
        assert answer.status_code == 413, answer.text
        assert errors_of(answer, fmt) == [(413, "the request is larger than 64 KB")]
    with sessions(app)() as db:
        key_id = db.scalars(select(Open311Key.id)).one()
        trail = [
            (a.key_id, a.method, a.path, a.status)
            for a in db.scalars(select(Open311Audit).order_by(Open311Audit.id))
        ]
        assert db.scalars(select(Open311Request)).all() == []
    path = f"/open311/v2/requests.{fmt}"
    # The key in an unread body is unknown; one in the query is named.
    assert trail == [(None, "POST", path, 413), (key_id, "POST", path, 413)]


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_keys_from_an_address_do_not_lock_out_its_valid_keys(
    app, base: str, key: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    """Behind a shared NAT one client guessing keys must not stop the others."""
    app.config["OPEN311_FAILED_KEY_LIMIT"] = "3 per minute"
    app.config["OPEN311_RATE_LIMIT"] = "6 per minute"
    for _ in range(3):
        assert get(base, "services", fmt, api_key="o311_guess").status_code == 403
    guessed = get(base, "services", fmt, api_key="o311_guess")
    assert guessed.status_code == 429 and int(guessed.headers["Retry-After"]) > 0
    for _ in range(3):  # a valid key, or none, from the same address passes
        assert get(base, "services", fmt, api_key=key).status_code == 200
        assert get(base, "services", fmt).status_code == 200
    assert new_request(base, key, fmt)["service_request_id"]
    assert get(base, "services", fmt, api_key="o311_other").status_code == 429
    # A valid key still has its own limit (6 calls a minute).
    statuses = [get(base, "services", fmt, api_key=key).status_code for _ in range(6)]
    assert statuses[0] == 200 and statuses[-1] == 429, statuses


# -- the rate limit is exact (review) ---------------------------------------------------------


def _mixed_call(base: str, key: str, n: int) -> requests.Response:
    """The n-th of a client's calls, spread over the endpoints as a client spreads them."""
    fields = {"api_key": key, "service_code": "street-vending", "address_string": "滨海大道"}
    calls = [
        lambda: get(base, "services", "json", api_key=key),
        lambda: get(base, "requests", "xml", api_key=key),
        lambda: requests.post(f"{base}/v2/requests.json", data=fields, timeout=10),
        lambda: get(base, "servicerequestupdates", "json", api_key=key),
        lambda: get(base, "services/traffic-lights", "xml", api_key=key),
        lambda: requests.get(f"{base}/discovery.json", params={"api_key": key}, timeout=10),
    ]
    return calls[n % len(calls)]()


def test_a_key_at_6_a_minute_gets_429_on_its_7th_call_whatever_the_endpoints(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    app.config["OPEN311_RATE_LIMIT"] = "6 per minute"
    statuses = [_mixed_call(base, key, n).status_code for n in range(6)]
    assert statuses == [200] * 6
    seventh = _mixed_call(base, key, 6)
    assert seventh.status_code == 429
    assert 1 <= int(seventh.headers["Retry-After"]) <= 60
    [(code, description)] = errors_of(seventh, "json")
    assert code == 429 and description.startswith("too many requests")
    assert get(base, "requests", "xml", api_key=key).status_code == 429  # any endpoint


def test_a_key_at_6_a_minute_gets_6_through_of_calls_arriving_at_once(
    app, base: str, key: str
) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    app.config["OPEN311_RATE_LIMIT"] = "6 per minute"
    start = threading.Barrier(18)

    def call(n: int) -> requests.Response:
        start.wait(timeout=10)
        return _mixed_call(base, key, n)

    with ThreadPoolExecutor(18) as pool:
        answers = list(pool.map(call, range(18)))
    statuses = sorted(a.status_code for a in answers)
    assert statuses == [200] * 6 + [429] * 12, statuses
    assert all(int(a.headers["Retry-After"]) >= 1 for a in answers if a.status_code == 429)


def test_refused_keys_arriving_at_once_are_counted_each(app, base: str) -> None:  # type: ignore[no-untyped-def]
    from concurrent.futures import ThreadPoolExecutor

    app.config["OPEN311_FAILED_KEY_LIMIT"] = "4 per minute"
    start = threading.Barrier(12)

    def guess(n: int) -> int:
        start.wait(timeout=10)
        return get(base, "services", "json", api_key=f"o311_guess{n}").status_code

    with ThreadPoolExecutor(12) as pool:
        statuses = sorted(pool.map(guess, range(12)))
    assert statuses == [403] * 4 + [429] * 8, statuses


# -- cases marked public (a supervisor's judgement) ------------------------------------------


def _console(app, username: str, role: str):  # type: ignore[no-untyped-def]
    """A browser signed in to the console as a new ``role``, and its CSRF token."""
    from cases.users import add_user
    from tests.test_console import csrf_of, sign_in

    with sessions(app)() as db:
        add_user(db, username, role, PASSWORD, display_name=username)
        db.commit()
    client = app.test_client()
    sign_in(client, username)
    return client, csrf_of(client.get("/console/").get_data(as_text=True))


@pytest.mark.parametrize("fmt", FORMATS)
def test_a_supervisor_lists_a_phone_case_on_open311_with_the_same_privacy(
    app, base: str, fmt: str
) -> None:  # type: ignore[no-untyped-def]
    from cases.models import ActionLog

    phoned = case_from_another_channel(app, "traffic-lights", reply=f"已修复。{PRIVATE_WORDS}")
    wages = case_from_another_channel(app, "unpaid-wages", channel="web")
    assert numbers_of(get(base, "requests", fmt), fmt) == set()
    li, token = _console(app, "li", "supervisor")
    page = li.get(f"/console/cases/{phoned}").get_data(as_text=True)
    assert 'id="public-form"' in page and "未公开" in page
    for number in (phoned, wages):
        answer = li.post(
            f"/console/cases/{number}/public", data={"public": "1", "csrf_token": token}
        )
        assert answer.status_code == 302
    # Listed, read back and in the updates, as an Open311 request is, for any reader.
    listed = get(base, "requests", fmt)
    assert numbers_of(listed, fmt) == {phoned}  # a sensitive category stays hidden
    [found] = requests_of(listed, fmt)
    assert found["address"] == "龙华区国贸路88号***"
    assert found["status_notes"] == "已办结 Resolved"  # the reply is for nobody outside
    by_id = get(base, f"requests/{phoned}", fmt)
    steps = get(base, "servicerequestupdates", fmt)
    for answer in (listed, by_id, steps):
        assert answer.status_code == 200 and phoned in answer.text
        for secret in ("王五", "13900139000", ID_NUMBER, BANK_CARD, "3单元"):
            assert secret not in answer.text, (secret, answer.text)
    assert get(base, f"requests/{wages}", fmt).status_code == 404
    page = li.get(f"/console/cases/{wages}").get_data(as_text=True)
    assert "敏感类别" in page
    # Audited on the case's trail and in the action log.
    with sessions(app)() as db:
        case = db.scalar(select(Case).where(Case.number == phoned))
        assert case is not None and case.public
        assert [(e.actor, e.action) for e in case.events][-1] == ("li", "open311_public")
        logged = db.scalars(select(ActionLog.action).where(ActionLog.target == phoned)).all()
        assert logged == ["open311-public"]
    assert "设为公开（Open311）" in li.get(f"/console/cases/{phoned}").get_data(as_text=True)
    # Taken off again.
    li.post(f"/console/cases/{phoned}/public", data={"public": "0", "csrf_token": token})
    assert numbers_of(get(base, "requests", fmt), fmt) == set()
    assert get(base, f"requests/{phoned}", fmt).status_code == 404


def test_only_a_supervisor_or_admin_marks_a_case_public_and_only_with_csrf(app) -> None:  # type: ignore[no-untyped-def]
    phoned = case_from_another_channel(app, "traffic-lights")
    operator, token = _console(app, "op", "operator")
    assert 'id="public-form"' not in operator.get(f"/console/cases/{phoned}").get_data(as_text=True)
    refused = operator.post(
        f"/console/cases/{phoned}/public", data={"public": "1", "csrf_token": token}
    )
    assert refused.status_code == 403
    admin, admin_token = _console(app, "root", "admin")
    assert admin.post(f"/console/cases/{phoned}/public", data={"public": "1"}).status_code == 400
    with sessions(app)() as db:
        assert db.scalar(select(Case.public).where(Case.number == phoned)) is False
    answer = admin.post(
        f"/console/cases/{phoned}/public", data={"public": "1", "csrf_token": admin_token}
    )
    assert answer.status_code == 302
    with sessions(app)() as db:
        assert db.scalar(select(Case.public).where(Case.number == phoned)) is True
    assert (
        admin.post(
            "/console/cases/nope/public", data={"public": "1", "csrf_token": admin_token}
        ).status_code
        == 404
    )
