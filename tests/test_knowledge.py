"""The knowledge base (cases.knowledge), on SQLite and PostgreSQL: Chinese words found
as words (噪音, 停水), one-character queries, pinyin and homophone typos, ranking, flags
for expired and overdue articles (shown in search, never suggested), who may propose
and approve (with the audit lines), the version history, answers, and the seed."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from sqlalchemy import func, select

from cases.knowledge import (
    ArticleDraft,
    Editor,
    KnowledgeError,
    approve,
    editor_for,
    flagged,
    history,
    import_published,
    open_proposals,
    propose,
    record_answer,
    reject,
    retire,
    search,
    submit,
    suggest,
    withdraw,
)
from cases.models import ActionLog, Department, KnowledgeArticle, KnowledgeVersion
from cases.service import CallInfo, CaseDraft, create_case_for_call
from cases.users import add_user

TODAY = date(2026, 7, 1)
EDITOR = Editor("kb-editor", "knowledge_editor")
ADMIN = Editor("kb-admin", "admin")

WATER = ArticleDraft(
    title="龙华区金贸片区计划停水通知",
    body="因主干管道维修，7月2日8时至20时金贸片区停水，请市民提前储水。恢复供水初期水质可能浑浊，"
    "放水几分钟即可。",
    category_code="water-outage",
    district_code="longhua",
    valid_from=date(2026, 1, 1),
)
NOISE = ArticleDraft(
    title="万绿园音乐节夜间噪音管控",
    body="音乐节演出须在晚上10点前结束，主办方应控制音响音量，超时演出或噪音超标的由执法人员到场处理。",
    category_code="construction-noise",
    valid_from=date(2026, 1, 1),
)
PARKING = ArticleDraft(  # 停 and 水 as characters, never the word 停水
    title="停车场积水排除",
    body="小区停车场下雨积水，可联系物业抽水；路面积水请反映给水务部门。",
    category_code="waterlogging",
    unit_code="water-affairs",
    valid_from=date(2026, 1, 1),
)


def ids(hits) -> list[int]:  # type: ignore[no-untyped-def]
    return [h.id for h in hits]


def publish_all(session, *drafts: ArticleDraft) -> list[int]:  # type: ignore[no-untyped-def]
    before = set(session.scalars(select(KnowledgeArticle.id)))
    import_published(session, list(drafts), "test")
    session.commit()
    titles = [d.title for d in drafts]
    rows = session.execute(
        select(KnowledgeArticle.id, KnowledgeArticle.title).where(
            KnowledgeArticle.title.in_(titles)
        )
    ).all()
    by_title = {title: i for i, title in rows if i not in before}
    return [by_title[t] for t in titles]


def unit_id(session, code: str) -> int:  # type: ignore[no-untyped-def]
    return int(session.scalar(select(Department.id).where(Department.code == code)))


def actions(session, article_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    return list(
        session.scalars(
            select(ActionLog.action)
            .where(ActionLog.target == f"kb:{article_id}")
            .order_by(ActionLog.id)
        )
    )


# -- search -----------------------------------------------------------------------------


def test_two_character_words_are_found_as_words(session) -> None:  # type: ignore[no-untyped-def]
    water, noise, parking = publish_all(session, WATER, NOISE, PARKING)
    outage = ids(search(session, "停水", limit=50, today=TODAY))
    assert water in outage
    assert parking not in outage  # 停 and 水 apart are not 停水
    assert noise in ids(search(session, "噪音", limit=50, today=TODAY))
    # A question as a caller puts it: the words that matter carry it.
    assert search(session, "我家金贸片区停水了什么时候恢复", today=TODAY)[0].id == water
    assert search(session, "万绿园音乐节晚上太吵了", today=TODAY)[0].id == noise
    # Within a category.
    outages = search(session, "停水", category="water-outage", limit=50, today=TODAY)
    assert water in ids(outages) and {h.category_code for h in outages} == {"water-outage"}
    assert parking in ids(search(session, "积水", category="waterlogging", today=TODAY))


def test_one_character_queries_fall_back_to_characters(session) -> None:  # type: ignore[no-untyped-def]
    water, noise, parking = publish_all(session, WATER, NOISE, PARKING)
    assert noise in ids(search(session, "噪", limit=50, today=TODAY))  # not a word alone
    found = ids(search(session, "积", limit=50, today=TODAY))
    assert parking in found and noise not in found


def test_pinyin_and_homophone_typos_find_the_word_meant(session) -> None:  # type: ignore[no-untyped-def]
    water, noise, _ = publish_all(session, WATER, NOISE, PARKING)
    for typed in ("tingshui", "ting shui", "停税", "金贸片区婷水"):
        hits = search(session, typed, limit=50, today=TODAY)
        assert "停水" in hits[0].title and water in ids(hits), typed
    assert search(session, "金贸片区婷水", today=TODAY)[0].id == water
    for typed in ("zaoyin", "造音", "音乐节燥音"):
        hits = search(session, typed, limit=50, today=TODAY)
        assert "噪音" in hits[0].title and noise in ids(hits), typed
    assert search(session, "音乐节燥音", today=TODAY)[0].id == noise


def test_title_outranks_body_and_answers_break_ties(session) -> None:  # type: ignore[no-untyped-def]
    in_title, in_body = publish_all(
        session,
        ArticleDraft("城市更新补贴申领", "向所在区住建部门提交材料。", "old-estate-renovation"),
        ArticleDraft("老旧小区加装电梯", "可按规定申领城市更新补贴。", "old-estate-renovation"),
    )
    found = ids(search(session, "城市更新补贴"))
    assert found[0] == in_title and in_body in found
    # One word once in each, the body's article older: the title's still comes first.
    body_once, title_once = publish_all(
        session,
        ArticleDraft("学生假期活动报名", "暑期游学项目由学校统一组织。", "off-campus-tutoring"),
        ArticleDraft("暑期游学安全提示", "出行前购买意外保险。", "off-campus-tutoring"),
    )
    assert ids(search(session, "游学"))[:2] == [title_once, body_once]
    twin_a, twin_b = publish_all(
        session,
        ArticleDraft("港口滞留旅客安置甲", "大风停航期间的安置点。", "port-stranding"),
        ArticleDraft("港口滞留旅客安置乙", "大风停航期间的安置点。", "port-stranding"),
    )
    case = create_case_for_call(
        session, CallInfo("kb-tie", "13800000009", "sim", "1001"), CaseDraft(description="过海")
    )
    record_answer(session, case.id, twin_b, "op1")
    session.commit()
    assert ids(search(session, "滞留旅客安置"))[:2] == [twin_b, twin_a]


def test_expired_and_overdue_articles_are_flagged_and_never_suggested(session) -> None:  # type: ignore[no-untyped-def]
    base = dict(category_code="water-outage", valid_from=date(2026, 1, 1))
    current, expired, overdue = publish_all(
        session,
        ArticleDraft("美兰区停水抢修进度查询", "拨打96166查询抢修进度。", **base),
        ArticleDraft(
            "秀英区停水临时供水点",
            "临时供水点设在社区服务站。",
            valid_until=TODAY - timedelta(days=1),
            **base,
        ),
        ArticleDraft(
            "琼山区停水赔偿说明",
            "计划停水不予赔偿。",
            review_on=TODAY - timedelta(days=3),
            **base,
        ),
    )
    hits = {h.id: h for h in search(session, "停水", limit=50, today=TODAY)}
    assert hits[current].flags == ()
    assert hits[expired].flags == ("expired",)
    assert hits[overdue].flags == ("review-overdue",)
    public = ids(search(session, "停水", limit=50, today=TODAY, usable_only=True))
    assert current in public and expired not in public and overdue not in public
    offered = ids(suggest(session, "water-outage", "停水 临时供水点 赔偿", limit=50, today=TODAY))
    assert current in offered and expired not in offered and overdue not in offered
    assert offered  # from the category alone, too:
    assert expired not in ids(suggest(session, "water-outage", "", limit=50, today=TODAY))
    listed = ids(flagged(session, TODAY))
    assert expired in listed and overdue in listed and current not in listed
    # Not yet valid is a flag too.
    (future,) = publish_all(
        session,
        ArticleDraft(
            "明年停水计划",
            "待公布。",
            valid_from=TODAY + timedelta(days=30),
            category_code="water-outage",
        ),
    )
    assert search(session, "明年停水计划", today=TODAY)[0].flags == ("not-yet-valid",)
    assert future not in ids(
        suggest(session, "water-outage", "明年停水计划", limit=50, today=TODAY)
    )


# -- who changes what -----------------------------------------------------------------


def test_units_propose_for_their_own_articles_and_reviewers_approve_others(session) -> None:  # type: ignore[no-untyped-def]
    water_unit = Editor("water-clerk", "department", unit_id(session, "water-supply"))
    power_unit = Editor("power-clerk", "department", unit_id(session, "power-supply"))
    operator = Editor("op1", "operator")

    proposal = propose(session, water_unit, WATER, note="新的停水通知")
    session.commit()
    assert proposal.state == "proposed" and proposal.number == 1
    article_id = proposal.article_id
    assert session.get(KnowledgeArticle, article_id).status == "proposed"
    assert ids(search(session, "停水", limit=50, today=TODAY)).count(article_id) == 0

    with pytest.raises(KnowledgeError) as refused:  # another unit's article
        propose(session, power_unit, WATER, article_id=article_id)
    assert refused.value.code == "not-your-unit"
    with pytest.raises(KnowledgeError) as refused:  # an article for another unit
        propose(session, water_unit, NOISE)
    assert refused.value.code == "not-your-unit"
    with pytest.raises(KnowledgeError) as refused:
        propose(session, operator, WATER)
    assert refused.value.code == "forbidden-role"
    with pytest.raises(KnowledgeError) as refused:
        approve(session, water_unit, proposal.id)
    assert refused.value.code == "forbidden-role"
    assert [p.id for p in open_proposals(session, water_unit)] == [proposal.id]
    assert open_proposals(session, power_unit) == []

    approve(session, EDITOR, proposal.id, note="核实无误")
    session.commit()
    assert in_results(session, "停水", article_id)

    # A reviewer's own proposal waits for another reviewer.
    own = propose(session, EDITOR, NOISE)
    with pytest.raises(KnowledgeError) as refused:
        approve(session, EDITOR, own.id)
    assert refused.value.code == "own-proposal"
    approve(session, ADMIN, own.id)
    session.commit()
    assert actions(session, article_id) == ["kb-proposed", "kb-published"]
    assert actions(session, own.article_id) == ["kb-proposed", "kb-published"]
    line = session.scalar(
        select(ActionLog).where(
            ActionLog.target == f"kb:{article_id}", ActionLog.action == "kb-published"
        )
    )
    assert line.actor == EDITOR.username and "water-clerk" in line.detail


def in_results(session, query: str, article_id: int) -> bool:  # type: ignore[no-untyped-def]
    return article_id in ids(search(session, query, limit=50, today=TODAY))


def test_a_knowledge_editor_is_a_role_users_can_have(session) -> None:  # type: ignore[no-untyped-def]
    user = add_user(session, "kb.editor", "knowledge_editor", "Zhishi-Ku-2026!")
    assert editor_for(user) == Editor("kb.editor", "knowledge_editor", None)
    assert editor_for(user).reviews


def test_every_version_is_kept_with_who_wrote_and_who_approved_it(session) -> None:  # type: ignore[no-untyped-def]
    clerk = Editor("water-clerk", "department", unit_id(session, "water-supply"))
    first = propose(session, clerk, WATER)
    approve(session, EDITOR, first.id)
    article_id = first.article_id
    changed = ArticleDraft(
        title="龙华区金贸片区停水延期通知",
        body="维修延长至7月3日18时，期间在金贸社区设临时供水车。",
        category_code="water-outage",
        district_code="longhua",
        valid_from=date(2026, 1, 1),
    )
    second = propose(session, clerk, changed, article_id=article_id, note="施工延期")
    with pytest.raises(KnowledgeError) as refused:  # one open proposal at a time
        propose(session, clerk, changed, article_id=article_id)
    assert refused.value.code == "open-proposal"
    assert session.get(KnowledgeArticle, article_id).title == WATER.title  # not yet
    approve(session, ADMIN, second.id)
    third = propose(session, clerk, WATER, article_id=article_id, submit=False)
    submit(session, clerk, third.id)
    with pytest.raises(KnowledgeError) as refused:
        reject(session, EDITOR, third.id, note="")
    assert refused.value.code == "needs-note"
    reject(session, EDITOR, third.id, note="延期通知仍有效")
    fourth = propose(session, clerk, WATER, article_id=article_id)
    withdraw(session, clerk, fourth.id)
    session.commit()

    versions = history(session, article_id)
    assert [(v.number, v.state, v.written_by, v.decided_by) for v in versions] == [
        (1, "superseded", "water-clerk", "kb-editor"),
        (2, "published", "water-clerk", "kb-admin"),
        (3, "rejected", "water-clerk", "kb-editor"),
        (4, "withdrawn", "water-clerk", None),
    ]
    assert versions[0].title == WATER.title and versions[1].body == changed.body
    assert all(v.written_at is not None for v in versions)
    item = session.get(KnowledgeArticle, article_id)
    assert (item.title, item.version, item.status) == (changed.title, 2, "published")
    assert actions(session, article_id) == [
        "kb-proposed",
        "kb-published",
        "kb-proposed",
        "kb-published",
        "kb-drafted",
        "kb-submitted",
        "kb-rejected",
        "kb-proposed",
        "kb-withdrawn",
    ]
    # The index follows the published text: the new words in, the old ones out.
    assert in_results(session, "临时供水车", article_id)
    assert not in_results(session, "提前储水", article_id)


def test_answers_are_linked_and_counted_and_retired_articles_leave_search(session) -> None:  # type: ignore[no-untyped-def]
    (water_id,) = publish_all(session, WATER)
    case = create_case_for_call(
        session, CallInfo("kb-answer", "13800000008", "sim", "1001"), CaseDraft(description="停水")
    )
    answer = record_answer(session, case.id, water_id, "op1")
    assert record_answer(session, case.id, water_id, "op1").id == answer.id  # once
    session.commit()
    assert session.get(KnowledgeArticle, water_id).answered_count == 1
    assert (answer.version, answer.answered_by) == (1, "op1")
    (other,) = publish_all(session, NOISE)
    with pytest.raises(KnowledgeError):
        record_answer(session, case.id, other, "op1")
    with pytest.raises(KnowledgeError) as refused:
        retire(
            session,
            Editor("water-clerk", "department", unit_id(session, "water-supply")),
            water_id,
            "过期",
        )
    assert refused.value.code == "forbidden-role"
    retire(session, EDITOR, water_id, "维修已完成")
    session.commit()
    assert not in_results(session, "停水", water_id)
    assert actions(session, water_id) == ["kb-answered", "kb-retired"]


# -- the seed --------------------------------------------------------------------------


def test_the_seed_covers_the_catalogue_with_usable_articles(session) -> None:  # type: ignore[no-untyped-def]
    published = select(KnowledgeArticle).where(KnowledgeArticle.status == "published")
    count = session.scalar(select(func.count()).select_from(published.subquery()))
    assert count >= 200
    categories = session.scalar(select(func.count(func.distinct(KnowledgeArticle.category_id))))
    assert categories >= 60
    assert session.scalar(select(func.count(KnowledgeVersion.id))) >= count
    # Useful from day one: the everyday questions find a seeded answer.
    for question in ("停水", "停电", "噪音", "社保", "户口", "公积金", "台风", "出租车"):
        hits = suggest(session, None, question)
        assert hits and question in hits[0].title + hits[0].body, question
    # Beside the pop: the category and the description the operator is typing.
    described = "市民来电反映小区从早上开始一直停水，物业说不清原因，询问什么时候恢复供水"
    hits = suggest(session, "water-outage", described)
    assert len(hits) == 5 and {h.category_code for h in hits[:3]} == {"water-outage"}
    assert "停水" in hits[0].title
    # How callers put it, before any category is chosen: the scene-setting words
    # (家里, 突然) must not make 家里突然停电 the first answer to a water cut.
    for said, topic in (("家里突然停水了", "停水"), ("今天突然停电了", "停电")):
        hits = suggest(session, None, said)
        assert topic in hits[0].title, (said, [h.title for h in hits])
