"""Open311 GeoReport v2 on the case record (issue 21): API keys (stored hashed,
revocable), the audit of every keyed call, the requests as they came (kept before any
case is made, so a request is never lost), and how a case reads as a service request.

The web surface is web.open311; this module imports nothing from queueing, calls or
web."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, DateTime, ForeignKey, Integer, String, Text, and_, or_, select
from sqlalchemy.orm import Mapped, Session, mapped_column, relationship

from cases.grid import district_of_address
from cases.models import Base, Case, CaseEvent, Category, Department
from cases.phones import DEFAULT as DEFAULT_PHONES
from cases.phones import InvalidPhone, PhoneSettings, mask_phone, normalise
from cases.service import HOTLINE_TZ, _record, dispatch, next_case_number, utcnow

KEY_PREFIX = "o311_"
MAX_WINDOW = timedelta(days=90)  # the spec's longest date window, and its default
MAX_RESULTS = 1000  # the spec's default cap on a list
CHANNEL = "open311"
ACTOR = "open311"


class Open311Key(Base):
    """An application's API key: only its sha256 is kept; the key is shown once."""

    __tablename__ = "open311_key"
    id: Mapped[int] = mapped_column(primary_key=True)
    app_name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Open311Request(Base):
    """A POSTed request as it came (private fields included, never shown), its token,
    and the case made from it once there is one."""

    __tablename__ = "open311_request"
    id: Mapped[int] = mapped_column(primary_key=True)
    token: Mapped[str] = mapped_column(String(40), unique=True)
    key_id: Mapped[int] = mapped_column(ForeignKey("open311_key.id"))
    case_id: Mapped[int | None] = mapped_column(ForeignKey("case_record.id"), unique=True)
    received_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    service_code: Mapped[str] = mapped_column(String(48))
    payload: Mapped[str] = mapped_column(Text)  # the form fields, as JSON
    problem: Mapped[str] = mapped_column(Text, default="")  # why no case was made yet
    case: Mapped[Case | None] = relationship()


class Open311Audit(Base):
    """Who used which key for what: one row per keyed call, refused ones included."""

    __tablename__ = "open311_audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    key_id: Mapped[int | None] = mapped_column(ForeignKey("open311_key.id"), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    address: Mapped[str] = mapped_column(String(64))
    target: Mapped[str] = mapped_column(String(64), default="")  # a service request id
    key: Mapped[Open311Key | None] = relationship()


