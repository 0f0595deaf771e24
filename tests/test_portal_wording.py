"""What the department portal and the supervisors' desk say: every kind of trail entry
the code writes has words (never 其他记录), the desk shows a return's reason without its
tag, and each portal action says what it did on the page it lands on. Flask's client
against a real redis-server and SQLite."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from cases.lifecycle import STATUSES
from cases.models import Case, CaseEvent
from cases.service import CaseDraft, apply_form
from tests.test_console import sign_in
from tests.test_portal import new_case, people, post  # noqa: F401  (the fixture)
from web.formatting import beijing, trail

ROOT = Path(__file__).resolve().parents[1]

# Where an entry's kind is not a literal: the kinds each such place can write.
DYNAMIC = {
    ("cases/service.py", "action"): set(),  # _record's own parameter, seen at its callers
    ("cases/service.py", "to"): set(STATUSES),  # transition(): the new status
    ("cases/dispatch.py", "'extension_' + request.status"): {
        "extension_approved",
        "extension_refused",
    },
    ("cases/open311.py", "PUBLIC_ACTIONS[public]"): {"open311_public", "open311_private"},
    ("calls/transfers.py", "action"): set(),  # record_transfer's parameter, seen at callers
}


def _module_strings(tree: ast.Module) -> dict[str, str]:
    return {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }


def kinds_written() -> set[str]:
    """Every trail entry kind cases/ and calls/ write: the action of each _record(),
    CaseEvent(action=...) and record_transfer() call, read from the source."""
    kinds: set[str] = set()
    unknown: list[tuple[str, str]] = []
    for path in sorted([*ROOT.glob("cases/**/*.py"), *ROOT.glob("calls/**/*.py")]):
        source = path.read_text()
        tree = ast.parse(source)
        names = _module_strings(tree)
        where = str(path.relative_to(ROOT))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            called = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            arg: ast.expr | None = None
            if called == "_record" and len(node.args) >= 3:
                arg = node.args[2]
            elif called == "record_transfer" and len(node.args) >= 2:
                arg = node.args[1]
            elif called == "CaseEvent":
                arg = next((k.value for k in node.keywords if k.arg == "action"), None)
            if arg is None:
                continue
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                kinds.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in names:
                kinds.add(names[arg.id])
            elif (where, ast.unparse(arg).replace('"', "'")) in DYNAMIC:
                kinds |= DYNAMIC[(where, ast.unparse(arg).replace('"', "'"))]
            else:
                unknown.append((where, ast.unparse(arg)))
    assert not unknown, f"trail kinds this test cannot read; add them to DYNAMIC: {unknown}"
    return kinds


def test_every_kind_of_trail_entry_the_code_writes_reads_in_words() -> None:
    kinds = kinds_written()
    # The scan finds what is known to be written (it is not reading nothing).
    assert {"create", "reply", "form", "note", "instructed", "open311_update"} <= kinds
    assert {"emergency-transfer", "unit-transfer", "grid_sent", "extension_refused"} <= kinds
    for kind in sorted(kinds):
        event = SimpleNamespace(at=None, actor="system", action=kind, note="", from_status=None)
        for lang, other in (("zh", "其他记录"), ("en", "Other")):
            (row,) = trail([event], lang)
            assert row.what and row.what != other, (kind, lang)


def test_every_field_a_form_changes_reads_in_words(people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app = people
    number = new_case(app, dispatched=False)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        case = db.scalar(select(Case).where(Case.number == number))
        draft = CaseDraft(
            description="夜市摊贩占道，晚十点后",
            address="龙华大道 1 号",
            caller_name="张先生",
            category_code="power-outage",
            district_code="meilan",
            department_code="power-supply",
            urgency="urgent",
            dispatch=False,
        )
        apply_form(db, case, draft, "1001")
        (form,) = [e for e in case.events if e.action == "form"]
        fields = set(form.note.removeprefix("updated: ").split(", "))
        # An operator's reply to the citizen, as the channel task desk keeps it.
        case.events.append(
            CaseEvent(at=form.at, actor="wang", action="reply", note="已转城管处理，请留意短信")
        )
        db.commit()
    assert {"category", "district", "department", "urgency", "address"} <= fields
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    for lang, other, words in (
        ("zh", "其他记录", ("诉求类别", "区", "主办单位", "紧急程度", "地址", "姓名", "答复市民")),
        ("en", "Other", ("Category", "District", "Lead unit", "Urgency", "Address", "Reply")),
    ):
        if lang == "en":
            post(supervisor, "/language", {"lang": "en"})
        page = supervisor.get(f"/console/cases/{number}").get_data(as_text=True)
        rows = re.search(r'<table class="trail".*?</table>', page, re.S)
        assert rows, page[:500]
        assert other not in rows[0], (lang, rows[0])
        for word in words:
            assert word in rows[0], (lang, word)


def test_the_supervision_desk_shows_the_units_reason_without_its_tag(people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app = people
    number = new_case(app)
    urban = app.test_client()
    sign_in(urban, "urban")
    post(urban, f"/portal/cases/{number}/return", {"reason": "井盖属于市政设施，请转市政"})
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    desk = supervisor.get("/console/supervision").get_data(as_text=True)
    row = re.search(
        rf'<tr class="returned-row" data-number="{number}">.*?<td class="return-reason">(.*?)</td>',
        desk,
        re.S,
    )
    assert row, desk
    assert "井盖属于市政设施，请转市政" in row[1]
    assert "退单" not in row[1]  # the tag is not the unit's words
    assert "市综合行政执法局（城管）" in row[1]  # which unit sent it back (a nameless account)
    with app.extensions["hotline"].handler.directory.sessions() as db:
        returned_at = db.scalar(select(CaseEvent.at).where(CaseEvent.action == "returned"))
    assert beijing(returned_at) in row[1]  # when, in Beijing time
    assert not re.search(r"\d{4}-\d{2}-\d{2}T|\+00:00", row[1])


def test_the_supervision_desk_reads_names_once_not_per_row(people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    """Returns and extension requests name who asked: the page's queries do not grow
    with its rows."""
    from sqlalchemy import event

    app = people
    urban = app.test_client()
    sign_in(urban, "urban")
    supervisor = app.test_client()
    sign_in(supervisor, "li")
    engine = app.extensions["hotline"].handler.directory.sessions.kw["bind"]
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def rows(n: int) -> int:
        for _ in range(n):
            returned, extended = new_case(app), new_case(app)
            post(urban, f"/portal/cases/{returned}/return", {"reason": "不属本单位职责"})
            post(urban, f"/portal/cases/{extended}/sign")
            post(urban, f"/portal/cases/{extended}/extend", {"days": "3", "reason": "需协调"})
        statements.clear()
        event.listen(engine, "before_cursor_execute", count)
        try:
            page = supervisor.get("/console/supervision").get_data(as_text=True)
        finally:
            event.remove(engine, "before_cursor_execute", count)
        assert page.count('class="returned-row"') >= n
        return len(statements)

    few = rows(2)
    many = rows(8)
    assert many == few, statements


def _said(page: str) -> str:
    shown = re.search(r'<p class="ok" role="status" id="portal-done">(.*?)</p>', page, re.S)
    return shown[1] if shown else ""


def test_each_portal_action_says_what_it_did_where_the_clerk_lands(people) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    app = people
    number, other = new_case(app, "power-outage"), new_case(app, "power-outage")  # urgent
    power = app.test_client()
    sign_in(power, "power")

    def act(case: str, action: str, data: dict[str, str] | None = None) -> str:
        r = post(power, f"/portal/cases/{case}/{action}", data)
        assert r.status_code == 302, (action, r.status_code)
        said = _said(power.get(r.headers["Location"]).get_data(as_text=True))
        assert case in said, (action, said)
        # Said once: the next page is quiet.
        assert not _said(power.get(r.headers["Location"]).get_data(as_text=True))
        return said

    assert "已签收" in act(number, "sign")
    assert "到场" in act(number, "on-site")
    assert "办理进展已记录" in act(number, "note", {"note": "已联系供电所"})
    assert "延期申请已提交" in act(number, "extend", {"days": "3", "reason": "需协调"})
    assert "已办结" in act(number, "resolve", {"reply": "已恢复供电"})
    assert "已退单" in act(other, "return", {"reason": "属物业自管线路"})
    post(power, "/language", {"lang": "en"})
    assert "signed for" in act(new_case(app, "power-outage"), "sign")


@pytest.mark.parametrize(
    ("action", "note", "shown"),
    [
        ("emergency-transfer", "紧急转办 110：煤气泄漏，已转110", "110：煤气泄漏，已转110"),
        (
            "unit-transfer",
            "转接 市水务局（值班电话 +86 898 6666 0000）：三方通话",
            "市水务局（值班电话 +86 898 6666 0000）：三方通话",
        ),
    ],
)
def test_a_transfers_details_do_not_repeat_its_kind(action: str, note: str, shown: str) -> None:
    event = SimpleNamespace(at=None, actor="1001", action=action, note=note)
    (row,) = trail([event], "zh", {}, {"1001": "王芳"})
    assert row.detail == shown and row.what in ("紧急转办", "转接承办单位")
