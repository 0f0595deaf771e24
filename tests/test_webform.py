"""The citizens' web form's rules over HTTP (the Flask test client, a real Redis and
SQLite): without SMS it files at once; a file that is not a photo is refused; the
address's form limit; wrong codes end a pending form; the code goes to the phone and
never to one that opted out."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.test import encode_multipart

from cases.models import Case, add_opt_out
from tests.test_console import csrf_of
from tests.test_sms import ACCOUNT, MessagesApi, app, twilio_api  # noqa: F401  (fixtures)
from tests.twilio_peer import app_on_twilio

FORM = {"what": "幸福小区3栋楼下的井盖丢了", "where": "金龙路", "phone": "13800138000"}


@pytest.fixture
def plain_app(redis: Redis, redis_server, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    """The app without SMS: the form is guarded by the rate limits alone."""
    redis.flushdb()
    return app_on_twilio(
        redis, redis_server.url, tmp_path, "http://127.0.0.1:9", monkeypatch, ACCOUNT, ()
    )


@pytest.fixture
def sms_app(app):  # type: ignore[no-untyped-def]  # noqa: F811
    """The app with SMS on Twilio (tests.test_sms: the stand-in Messages API)."""
    return app


def post_form(client, data: dict[str, object]):  # type: ignore[no-untyped-def]
    """The form as a browser sends it, encoded here in memory (the test client would
    spool a large body to a temporary file it never closes)."""
    token = csrf_of(client.get("/report").get_data(as_text=True))
    fields = {
        k: FileStorage(v[0], v[1], content_type=v[2]) if isinstance(v, tuple) else v
        for k, v in data.items()
    }
    boundary, body = encode_multipart(MultiDict({**fields, "csrf_token": token}))
    return client.post(
        "/report", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )


def cases_of(app) -> list[Case]:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        return list(db.scalars(select(Case)))


def test_without_sms_the_form_files_a_web_case_at_once(plain_app) -> None:  # type: ignore[no-untyped-def]
    page = post_form(plain_app.test_client(), FORM)
    assert page.status_code == 200
    (case,) = cases_of(plain_app)
    assert case.channel == "web" and case.caller_phone == "+8613800138000"
    assert case.number in page.get_data(as_text=True)


def test_the_district_of_the_address_is_kept_for_the_dispatch(plain_app) -> None:  # type: ignore[no-untyped-def]
    """The grid's district where the address table knows the street (whatever district
    the text names), else the one district the text names, else none."""
    client = plain_app.test_client()
    addresses = {
        "13800138001": "秀英区某某村 18 号",  # a street the table does not know
        "13800138002": "幸福小区 3 栋楼下",  # no district named, none known
        "13800138003": "美兰区的路灯坏了，在滨海大道 32 号",  # 滨海大道 is in 龙华区
        "13800138004": "美兰区和琼山区交界的路口",  # two named: an operator decides
    }
    for phone, where in addresses.items():
        post_form(client, {**FORM, "where": where, "phone": phone})
    by_phone = {c.caller_phone: c.id for c in cases_of(plain_app)}
    with plain_app.extensions["hotline"].desk.sessions() as db:
        districts = {}
        for phone in addresses:
            case = db.get(Case, by_phone["+86" + phone])
            assert case is not None
            districts[phone] = case.district.name if case.district else None
    assert districts == {
        "13800138001": "秀英区",
        "13800138002": None,
        "13800138003": "龙华区",
        "13800138004": None,
    }


def test_a_file_that_is_not_a_photo_is_refused(plain_app) -> None:  # type: ignore[no-untyped-def]
    fake = (io.BytesIO(b"<script>alert(1)</script>"), "photo.jpg", "image/jpeg")
    page = post_form(plain_app.test_client(), {**FORM, "photo": fake})
    assert page.status_code == 400 and "只能上传照片" in page.get_data(as_text=True)
    assert cases_of(plain_app) == []


def test_an_address_files_at_most_five_forms_an_hour(plain_app) -> None:  # type: ignore[no-untyped-def]
    client = plain_app.test_client()
    for _ in range(5):
        assert post_form(client, FORM).status_code == 200
    refused = post_form(client, FORM)
    assert refused.status_code == 429
    assert "请 1 小时后再试，或直接拨打 12345" in refused.get_data(as_text=True)
    assert len(cases_of(plain_app)) == 5


def test_five_wrong_codes_end_the_pending_form(sms_app) -> None:  # type: ignore[no-untyped-def]
    client = sms_app.test_client()
    page = post_form(client, FORM).get_data(as_text=True)
    (text,) = MessagesApi.sent
    assert text["To"] == "+8613800138000" and re.search(r"验证码是 \d{6}", text["Body"])
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    csrf = csrf_of(page)
    code = re.search(r"(\d{6})", text["Body"]).group(1)  # type: ignore[union-attr]
    wrong = "000000" if code != "000000" else "111111"
    statuses = [
        client.post(
            "/report/confirm", data={"token": token, "code": wrong, "csrf_token": csrf}
        ).status_code
        for _ in range(5)
    ]
    assert statuses == [400, 400, 400, 400, 403]
    late = client.post("/report/confirm", data={"token": token, "code": code, "csrf_token": csrf})
    assert late.status_code == 410 and cases_of(sms_app) == []


def test_no_code_is_texted_to_a_number_that_opted_out(sms_app) -> None:  # type: ignore[no-untyped-def]
    with sms_app.extensions["hotline"].desk.sessions() as db:
        add_opt_out(db, "+8613800138000", "sms")
        db.commit()
    page = post_form(sms_app.test_client(), FORM)
    assert page.status_code == 409 and "退订" in page.get_data(as_text=True)
    assert MessagesApi.sent == []


def test_a_phone_sized_photo_is_taken_and_an_oversized_one_refused(plain_app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from cases.photos import CasePhoto

    client = plain_app.test_client()
    photo = b"\xff\xd8\xff\xe0" + b"\x00" * (2 * 1024 * 1024)  # 2 MB, past the app's 64 KB
    taken = post_form(client, {**FORM, "photo": (io.BytesIO(photo), "a.jpg", "image/jpeg")})
    assert taken.status_code == 200
    with plain_app.extensions["hotline"].desk.sessions() as db:
        (kept,) = db.scalars(select(CasePhoto))
        assert kept.size_bytes == len(photo) and kept.content_type == "image/jpeg"
    big = b"\xff\xd8\xff\xe0" + b"\x00" * (3 * 1024 * 1024)
    refused = post_form(client, {**FORM, "photo": (io.BytesIO(big), "b.jpg", "image/jpeg")})
    assert refused.status_code == 400 and "照片太大" in refused.get_data(as_text=True)
    assert len(cases_of(plain_app)) == 1


@pytest.fixture
def capped_app(redis: Redis, redis_server, tmp_path: Path, twilio_api: str, monkeypatch):  # type: ignore[no-untyped-def]  # noqa: F811
    """The app with SMS and a cap of two texts an hour."""
    redis.flushdb()
    return app_on_twilio(
        redis,
        redis_server.url,
        tmp_path,
        twilio_api,
        monkeypatch,
        ACCOUNT,
        (),
        HOTLINE_SMS_PROVIDER="twilio",
        HOTLINE_SMS_FROM="+8689812345",
        HOTLINE_SMS_MAX_PER_HOUR="2",
    )


@pytest.mark.parametrize("phone", ["+88216123456", "+234 803 123 4567", "0044 7911 123456"])
def test_no_code_goes_abroad_and_the_request_is_filed_without_one(sms_app, phone: str) -> None:  # type: ignore[no-untyped-def]
    page = post_form(sms_app.test_client(), {**FORM, "phone": phone})
    assert page.status_code == 200 and MessagesApi.sent == []
    (case,) = cases_of(sms_app)
    assert case.channel == "web" and case.number in page.get_data(as_text=True)
    assert "收不到12345短信" in page.get_data(as_text=True)


def test_codes_beyond_the_hourly_cap_are_refused_clearly(capped_app, caplog) -> None:  # type: ignore[no-untyped-def]
    client = capped_app.test_client()
    for phone in ("13800138001", "13800138002"):
        assert post_form(client, {**FORM, "phone": phone}).status_code == 200
    refused = post_form(client, {**FORM, "phone": "13800138003"})
    assert refused.status_code == 503 and "上限" in refused.get_data(as_text=True)
    assert FORM["what"] in refused.get_data(as_text=True)  # what was typed is kept
    assert len(MessagesApi.sent) == 2 and cases_of(capped_app) == []
    assert "cap of texts" in caplog.text and "13800138003" not in caplog.text


@pytest.fixture
def served_sms_app(sms_app):  # type: ignore[no-untyped-def]
    """The app with SMS over real HTTP on a loopback port, many requests at once."""
    from tests.served import served_app

    with served_app(sms_app) as url:
        yield url


def test_parallel_wrong_codes_are_each_counted_and_never_fail(  # type: ignore[no-untyped-def]
    sms_app, served_sms_app, redis: Redis
) -> None:
    """25 wrong codes at once (real HTTP, a real Redis): at most five are checked, the
    rest find the form over; none fails with 500 and no key is left without expiry."""
    from concurrent.futures import ThreadPoolExecutor

    import requests

    first = requests.get(served_sms_app + "/report")
    # The session cookie is Secure (the app is public on https): sent here by hand.
    cookie = {"Cookie": "; ".join(f"{c.name}={c.value}" for c in first.cookies)}
    csrf = csrf_of(first.text)
    page = requests.post(
        served_sms_app + "/report", data={**FORM, "csrf_token": csrf}, headers=cookie
    ).text
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    (text,) = MessagesApi.sent
    code = re.search(r"(\d{6})", text["Body"]).group(1)  # type: ignore[union-attr]
    wrong = "000000" if code != "000000" else "111111"
    form = {"token": token, "code": wrong, "csrf_token": csrf_of(page)}

    def confirm(_: int) -> int:
        answer = requests.post(served_sms_app + "/report/confirm", data=form, headers=cookie)
        return answer.status_code

    with ThreadPoolExecutor(max_workers=25) as pool:
        statuses = sorted(pool.map(confirm, range(25)))
    assert 500 not in statuses
    assert statuses.count(400) == 4 and statuses.count(403) == 1
    assert statuses.count(410) == 20
    pattern = sms_app.extensions["hotline"].queue.keys.report_pending("*")
    assert list(redis.scan_iter(pattern)) == []  # not re-created, TTL or not
    late = requests.post(
        served_sms_app + "/report/confirm", data={**form, "code": code}, headers=cookie
    )
    assert late.status_code == 410 and cases_of(sms_app) == []


def test_a_pending_form_missing_its_phone_is_expired_and_what_was_typed_kept(  # type: ignore[no-untyped-def]
    sms_app, redis: Redis
) -> None:
    client = sms_app.test_client()
    page = post_form(client, FORM).get_data(as_text=True)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
    pending = sms_app.extensions["hotline"].queue.keys.report_pending(token)
    redis.hdel(pending, "phone")  # a form half gone
    answer = client.post(
        "/report/confirm", data={"token": token, "code": "123456", "csrf_token": csrf_of(page)}
    )
    assert answer.status_code == 410
    assert "验证码已过期" in answer.get_data(as_text=True)
    assert FORM["what"] in answer.get_data(as_text=True)
    assert not redis.exists(pending)


def test_a_photo_past_the_body_limit_shows_the_form_again_with_what_was_typed(plain_app) -> None:  # type: ignore[no-untyped-def]
    """A browser that could not make the photo smaller: no bare English 413 page, the
    form again in Chinese with the three boxes as typed."""
    client = plain_app.test_client()
    huge = b"\xff\xd8\xff\xe0" + b"\x00" * (5 * 1024 * 1024)
    page = post_form(client, {**FORM, "photo": (io.BytesIO(huge), "big.jpg", "image/jpeg")})
    html = page.get_data(as_text=True)
    assert page.status_code == 413 and 'lang="zh-CN"' in html
    assert "照片太大，请换一张较小的照片，或不附照片提交" in html
    assert FORM["what"] in html and FORM["where"] in html and FORM["phone"] in html
    assert cases_of(plain_app) == []
    assert post_form(client, FORM).status_code == 200  # sent again without the photo


def code_of_last_text() -> str:
    return re.search(r"验证码是 (\d{6})", MessagesApi.sent[-1]["Body"]).group(1)  # type: ignore[union-attr]


def test_a_citizen_who_left_the_code_page_finds_the_pending_form_again(
    sms_app, redis: Redis
) -> None:  # type: ignore[no-untyped-def]
    client = sms_app.test_client()
    assert post_form(client, FORM).status_code == 200
    (pending,) = redis.scan_iter(sms_app.extensions["hotline"].queue.keys.report_pending("*"))
    redis.expire(pending, 250)  # the citizen comes back six minutes later
    back = client.get("/report").get_data(as_text=True)
    assert "您有一份待确认的诉求" in back and "138****8000" in back
    assert "请在5分钟内输入" in back  # the code's time left, in whole minutes
    token = re.search(r'name="token" value="([^"]+)"', back).group(1)  # type: ignore[union-attr]
    fresh = client.get("/report?new=1").get_data(as_text=True)
    assert "您有一份待确认的诉求" not in fresh and 'id="report-what"' in fresh
    done = client.post(
        "/report/confirm",
        data={"token": token, "code": code_of_last_text(), "csrf_token": csrf_of(back)},
    )
    assert done.status_code == 200 and "已收到您的反映" in done.get_data(as_text=True)
    (case,) = cases_of(sms_app)
    assert case.description == FORM["what"]
    after = client.get("/report").get_data(as_text=True)  # filed: nothing pending now
    assert "您有一份待确认的诉求" not in after and 'id="report-what"' in after


class RefusingMessagesApi(MessagesApi):
    """Twilio refusing a number it cannot text (400, code 21211), as it does for good."""

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers["Content-Length"])
        self.rfile.read(length)
        body = b'{"code": 21211, "message": "Invalid \'To\' Phone Number", "status": 400}'
        self.send_response(400)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def refusing_app(redis: Redis, redis_server, tmp_path: Path, monkeypatch):  # type: ignore[no-untyped-def]
    from tests.twilio_peer import http_peer

    redis.flushdb()
    with http_peer(RefusingMessagesApi) as api:
        yield app_on_twilio(
            redis,
            redis_server.url,
            tmp_path,
            api,
            monkeypatch,
            ACCOUNT,
            (),
            HOTLINE_SMS_PROVIDER="twilio",
            HOTLINE_SMS_FROM="+8689812345",
        )


def test_a_number_the_carrier_refuses_is_asked_to_be_checked(refusing_app) -> None:  # type: ignore[no-untyped-def]
    page = post_form(refusing_app.test_client(), {**FORM, "phone": "139 0000 0404"})
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "请检查手机号是否填对" in html
    assert "稍后再试" not in html  # trying later would never work
    assert FORM["what"] in html and "139 0000 0404" in html
    assert cases_of(refusing_app) == []


def test_the_done_pages_lookup_link_fills_in_the_case_number(plain_app) -> None:  # type: ignore[no-untyped-def]
    client = plain_app.test_client()
    done = post_form(client, FORM).get_data(as_text=True)
    (case,) = cases_of(plain_app)
    link = re.search(r'id="report-lookup" href="([^"]+)"', done).group(1)  # type: ignore[union-attr]
    lookup = client.get(link.replace("&amp;", "&")).get_data(as_text=True)
    assert re.search(rf'name="number"[^>]*value="{case.number}"', lookup)
    assert re.search(r'name="phone"[^>]*value=""', lookup)  # the phone is still asked for