class Open311Error(Exception):
    """An answer the spec names: an HTTP status and a description for the client."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


# -- keys ------------------------------------------------------------------------------


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def issue_key(session: Session, app_name: str, created_by: str) -> tuple[Open311Key, str]:
    """A new key for an application; the key itself is returned once and never stored."""
    name = app_name.strip()
    if not name or len(name) > 100:
        raise ValueError("the application's name is 1 to 100 characters")
    plain = KEY_PREFIX + secrets.token_urlsafe(32)
    row = Open311Key(
        app_name=name, key_hash=_digest(plain), created_by=created_by[:64], created_at=utcnow()
    )
    session.add(row)
    session.flush()
    return row, plain


def list_keys(session: Session) -> list[Open311Key]:
    return list(session.scalars(select(Open311Key).order_by(Open311Key.id)))


def revoke_key(session: Session, which: str) -> list[Open311Key]:
    """Revoke a key by its id, or every live key of an application by its name."""
    query = select(Open311Key).where(Open311Key.revoked_at.is_(None))
    if which.isdigit():
        query = query.where(Open311Key.id == int(which))
    else:
        query = query.where(Open311Key.app_name == which)
    rows = list(session.scalars(query))
    for row in rows:
        row.revoked_at = utcnow()
    session.flush()
    return rows


def key_for(session: Session, given: str) -> Open311Key | None:
    """The live key matching ``given``, or None (unknown or revoked)."""
    if not given or len(given) > 200:
        return None
    row = session.scalar(select(Open311Key).where(Open311Key.key_hash == _digest(given)))
    if row is None or row.revoked_at is not None:
        return None
    return row


def key_digest(given: str) -> str:
    """How the rate limiter names a key (never the key itself)."""
    return _digest(given)[:24]


def audit(
    session: Session,
    key_id: int | None,
    method: str,
    path: str,
    status: int,
    address: str,
    target: str = "",
) -> None:
    session.add(
        Open311Audit(
            at=utcnow(),
            key_id=key_id,
            method=method[:8],
            path=path[:200],
            status=status,
            address=address[:64],
            target=target[:64],
        )
    )
    if key_id is not None:
        key = session.get(Open311Key, key_id)
        if key is not None:
            key.last_used_at = utcnow()


# -- services -----------------------------------------------------------------------------

# The questions a service asks beyond what, where and who (a service definition's
# attributes); a category listed here has metadata true.
SERVICE_ATTRIBUTES: dict[str, list[dict[str, Any]]] = {
    "traffic-lights": [
        {
            "code": "fault",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "信号灯故障情况 What is wrong with the lights?",
            "values": [
                ("dark", "全部不亮 all dark"),
                ("stuck", "一直不变 stuck on one colour"),
                ("flashing", "黄灯闪烁 flashing yellow"),
                ("damaged", "灯杆或灯头损坏 pole or head damaged"),
            ],
        },
        {
            "code": "direction",
            "datatype": "multivaluelist",
            "required": False,
            "description": "哪个方向的信号灯 Which approaches?",
            "values": [
                ("n", "北 north"),
                ("e", "东 east"),
                ("s", "南 south"),
                ("w", "西 west"),
            ],
        },
    ],
    "construction-noise": [
        {
            "code": "at_night",
            "datatype": "singlevaluelist",
            "required": True,
            "description": "是否在夜间（22:00-6:00）施工 Is the work at night (22:00-6:00)?",
            "values": [("yes", "是 yes"), ("no", "否 no")],
        },
        {
            "code": "since",
            "datatype": "datetime",
            "required": False,
            "description": "从什么时候开始 Since when?",
        },
    ],
    "illegal-parking": [
        {
            "code": "plate",
            "datatype": "string",
            "required": False,
            "description": "车牌号 Number plate",
        },
    ],
}


def _attributes(code: str) -> list[dict[str, Any]]:
    out = []
    for order, spec in enumerate(SERVICE_ATTRIBUTES.get(code, ()), start=1):
        out.append(
            {
                "variable": True,
                "code": spec["code"],
                "datatype": spec["datatype"],
                "required": spec["required"],
                "datatype_description": None,
                "order": order,
                "description": spec["description"],
                "values": [{"key": k, "name": n} for k, n in spec.get("values", ())],
            }
        )
    return out


def services(session: Session) -> list[dict[str, Any]]:
    """The dispatch catalogue's categories as services."""
    rows = session.scalars(select(Category).order_by(Category.code))
    return [
        {
            "service_code": c.code,
            "service_name": c.name,
            "description": c.name,
            "metadata": c.code in SERVICE_ATTRIBUTES,
            "type": "realtime",
            "keywords": c.code.replace("-", ","),
            "group": c.department.name if c.department is not None else "属地区政府",
        }
        for c in rows
    ]


def service_definition(session: Session, code: str) -> dict[str, Any]:
    if session.scalar(select(Category.id).where(Category.code == code)) is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    return {"service_code": code, "attributes": _attributes(code)}


# -- posting a request ----------------------------------------------------------------------

TEXT_LIMITS = {
    "description": 4000,
    "address_string": 500,
    "address_id": 100,
    "email": 254,
    "device_id": 100,
    "account_id": 100,
    "first_name": 32,
    "last_name": 32,
    "phone": 32,
    "media_url": 500,
}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def _coordinate(form: Mapping[str, str], name: str, bound: float) -> float | None:
    raw = form.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number in degrees (WGS84)") from None
    if not math.isfinite(value) or abs(value) > bound:
        raise Open311Error(400, f"{name} must be between -{bound:g} and {bound:g}")
    return value


def _unused(name: str, kept: Mapping[str, Any], attributes: Mapping[str, Any]) -> bool:
    """A field sent that the checked request does not already hold (nor the key)."""
    if name == "api_key" or name in kept:
        return False
    if name.startswith("attribute["):
        return name.removeprefix("attribute[").split("]")[0] not in attributes
    return True


