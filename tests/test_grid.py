"""The grid (issue 20): the address table that maps an address to its grid, grid work
dispatched to the grid of the address with the same clocks, and the grid worker's
desk (who may act, on site with a location, photos, resolve, escalate, patrol
reports), on SQLite and PostgreSQL with a real Redis for the clocks."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from rq import Queue
from sqlalchemy import select

from calls import CallerDirectory, CallHandler
from calls.desk import Actor, Desk, DeskError
from cases.dispatch import CaseRefused
from cases.grid import (
    Grid,
    GridCase,
    add_address,
    address_suggestions,
    assign_worker,
    grid_for_address,
    remove_address,
    street_of_address,
)
from cases.models import Case, Category, OverdueRecord
from cases.photos import PhotoRefused, photo_path, photos_of
from cases.service import CallInfo, CaseDraft, create_case_for_call
from cases.users import add_user

GUOMAO_1 = "longhua-s03-c01-g1"  # 龙华区 金贸街道 国贸社区 第1网格 (cases/data/grid_seed.json)
GUOMAO_2 = "longhua-s03-c01-g2"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64
_calls = iter(range(1, 10_000))


def file_case(db, category: str, address: str, **draft: object) -> Case:  # type: ignore[no-untyped-def]
    return create_case_for_call(
        db,
        CallInfo(f"grid-call-{next(_calls)}", "+8613800138000", "asterisk", "1001"),
        CaseDraft(
            description="小区门口下水道堵了",
            category_code=category,
            address=address,
            **draft,  # type: ignore[arg-type]
        ),
    )


def full_name(grid: Grid | None) -> str | None:
    return grid.full_name if grid is not None else None


def grid_of(db, address: str) -> str | None:  # type: ignore[no-untyped-def]
    return full_name(grid_for_address(db, address))


def test_an_address_finds_its_grid_by_house_number_range_road_or_place(session) -> None:  # type: ignore[no-untyped-def]
    db = session
    assert grid_of(db, "海口市龙华区国贸路88号") == "龙华区 金贸街道 国贸社区 第1网格"
    assert grid_of(db, "国贸路 150 号 2 栋") == "龙华区 金贸街道 国贸社区 第2网格"
    assert grid_of(db, "万绿园东门") == "龙华区 滨海街道 滨海社区 第2网格"
    assert grid_of(db, "海南大学图书馆") == "美兰区 人民路街道 海大社区 第2网格"
    # Two roads named alike: the longer name is the one meant.
    assert grid_of(db, "府城中山路5号") == "琼山区 府城街道 府城社区 第1网格"
    assert grid_of(db, "中山路5号") == "龙华区 中山街道 中山社区 第1网格"
    # A road split between grids, and no number: the table cannot say.
    assert grid_for_address(db, "海秀东路") is None
    assert grid_for_address(db, "") is None
    assert grid_for_address(db, "不知道在哪里") is None
    # The street: the grid's, else one the address names itself.
    assert street_of_address(db, "国贸路88号") == "金贸街道"
    assert street_of_address(db, "龙华区金贸街道某小区") == "金贸街道"
    assert street_of_address(db, "不知道在哪里") is None


def test_the_address_table_is_edited_and_read_again_at_once(session) -> None:  # type: ignore[no-untyped-def]
    db = session
    assert grid_for_address(db, "金贸西路8号") is None
    line = add_address(db, GUOMAO_2, "金贸西路", 1, 50)
    assert grid_of(db, "金贸西路8号") == "龙华区 金贸街道 国贸社区 第2网格"
    assert grid_for_address(db, "金贸西路88号") is None  # outside the range
    assert [h["address"] for h in address_suggestions(db, "金贸西路8")] == ["金贸西路8号"]
    assert remove_address(db, line.id)
    assert grid_for_address(db, "金贸西路8号") is None
    with pytest.raises(ValueError):
        add_address(db, GUOMAO_2, "金贸西路", 50, 1)
    hints = address_suggestions(db, "国贸")
    assert {"国贸路1-99号", "国贸路100-299号", "国贸大厦"} <= {h["address"] for h in hints}
    assert all(h["grid"].startswith("龙华区 金贸街道 国贸社区") for h in hints)


def test_grid_work_goes_to_the_grid_of_its_address_with_the_same_clocks(session) -> None:  # type: ignore[no-untyped-def]
    db = session
    drain = file_case(db, "drain-blockage", "龙华区国贸路88号")
    assert drain.status == "dispatched"
    assert drain.department is not None and drain.department.code == "district-longhua"
    assert db.get(Grid, drain.grid_id).code == GUOMAO_1  # type: ignore[union-attr]
    assert db.get(GridCase, drain.id) is not None
    assert drain.respond_by - drain.dispatched_at == timedelta(minutes=30)  # type: ignore[operator]
    assert drain.handle_by is not None
    # Not grid work: the catalogue's unit, but the case still knows its grid.
    water = file_case(db, "water-outage", "龙华区国贸路88号")
    assert water.department is not None and water.department.code == "water-supply"
    assert water.grid_id == drain.grid_id and db.get(GridCase, water.id) is None
    # Grid work at an address the table does not know: the catalogue's unit.
    elsewhere = file_case(db, "drain-blockage", "某个不认识的地方")
    assert elsewhere.department is not None and elsewhere.department.code == "water-affairs"
    # The operator chose another unit than the catalogue's: theirs.
    chosen = file_case(db, "drain-blockage", "国贸路88号", department_code="urban-management")
    assert chosen.department is not None and chosen.department.code == "urban-management"
    marked = set(db.scalars(select(Category.code).where(Category.grid_work)))
    assert {"drain-blockage", "garbage-collection", "neighbour-disputes"} <= marked


@pytest.fixture
def desk(session, db_url, queue):  # type: ignore[no-untyped-def]
    from cases.db import engine_for, session_factory

    sessions = session_factory(engine_for(db_url))
    handler = CallHandler(
        queue, Queue("hotline", connection=queue.redis), CallerDirectory(sessions)
    )
    add_user(session, "zhou", "grid", "correct horse battery", display_name="周网格员")
    add_user(session, "qian", "grid", "correct horse battery", display_name="钱网格员")
    assign_worker(session, "zhou", GUOMAO_1)
    assign_worker(session, "qian", GUOMAO_2)
    session.commit()
    return Desk(handler, sessions)


ZHOU = Actor("zhou", "grid")
QIAN = Actor("qian", "grid")


@pytest.fixture
def reload(desk):  # type: ignore[no-untyped-def]
    """The case as stored now, read in a session the test closes at its end."""
    opened = []

    def read(number: str) -> Case:
        db = desk.sessions()
        opened.append(db)
        return db.scalar(select(Case).where(Case.number == number))  # type: ignore[no-any-return]

    yield read
    for db in opened:
        db.close()


def test_a_grid_worker_takes_their_grids_case_on_site_with_a_photo_and_resolves_it(
    desk, reload, session, tmp_path
) -> None:  # type: ignore[no-untyped-def]
    number = file_case(session, "drain-blockage", "国贸路88号").number
    assert [r.number for r in desk.grid.my_cases(ZHOU)] == [number]
    assert desk.grid.my_cases(QIAN) == []  # the next grid's worker does not see it
    with pytest.raises(DeskError) as refused:
        desk.grid.act(QIAN, number, "on-site", lat=20.03, lon=110.33)
    assert refused.value.status == 404
    with pytest.raises(DeskError):
        desk.grid.act(Actor("water", "department"), number, "on-site")
    desk.grid.act(ZHOU, number, "on-site", lat=20.0301, lon=110.3302, accuracy_m=12)
    case = reload(number)
    assert case.status == "in_progress" and case.accepted_by == "zhou" and case.on_site_at
    assert any("20.03010, 110.33020 ±12 m" in e.note for e in case.events)
    # The response clock stopped: no response timer left in Redis for the case.
    members = {m.decode() for m in desk.queue.redis.zrange(desk.queue.keys.clocks, 0, -1)}
    assert f"{case.id}:response_due" not in members and f"{case.id}:handling_due" in members
    photos = tmp_path / "photos"
    with pytest.raises(PhotoRefused):
        desk.grid.add_photo(ZHOU, number, b"GIF89a not a photo we take", photos)
    with pytest.raises(PhotoRefused):
        desk.grid.add_photo(ZHOU, number, b"\xff\xd8\xff" + b"\x00" * (6 * 1024 * 1024), photos)
    photo = desk.grid.add_photo(ZHOU, number, PNG, photos)
    with desk.sessions() as db:
        kept = photos_of(db, case.id)
        assert [p.id for p in kept] == [photo.id]
        path = photo_path(photos, kept[0])
        assert path is not None and path.read_bytes() == PNG and path.parent.name == number
    with pytest.raises(CaseRefused):
        desk.grid.act(ZHOU, number, "resolve", text="  ")
    desk.grid.act(ZHOU, number, "resolve", text="已疏通下水道")
    case = reload(number)
    assert case.status == "resolved" and case.reply == "已疏通下水道"
    assert desk.grid.my_cases(ZHOU) == []


def test_a_grid_worker_escalates_to_a_department_whose_clocks_start_afresh(
    desk, reload, session
) -> None:  # type: ignore[no-untyped-def]
    number = file_case(session, "drain-blockage", "国贸路88号").number
    units, suggested = desk.grid.escalation_units(ZHOU, number)
    # The unit the case is with (the grid's district government) is not offered.
    assert suggested == "water-affairs" and "district-longhua" not in {u.code for u in units}
    assert desk.grid.handed_on(ZHOU, number) is None  # still theirs
    with pytest.raises(CaseRefused):
        desk.grid.act(ZHOU, number, "escalate", to="water-affairs", text="")
    desk.grid.act(ZHOU, number, "escalate", to="water-affairs", text="主管道堵塞，需要专业疏通车")
    case = reload(number)
    assert case.status == "dispatched" and case.department.code == "water-affairs"
    assert any(e.action == "grid_escalated" for e in case.events)
    assert desk.grid.my_cases(ZHOU) == []
    with pytest.raises(DeskError):  # it is the department's now
        desk.grid.act(ZHOU, number, "resolve", text="已处理")
    assert desk.grid.handed_on(ZHOU, number) == "市水务局"  # said so, not a 404
    assert desk.grid.handed_on(QIAN, number) is None  # never theirs


def test_a_case_already_with_the_district_suggests_no_unit_to_escalate_to(desk, session) -> None:  # type: ignore[no-untyped-def]
    number = file_case(session, "neighbour-disputes", "国贸路88号").number
    units, suggested = desk.grid.escalation_units(ZHOU, number)
    assert suggested == "" and "district-longhua" not in {u.code for u in units}


def test_a_late_grid_is_charged_like_any_unit(desk, session) -> None:  # type: ignore[no-untyped-def]
    case = file_case(session, "garbage-collection", "国贸路88号")
    case.respond_by = case.dispatched_at  # the 30 minutes are up
    session.commit()
    desk.grid.act(ZHOU, case.number, "sign")
    with desk.sessions() as db:
        late = db.scalars(select(OverdueRecord).where(OverdueRecord.case_id == case.id)).all()
        assert [(r.kind, r.person, r.department.code) for r in late] == [
            ("response", "", "district-longhua")
        ]


def test_a_patrol_report_becomes_a_case_of_its_own_source(desk, reload, tmp_path) -> None:  # type: ignore[no-untyped-def]
    case = desk.grid.patrol(
        ZHOU,
        category_code="garbage-collection",
        address="国贸路20号",
        description="路边堆放建筑垃圾",
        lat=20.03,
        lon=110.33,
        photo=PNG,
        photos_dir=tmp_path,
    )
    found = reload(case.number)
    # Their own grid: signed for by them as it is filed, the handling clock running.
    assert (found.channel, found.status, found.caller_phone) == ("patrol", "accepted", "")
    assert found.accepted_by == "zhou" and found.handle_by is not None
    members = {m.decode() for m in desk.queue.redis.zrange(desk.queue.keys.clocks, 0, -1)}
    assert f"{found.id}:response_due" not in members
    assert f"{found.id}:handling_due" in members
    assert found.department.code == "district-longhua"
    # Another grid's address: that grid's worker signs for it, as for any case.
    elsewhere = desk.grid.patrol(
        ZHOU, category_code="garbage-collection", address="国贸路150号", description="垃圾满溢"
    )
    assert reload(elsewhere.number).status == "dispatched"
    assert [r.number for r in desk.grid.my_cases(ZHOU)] == [case.number]
    with desk.sessions() as db:
        assert len(photos_of(db, found.id)) == 1
    solved = desk.grid.patrol(
        ZHOU,
        category_code="neighbour-disputes",
        address="",
        description="邻居噪音纠纷",
        solved_reply="已当场调解",
    )
    found = reload(solved.number)
    assert (found.channel, found.status, found.reply) == ("patrol", "closed", "已当场调解")
    with pytest.raises(DeskError):
        desk.grid.patrol(
            Actor("wang", "operator"),
            category_code="garbage-collection",
            address="",
            description="x",
        )


@pytest.fixture
def app(redis_server, redis, tmp_path):  # type: ignore[no-untyped-def]
    from tests.test_console import make_app

    app = make_app(redis_server, redis, tmp_path)
    app.extensions["hotline_photos_dir"] = tmp_path / "photos"
    with app.extensions["hotline"].desk.sessions() as db:
        add_user(db, "zhou", "grid", "correct horse battery", display_name="周网格员")
        add_user(db, "qian", "grid", "correct horse battery", display_name="钱网格员")
        assign_worker(db, "zhou", GUOMAO_1)
        assign_worker(db, "qian", GUOMAO_2)
        db.commit()
    return app


def test_the_operators_address_field_suggests_from_the_address_table(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import sign_in

    operator = app.test_client()
    sign_in(operator, "wang")
    answer = operator.get("/grid/addresses?q=龙华区国贸路120").get_json()
    assert answer["grid"] == "龙华区 金贸街道 国贸社区 第2网格" and not answer["grid_work"]
    asked = "/grid/addresses?q=国贸路120号&category="
    assert operator.get(asked + "drain-blockage").get_json()["grid_work"]
    assert operator.get(asked + "排水管道堵塞").get_json()["grid_work"]
    assert not operator.get(asked + "water-outage").get_json()["grid_work"]
    hints = answer["suggestions"]
    assert hints == [
        {
            "address": "国贸路120号",
            "grid": "龙华区 金贸街道 国贸社区 第2网格",
            "grid_code": GUOMAO_2,
        }
    ]
    assert "address_hints.js" in operator.get("/console/").get_data(as_text=True)
    clerk = app.test_client()
    sign_in(clerk, "water")
    assert clerk.get("/grid/addresses?q=国贸").status_code == 403


def test_a_grid_workers_page_shows_only_their_grids_cases_and_photos(app, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of, sign_in

    with app.extensions["hotline"].desk.sessions() as db:
        number = file_case(db, "drain-blockage", "国贸路88号").number
    zhou, qian = app.test_client(), app.test_client()
    sign_in(zhou, "zhou")
    sign_in(qian, "qian")
    assert zhou.get("/").headers["Location"].endswith("/grid/")
    assert number in zhou.get("/grid/").get_data(as_text=True)
    assert number not in qian.get("/grid/").get_data(as_text=True)
    assert qian.get(f"/grid/cases/{number}").status_code == 404
    page = zhou.get(f"/grid/cases/{number}").get_data(as_text=True)
    token = csrf_of(page)
    sent = zhou.post(
        f"/grid/cases/{number}/photos",
        data={"csrf_token": token, "photo": (io.BytesIO(PNG), "p.png")},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 302
    # Larger than the app's 64 KB for a form, within the photo's limit: taken.
    jpeg = b"\xff\xd8\xff" + b"\x00" * (300 * 1024)
    sent = zhou.post(
        f"/grid/cases/{number}/photos",
        data={"csrf_token": token, "photo": (io.BytesIO(jpeg), "big.jpg")},
        content_type="multipart/form-data",
    )
    assert sent.status_code == 302
    refused = zhou.post(
        f"/grid/cases/{number}/photos",
        data={"csrf_token": token, "photo": (io.BytesIO(b"GIF89a..."), "a.gif")},
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422 and "只能上传 JPEG、PNG 或 WebP 照片" in refused.text
    with app.extensions["hotline"].desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        photo_id = photos_of(db, case.id)[0].id
    with zhou.get(f"/grid/photos/{photo_id}") as shown:
        assert shown.data == PNG
    assert qian.get(f"/grid/photos/{photo_id}").status_code == 404
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    assert f"/grid/photos/{photo_id}" in supervisor.get(f"/console/cases/{number}").text
    clerk = app.test_client()
    sign_in(clerk, "water")  # water-affairs: not this case's unit
    assert clerk.get(f"/grid/photos/{photo_id}").status_code == 404


def test_the_address_table_and_grid_workers_from_the_command_line(
    redis_server, tmp_path, monkeypatch
) -> None:  # type: ignore[no-untyped-def]
    from click.testing import CliRunner

    from cases.db import engine_for, session_factory, upgrade
    from cases.seed import seed
    from hotline.cli import main

    database = f"sqlite:///{tmp_path / 'hotline.db'}"
    upgrade(database)
    with session_factory(engine_for(database))() as db:
        seed(db)
        add_user(db, "zhou", "grid", "correct horse battery")
        db.commit()
    monkeypatch.setenv("DATABASE_URL", database)
    monkeypatch.setenv("REDIS_URL", redis_server.url)
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path))
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(main, ["--log-level", "WARNING", "grid", *args])

    assert run("find", "金贸西路8号").exit_code == 1
    added = run("address", "add", GUOMAO_2, "金贸西路", "--from", "1", "--to", "50")
    assert added.exit_code == 0, added.output
    found = run("find", "金贸西路8号")
    assert found.exit_code == 0 and found.output.startswith(GUOMAO_2)
    assert run("address", "add", GUOMAO_2, "金贸西路", "--from", "9").exit_code != 0
    assert run("assign", "zhou", GUOMAO_1).exit_code == 0
    assert run("assign", "nobody", GUOMAO_1).exit_code != 0
    listed = run("list", "--street", "金贸街道").output
    assert f"{GUOMAO_1}\t龙华区 金贸街道 国贸社区 第1网格\tzhou" in listed
    line_id = added.output.split()[1].rstrip(":")
    assert run("address", "remove", line_id).exit_code == 0
    assert run("find", "金贸西路8号").exit_code == 1


def test_an_unsatisfied_citizen_sends_the_case_back_to_the_same_grid(desk, session) -> None:  # type: ignore[no-untyped-def]
    from cases.dispatch import apply_return_visit

    number = file_case(session, "neighbour-disputes", "国贸路88号").number
    desk.grid.act(ZHOU, number, "resolve", text="已上门调解")
    with desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        apply_return_visit(db, case, "unsatisfied")
        db.commit()
        assert case.status == "dispatched" and case.department.code == "district-longhua"
    assert [r.number for r in desk.grid.my_cases(ZHOU)] == [number]


# -- the phone page's rough edges (the usability review of issue 20) ------------------


def _grid_page(app, username: str = "zhou"):  # type: ignore[no-untyped-def]
    from tests.test_console import sign_in

    client = app.test_client()
    sign_in(client, username)
    return client


def _file(app, category: str = "drain-blockage", address: str = "国贸路88号") -> str:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        return file_case(db, category, address).number


def _case(app, number: str) -> Case:  # type: ignore[no-untyped-def]
    with app.extensions["hotline"].desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        db.expunge_all()
        return case  # type: ignore[no-any-return]


TOO_LARGE = "照片超过5 MB，请重新拍摄或选择较小的照片"


def _too_large_post(client, path: str, fields: dict[str, str]):  # type: ignore[no-untyped-def]
    """A 7 MB photo, encoded here in memory: the test client's own encoding of a large
    body leaves a temporary file open when the app answers before reading it."""
    boundary = "grid-test-boundary"
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
        for k, v in fields.items()
    ]
    parts.append(
        f'--{boundary}\r\nContent-Disposition: form-data; name="photo"; filename="p.jpg"\r\n'
        "Content-Type: image/jpeg\r\n\r\n".encode()
        + b"\xff\xd8\xff"
        + b"\x00" * (7 * 1024 * 1024)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    body = b"".join(parts)
    return client.post(path, data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_a_too_large_photo_answers_the_same_page_in_words_with_the_reply_kept(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    number = _file(app)
    zhou = _grid_page(app)
    token = csrf_of(zhou.get(f"/grid/cases/{number}").text)
    for route in ("photos", "resolve"):
        fields = {"csrf_token": token, "reply": "已疏通"}
        sent = _too_large_post(zhou, f"/grid/cases/{number}/{route}", fields)
        assert sent.status_code == 413, (route, sent.text[sent.text.find("action-error") :][:200])
        assert TOO_LARGE in sent.text and 'id="resolve-form"' in sent.text, route
        assert "Request Entity Too Large" not in sent.text
    assert _case(app, number).status == "dispatched"
    patrol = _too_large_post(zhou, "/grid/patrol", {"csrf_token": token, "description": "x"})
    assert (
        patrol.status_code == 413 and TOO_LARGE in patrol.text and 'id="patrol-form"' in patrol.text
    )
    # A refused photo: the reply typed beside it comes back in its box.
    refused = zhou.post(
        f"/grid/cases/{number}/photos",
        data={
            "csrf_token": token,
            "reply": "已疏通下水道",
            "photo": (io.BytesIO(b"GIF89a"), "a.gif"),
        },
        content_type="multipart/form-data",
    )
    assert refused.status_code == 422 and ">已疏通下水道</textarea>" in refused.text


def test_resolving_sends_the_chosen_photo_with_the_reply(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    number = _file(app)
    zhou = _grid_page(app)
    page = zhou.get(f"/grid/cases/{number}").text
    # The photo and the reply are one form: 办结 cannot leave a chosen photo behind.
    form = page[
        page.index('id="resolve-form"') : page.index("</form>", page.index('id="resolve-form"'))
    ]
    assert 'name="photo"' in form and 'name="reply"' in form
    token = csrf_of(page)
    empty = zhou.post(
        f"/grid/cases/{number}/resolve",
        data={"csrf_token": token, "reply": " ", "photo": (io.BytesIO(PNG), "p.png")},
        content_type="multipart/form-data",
    )
    assert empty.status_code == 422 and "办结须填写答复市民的内容" in empty.text
    done = zhou.post(
        f"/grid/cases/{number}/resolve",
        data={"csrf_token": token, "reply": "已疏通", "photo": (io.BytesIO(PNG), "p.png")},
        content_type="multipart/form-data",
    )
    assert done.status_code == 302 and done.headers["Location"].endswith(f"resolved={number}")
    case = _case(app, number)
    assert case.status == "resolved"
    with app.extensions["hotline"].desk.sessions() as db:
        assert len(photos_of(db, case.id)) == 1
    assert f"工单 {number} 已办结" in zhou.get(done.headers["Location"]).text


def test_an_ended_sign_in_on_resolve_signs_in_again_and_returns_to_the_case(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    number = _file(app)
    zhou = _grid_page(app)
    token = csrf_of(zhou.get(f"/grid/cases/{number}").text)
    zhou.delete_cookie("session")  # the sign-in ended while the page stayed open
    sent = zhou.post(f"/grid/cases/{number}/resolve", data={"csrf_token": token, "reply": "已疏通"})
    assert sent.status_code == 302
    login = sent.headers["Location"]
    assert login.startswith("/login?") and f"next=/grid/cases/{number}" in login.replace("%2F", "/")
    form = zhou.get(login).text
    back = zhou.post(
        login,
        data={"username": "zhou", "password": "correct horse battery", "csrf_token": csrf_of(form)},
    )
    assert back.headers["Location"].endswith(f"/grid/cases/{number}")


def test_escalating_confirms_where_it_went_and_the_case_says_it_is_no_longer_theirs(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    number = _file(app, "neighbour-disputes")
    zhou = _grid_page(app)
    page = zhou.get(f"/grid/cases/{number}").text
    choose = page[page.index('name="to"') : page.index("</select>", page.index('name="to"'))]
    assert '<option value="" selected>请选择上报部门</option>' in choose
    assert 'value="district-longhua"' not in choose  # the unit it is with already
    sent = zhou.post(
        f"/grid/cases/{number}/escalate",
        data={"csrf_token": csrf_of(page), "to": "public-security", "reason": "双方冲突升级"},
    )
    assert sent.status_code == 302
    listed = zhou.get(sent.headers["Location"]).text
    with app.extensions["hotline"].desk.sessions() as db:
        unit = db.scalar(select(Case).where(Case.number == number)).department.name  # type: ignore[union-attr]
    assert f"工单 {number} 已上报至{unit}，由该部门办理" in listed
    opened = zhou.get(f"/grid/cases/{number}")
    assert opened.status_code == 302
    assert (
        f"工单 {number} 已转由{unit}办理，不在您的待办中"
        in zhou.get(opened.headers["Location"]).text
    )
    assert _grid_page(app, "qian").get(f"/grid/cases/{number}").status_code == 404


def test_on_site_without_a_location_says_no_position_was_recorded(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    number = _file(app)
    zhou = _grid_page(app)
    token = csrf_of(zhou.get(f"/grid/cases/{number}").text)
    sent = zhou.post(f"/grid/cases/{number}/on-site", data={"csrf_token": token})
    page = zhou.get(sent.headers["Location"]).text
    assert "已登记到场，但手机未提供位置，本次未记录到场位置" in page
    assert "仍可提交上报（不记录位置）" in zhou.get("/grid/patrol").text
    assert "仍可登记到场" not in zhou.get("/grid/patrol").text


def test_grid_pages_show_no_raw_text_keys_and_late_countdowns_in_words(app) -> None:  # type: ignore[no-untyped-def]
    import re

    number = _file(app)
    with app.extensions["hotline"].desk.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        case.respond_by = case.dispatched_at - timedelta(days=3, minutes=5)  # type: ignore[operator]
        db.commit()
    zhou = _grid_page(app)
    for lang, late in (("zh", "已超时3天"), ("en", "3 days overdue")):
        if lang == "en":
            from tests.test_console import csrf_of

            token = csrf_of(zhou.get("/grid/").text)
            zhou.post("/language", data={"csrf_token": token, "lang": "en"})
        for path in ("/grid/", f"/grid/cases/{number}", "/grid/patrol"):
            text = zhou.get(path).text
            assert not re.findall(r"\bgrid_[a-z_]+", text), (lang, path)
        assert late in zhou.get("/grid/").text
        assert late in zhou.get(f"/grid/cases/{number}").text
        assert "−" not in zhou.get("/grid/").text


def test_the_patrol_form_keeps_the_grid_chosen_after_a_refusal(app) -> None:  # type: ignore[no-untyped-def]
    from tests.test_console import csrf_of

    with app.extensions["hotline"].desk.sessions() as db:
        assign_worker(db, "zhou", GUOMAO_2)
        db.commit()
    zhou = _grid_page(app)
    token = csrf_of(zhou.get("/grid/patrol").text)
    refused = zhou.post(
        "/grid/patrol",
        data={
            "csrf_token": token,
            "category_code": "garbage-collection",
            "description": "",
            "grid_code": GUOMAO_2,
        },
    )
    assert refused.status_code == 422
    assert f'<option value="{GUOMAO_2}" selected>' in refused.text