def check_request(
    session: Session, form: Mapping[str, str], lists: Mapping[str, Sequence[str]]
) -> dict[str, Any]:
    """A POSTed request, checked against the spec and its service's definition: the
    fields to keep, or Open311Error(400/404) saying what is wrong. ``lists`` has every
    field's values (a multivaluelist attribute comes as attribute[code][])."""
    code = form.get("service_code", "").strip()
    if not code:
        raise Open311Error(400, "service_code is required")
    if session.scalar(select(Category.id).where(Category.code == code)) is None:
        raise Open311Error(404, f"service_code {code!r} not found")
    for name, limit in TEXT_LIMITS.items():
        if len(form.get(name, "")) > limit:
            raise Open311Error(400, f"{name} is at most {limit} characters")
    lat, long = _coordinate(form, "lat", 90), _coordinate(form, "long", 180)
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long go together")
    address = form.get("address_string", "").strip()
    address_id = form.get("address_id", "").strip()
    if lat is None and not address and not address_id:
        raise Open311Error(
            400, "a location is required: lat and long, address_string or address_id"
        )
    email = form.get("email", "").strip()
    if email and not _EMAIL.fullmatch(email):
        raise Open311Error(400, "email is not an e-mail address")
    media_url = form.get("media_url", "").strip()
    if media_url and not re.match(r"https?://[^\s]+$", media_url):
        raise Open311Error(400, "media_url must be an http or https URL")
    attributes: dict[str, list[str]] = {}
    for spec in SERVICE_ATTRIBUTES.get(code, ()):
        name = f"attribute[{spec['code']}]"
        given = [v.strip() for v in [*lists.get(name, ()), *lists.get(name + "[]", ())]]
        given = [v for v in given if v]
        allowed = [k for k, _ in spec.get("values", ())]
        if spec["required"] and not given:
            raise Open311Error(400, f"{name} is required for service {code}")
        if spec["datatype"] != "multivaluelist" and len(given) > 1:
            raise Open311Error(400, f"{name} takes one value")
        for value in given:
            if allowed and value not in allowed:
                raise Open311Error(400, f"{name} must be one of: {', '.join(allowed)}")
            if len(value) > 200:
                raise Open311Error(400, f"{name} is at most 200 characters")
            if spec["datatype"] == "datetime":
                parse_datetime(value, name)
        if given:
            attributes[spec["code"]] = given
    kept: dict[str, Any] = {name: form.get(name, "").strip() for name in TEXT_LIMITS}
    kept.update(service_code=code, lat=lat, long=long, attributes=attributes)
    # Everything else the client sent (FixMyStreet's own attributes, say), kept with
    # the request for the operators; never the key.
    kept["other"] = {
        name: list(values) for name, values in lists.items() if _unused(name, kept, attributes)
    }
    return kept


def receive_request(session: Session, key: Open311Key, fields: dict[str, Any]) -> Open311Request:
    """Keep a checked request before anything else is done with it, and commit: the
    token answers for it whatever happens to the case."""
    row = Open311Request(
        token=secrets.token_hex(16),
        key_id=key.id,
        received_at=utcnow(),
        service_code=fields["service_code"],
        payload=json.dumps(fields, ensure_ascii=False),
    )
    session.add(row)
    session.commit()
    return row


def _describe(fields: Mapping[str, Any], category: Category) -> str:
    """The description with the definition's answers, as an operator reads them."""
    lines = [fields.get("description") or ""]
    names = {s["code"]: s for s in SERVICE_ATTRIBUTES.get(category.code, ())}
    for code, values in (fields.get("attributes") or {}).items():
        spec = names.get(code, {"description": code})
        labels = dict(spec.get("values", ()))
        shown = "、".join(labels.get(v, v) for v in values)
        lines.append(f"{spec['description']}: {shown}")
    return "\n".join(line for line in lines if line).strip()[:4000]


def file_case(
    session: Session, row: Open311Request, phones: PhoneSettings = DEFAULT_PHONES
) -> tuple[Case, bool]:
    """The case for a kept request (idempotent): channel open311 with its location.
    Returns the case and whether it went straight to its unit (the category allows it
    and the catalogue knows the unit); otherwise it waits for the operators."""
    if row.case is not None:
        return row.case, row.case.dispatched_at is not None
    fields = json.loads(row.payload)
    category = session.scalar(select(Category).where(Category.code == row.service_code))
    if category is None:  # taken out of the catalogue since: an operator decides
        raise Open311Error(404, f"service_code {row.service_code!r} not found")
    try:
        phone = normalise(fields.get("phone") or "", phones) if fields.get("phone") else ""
    except InvalidPhone:
        phone = ""  # kept in the request as given; the case takes numbers it can dial
    name = full_name(fields.get("first_name") or "", fields.get("last_name") or "")
    now = utcnow()
    address = fields.get("address_string") or ""
    if fields.get("address_id"):
        address = (address + f" (address_id {fields['address_id']})").strip()
    case = Case(
        number=next_case_number(session, now),
        caller_phone=phone,
        caller_name=name[:64],
        channel=CHANNEL,
        category=category,
        # From what the citizen wrote, not the client's address_id.
        district=district_of_address(session, fields.get("address_string") or ""),
        address=address[:500],
        latitude=fields.get("lat"),
        longitude=fields.get("long"),
        description=_describe(fields, category),
        urgency="urgent" if category.urgent else "normal",
        status="received",
        created_at=now,
        updated_at=now,
    )
    session.add(case)
    _record(case, ACTOR, "create", None, "received", f"Open311 request {row.token}", at=now)
    session.flush()
    row.case_id, row.problem = case.id, ""
    direct = False
    if category.open311_direct:
        dispatch(session, case, ACTOR)
        direct = case.status == "dispatched"
    session.commit()
    return case, direct


# -- reading requests ------------------------------------------------------------------------

OPEN_TO_CLIENTS = ("received", "dispatched", "accepted", "in_progress", "returned", "reopened")


def w3c(moment: datetime | None) -> str | None:
    """A stored time as the spec writes it (W3C, with the hotline's UTC offset)."""
    if moment is None:
        return None
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(HOTLINE_TZ).isoformat(timespec="seconds")


def parse_datetime(raw: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(raw.strip().replace(" ", "+"))
    except ValueError:
        raise Open311Error(
            400, f"{name} must be a W3C date and time (2026-12-01T08:00:00+08:00)"
        ) from None
    if not 2000 <= moment.year <= 2100:
        raise Open311Error(400, f"{name} must be between the years 2000 and 2100")
    # No offset: the hotline's own time. Compared in UTC, as the times are stored
    # (SQLite keeps no offset: a +08:00 bound would be read 8 hours off).
    return (moment if moment.tzinfo else moment.replace(tzinfo=HOTLINE_TZ)).astimezone(UTC)


def window(start: str, end: str, now: datetime | None = None) -> tuple[datetime, datetime]:
    """start_date and end_date as the spec has them: at most 90 days apart; either alone
    reaches 90 days from it; neither is the last 90 days."""
    now = now or utcnow()
    begin = parse_datetime(start, "start_date") if start.strip() else None
    until = parse_datetime(end, "end_date") if end.strip() else None
    if begin is None and until is None:
        return now - MAX_WINDOW, now
    if begin is None:
        assert until is not None
        begin = until - MAX_WINDOW
    if until is None:
        until = begin + MAX_WINDOW
    if until < begin:
        raise Open311Error(400, "end_date is before start_date")
    if until - begin > MAX_WINDOW:
        raise Open311Error(400, "start_date and end_date are at most 90 days apart")
    return begin, until


def full_name(first: str, last: str) -> str:
    """张 + 小明 is 张小明; Ada + Lovelace is Ada Lovelace."""
    if any("\u4e00" <= c <= "\u9fff" for c in first + last):
        return (last + first).replace(" ", "")
    return " ".join(p for p in (first, last) if p)


def _private(case: Case) -> list[str]:
    """The requester's name as written whole, without spaces, and its parts of two
    characters or more (a lone surname would blank every 张 in the text); the phone."""
    name = case.caller_name or ""
    parts = [name, name.replace(" ", ""), *name.split(), case.caller_phone or ""]
    return sorted({p for p in parts if len(p) >= 2}, key=len, reverse=True)


_ANY_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[A-Za-z]{2,}")
# Read on a copy with ASCII digits (one character for one: the same spans).
_ASCII = str.maketrans("０１２３４５６７８９Ｘｘ", "0123456789Xx")
# 15 digits or more, spaces allowed between groups: an ID number (15 or 18 digits, the
# last may be X) or a bank card (16 to 19). Dashes are not taken: case numbers have them.
_LONG_NUMBER = re.compile(r"(?<!\d)\d(?: ?\d){14,}[Xx]?(?![\dXx])")
# The flat in an address: 3单元502, 5号楼, 2栋, A座, 12层, 502室, 3-2-502, Room 502.
_FLAT_NUMBER = r"(?:[0-9A-Za-z]+|[一二三四五六七八九十]+(?=单元))"
_FLAT = re.compile(
    rf"(?:{_FLAT_NUMBER}\s*(?:号楼|栋|幢|座|单元|室|层|楼|户|房)\s*[-－—]?\s*)+"
    r"(?:[0-9A-Za-z]+(?:室|号|房)?)?"
    r"|(?<!\d)\d{1,3}-\d{1,2}-\d{3,4}(?!\d)"
    r"|(?i:\b(?:room|rm|flat|apt|unit)\.?\s*#?\d+[A-Za-z]?)"
)


def _hide(text: str, pattern: re.Pattern[str]) -> str:
    out, done = [], 0
    for match in pattern.finditer(text.translate(_ASCII)):
        out += [text[done : match.start()], "***"]
        done = match.end()
    return "".join(out) + text[done:]


def redact(text: str) -> str:
    """Text as anyone outside the hotline may read it: ID and bank card numbers, e-mail
    addresses and the flat of an address (unit, floor, room) replaced by ***, phone
    numbers masked (139****9000). The street and its building number stay."""
    text = _hide(_ANY_EMAIL.sub("***", text), _LONG_NUMBER)
    return _hide(mask_phone(text), _FLAT)


def public_text(case: Case, text: str) -> str:
    """Text a client may read: redacted, and without the requester's name."""
    for secret in _private(case):
        text = text.replace(secret, "***")
    return redact(text)


STATUS_NOTES = {
    "accepted": "{unit}已签收，正在办理 Accepted by {unit}",
    "reopened": "回访不满意，已重新办理 Reopened: the citizen was not satisfied",
    "returned": "承办单位退回，正在重新派发 Returned by the unit; being re-dispatched",
    "dispatched": "已派发至{unit} Sent to {unit}",
    "received": "已受理，等待话务员审核 Received; an operator reviews it",
}


RESOLVED_NOTE = "已办结 Resolved"


def status_notes(case: Case, own: bool = False) -> str:
    """What the latest step says: accepted by the unit, resolved (with the unit's reply,
    redacted, for the client that made the request only), or reopened."""
    unit = case.department.name if case.department is not None else ""
    if case.status in ("resolved", "closed"):
        return public_text(case, case.reply) if own and case.reply else RESOLVED_NOTE
    words = STATUS_NOTES.get(case.status, "")
    return words.format(unit=unit) if words else ""


def request_view(case: Case, own: bool = False) -> dict[str, Any]:
    """A case as a service request; never its requester's name, phone or e-mail, and
    its text redacted. ``own``: the reading client made it (it sees the unit's reply)."""
    category = case.category
    return {
        "service_request_id": case.number,
        "status": "open" if case.status in OPEN_TO_CLIENTS else "closed",
        "status_notes": status_notes(case, own),
        "service_name": category.name if category is not None else "",
        "service_code": category.code if category is not None else "",
        "description": public_text(case, case.description),
        "agency_responsible": case.department.name if case.department is not None else "",
        "service_notice": (
            f"{category.handling_days} 个工作日内办结 Handled within "
            f"{category.handling_days} working days"
            if category is not None
            else ""
        ),
        "requested_datetime": w3c(case.created_at),
        "updated_datetime": w3c(case.updated_at),
        "expected_datetime": w3c(case.handle_by),
        "address": public_text(case, case.address),
        "address_id": "",
        "zipcode": "",
        "lat": case.latitude,
        "long": case.longitude,
        "media_url": "",
    }


# What is never listed to anyone but the client that made the request (PIPL: a
# person's wages, health, benefits, family, papers and money, and complaints about a
# person): every category of these units, and these categories of others.
SENSITIVE_UNITS = frozenset(
    {
        "human-resources",  # wages, social insurance, labour contracts
        "medical-insurance",
        "health",  # medical service complaints, vaccination
        "civil-affairs",  # allowances, marriage, funerals
        "justice",  # legal aid
        "veterans",
        "disabled-persons",
        "letters-visits",
        "public-security",  # papers, reports about people
        "tax",
        "housing-fund",
    }
)
SENSITIVE_SERVICES = frozenset(
    {
        "taxi-complaint",  # about a driver
        "ride-hailing",
        "neighbour-disputes",
        "property-registration",
        "school-admission",  # a child's
    }
)


def is_sensitive(category: Category) -> bool:
    unit = category.department.code if category.department is not None else ""
    return category.code in SENSITIVE_SERVICES or unit in SENSITIVE_UNITS


def _public() -> ColumnElement[bool]:
    """Requests anyone may read: those that came in through Open311, and the cases of
    other channels (a call, a text, the web form, a patrol) a supervisor marked public
    (``set_public``), in a category that is not sensitive."""
    sensitive_units = select(Department.id).where(Department.code.in_(SENSITIVE_UNITS))
    shown = select(Category.id).where(
        Category.code.not_in(SENSITIVE_SERVICES),
        or_(Category.department_id.is_(None), Category.department_id.not_in(sensitive_units)),
    )
    return and_(or_(Case.channel == CHANNEL, Case.public.is_(True)), Case.category_id.in_(shown))


PUBLIC_ACTIONS = {True: "open311_public", False: "open311_private"}


def set_public(session: Session, case: Case, public: bool, actor: str) -> bool:
    """A supervisor lists a case of another channel on Open311, or takes it off; on
    the case's trail. Open311's own requests are always listed (nothing changes). The
    listing's rules still apply: sensitive categories stay hidden, text is redacted,
    and no name, phone or e-mail is shown. Returns whether anything changed; the
    caller commits."""
    if case.channel == CHANNEL or bool(case.public) == public:
        return False
    case.public = public
    _record(case, actor, PUBLIC_ACTIONS[public], case.status, case.status)
    return True


def _made_by(key_id: int) -> ColumnElement[bool]:
    made = select(Open311Request.case_id).where(
        Open311Request.key_id == key_id, Open311Request.case_id.is_not(None)
    )
    return Case.id.in_(made)


def _listed(key_id: int | None = None) -> ColumnElement[bool]:
    """What a reader sees: the public requests, and a key's own requests whatever
    their category."""
    return _public() if key_id is None else or_(_public(), _made_by(key_id))


def own_case_ids(session: Session, key_id: int | None, cases: Sequence[Case]) -> set[int]:
    """Which of ``cases`` the key's client made."""
    if key_id is None or not cases:
        return set()
    query = select(Open311Request.case_id).where(
        Open311Request.key_id == key_id, Open311Request.case_id.in_([c.id for c in cases])
    )
    return {case_id for case_id in session.scalars(query) if case_id is not None}


def find_requests(
    session: Session,
    ids: Sequence[str] = (),
    service_codes: Sequence[str] = (),
    statuses: Sequence[str] = (),
    start: str = "",
    end: str = "",
    key_id: int | None = None,
) -> list[Case]:
    """GET requests: by ids (which override every other filter), else the date window
    with service and status filters, newest first, at most 1,000. Only what
    ``_listed(key_id)`` lets the reader see."""
    if ids:
        query = select(Case).where(Case.number.in_(list(ids)[:MAX_RESULTS]), _listed(key_id))
        return list(session.scalars(query.order_by(Case.created_at.desc())))
    for status in statuses:
        if status not in ("open", "closed"):
            raise Open311Error(400, "status is open or closed")
    begin, until = window(start, end)
    query = select(Case).where(_listed(key_id), Case.created_at >= begin, Case.created_at <= until)
    if service_codes:
        query = query.join(Category, Case.category_id == Category.id).where(
            Category.code.in_(list(service_codes))
        )
    if statuses and set(statuses) != {"open", "closed"}:
        opened = Case.status.in_(OPEN_TO_CLIENTS)
        query = query.where(opened if statuses[0] == "open" else ~opened)
    query = query.order_by(Case.created_at.desc(), Case.id.desc()).limit(MAX_RESULTS)
    return list(session.scalars(query))


def request_by_id(session: Session, number: str, key_id: int | None = None) -> Case:
    case = session.scalar(select(Case).where(Case.number == number, _listed(key_id)))
    if case is None:
        raise Open311Error(404, f"service_request_id {number!r} not found")
    return case


def token_view(session: Session, token: str) -> dict[str, Any]:
    row = session.scalar(select(Open311Request).where(Open311Request.token == token))
    if row is None:
        raise Open311Error(404, f"token {token!r} not found")
    return {
        "service_request_id": row.case.number if row.case is not None else None,
        "token": row.token,
    }


# -- updates (mySociety's servicerequestupdates) ------------------------------------------

# A case's steps a client hears about, and the status it reports for each.
# (The extension's states are upper case: OPEN, CLOSED, and its additional ones.)
UPDATE_STATUSES = {
    "dispatched": "OPEN",
    "accepted": "IN_PROGRESS",
    "in_progress": "IN_PROGRESS",
    "resolved": "FIXED",
    "reopened": "OPEN",
    "closed": "CLOSED",
}
CLIENT_UPDATE = "open311_update"  # a note a client POSTed (the citizen's comment)
CLIENT_STATUSES = ("OPEN", "CLOSED", *sorted(set(UPDATE_STATUSES.values()) - {"OPEN", "CLOSED"}))


def update_text(case: Case, event: CaseEvent, own: bool = False) -> str:
    """A step as a client reads it; the unit's reply (redacted) only for its own."""
    if event.action == "resolved":
        if not own:
            return RESOLVED_NOTE
        return public_text(case, case.reply or event.note.removeprefix("答复: "))
    unit = case.department.name if case.department is not None else ""
    words = STATUS_NOTES.get(event.action, "")
    if event.action == "closed":
        return "已办结 Closed"
    if event.action == "in_progress":
        return f"{unit}正在办理 In progress at {unit}"
    return words.format(unit=unit)


def updates(
    session: Session, start: str = "", end: str = "", key_id: int | None = None
) -> list[dict[str, Any]]:
    """The steps of the cases the reader may see in the window, oldest first, at most
    1,000."""
    begin, until = window(start, end)
    rows = session.execute(
        select(CaseEvent, Case)
        .join(Case, CaseEvent.case_id == Case.id)
        .where(
            _listed(key_id),
            CaseEvent.at >= begin,
            CaseEvent.at <= until,
            CaseEvent.action.in_(list(UPDATE_STATUSES)),
            or_(CaseEvent.from_status.is_(None), CaseEvent.from_status != CaseEvent.to_status),
        )
        .order_by(CaseEvent.at, CaseEvent.id)
        .limit(MAX_RESULTS)
    ).all()
    own = own_case_ids(session, key_id, [case for _, case in rows])
    return [
        {
            "update_id": str(event.id),
            "service_request_id": case.number,
            "status": UPDATE_STATUSES[event.action],
            "updated_datetime": w3c(event.at),
            "description": update_text(case, event, case.id in own),
            "media_url": "",
        }
        for event, case in rows
    ]


def post_update(
    session: Session, key: Open311Key, form: Mapping[str, str]
) -> tuple[Case, CaseEvent]:
    """A client's update to a request (mySociety's POST servicerequestupdates): the
    citizen's comment goes to the case's trail for the operators and its unit; the
    same update_id again is the same update. The status a client sends is recorded,
    never applied: the hotline moves its cases itself. A key adds only to requests it
    made."""
    number = form.get("service_request_id", "").strip()
    update_id = form.get("update_id", "").strip()
    status = form.get("status", "").strip().upper()
    description = form.get("description", "").strip()
    for name, value in (("service_request_id", number), ("update_id", update_id)):
        if not value:
            raise Open311Error(400, f"{name} is required")
        if len(value) > 64:
            raise Open311Error(400, f"{name} is at most 64 characters")
    if status not in CLIENT_STATUSES:
        raise Open311Error(400, "status is one of: " + ", ".join(CLIENT_STATUSES))
    if not form.get("updated_datetime", "").strip():
        raise Open311Error(400, "updated_datetime is required")
    parse_datetime(form["updated_datetime"], "updated_datetime")
    if len(description) > 4000:
        raise Open311Error(400, "description is at most 4000 characters")
    case = session.scalar(select(Case).where(Case.number == number, _made_by(key.id)))
    if case is None:  # another client's request, or a case from another channel
        raise Open311Error(404, f"service_request_id {number!r} not found")
    mark = f"[{key.id}:{update_id}]"
    same = session.scalar(
        select(CaseEvent).where(
            CaseEvent.case_id == case.id,
            CaseEvent.action == CLIENT_UPDATE,
            CaseEvent.note.startswith(mark, autoescape=True),
        )
    )
    if same is not None:
        return case, same
    event = CaseEvent(
        at=utcnow(),
        actor=f"open311:{key.app_name}"[:64],
        action=CLIENT_UPDATE,
        from_status=case.status,
        to_status=case.status,
        note=f"{mark} {status} {description}".strip(),
    )
    case.events.append(event)
    case.updated_at = event.at
    session.commit()
    return case, event
