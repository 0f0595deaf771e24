"""Every scenario in examples/scenarios/ through the real flow, Redis queue, RQ worker and
database, with the outcomes each one is there to show."""

from pathlib import Path

import pytest
from redis import Redis
from sqlalchemy import select

from cases.db import engine_for, session_factory
from cases.models import CallbackRequest, Case
from hotline.redis_server import RedisServer
from simulator import ScenarioError, load_scenario, simulate

SCENARIOS = Path(__file__).resolve().parent.parent / "examples" / "scenarios"


def run(name: str, redis_server: RedisServer, tmp_path: Path, db_url: str | None = None):  # type: ignore[no-untyped-def]
    lines: list[str] = []
    db_url = db_url or f"sqlite:///{tmp_path / 'sim.db'}"
    figures = simulate(SCENARIOS / f"{name}.toml", redis_server.url, db_url, tmp_path, lines.append)
    # The promises every run keeps.
    assert figures["offered"] == (
        figures["answered"] + figures["abandoned"] + figures["callbacks_requested"]
    )
    assert figures["cases_created"] == figures["answered"]
    assert figures["callbacks_recorded"] == figures["callbacks_requested"]
    return figures, lines, session_factory(engine_for(db_url))


def heard_by(lines: list[str], call_id: str) -> list[str]:
    return [line.split(f"{call_id}: ", 1)[1] for line in lines if f"] {call_id}: " in line]


@pytest.fixture(autouse=True)
def _clean(redis: Redis) -> None:
    """Use the flushed-per-test Redis."""


def test_silence_reaches_a_person(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, _ = run("silence-reaches-a-person", redis_server, tmp_path)
    assert figures["outcomes"] == {"silent-caller": "completed"}
    assert not any("presses" in line for line in lines)


def test_invalid_key_reaches_a_person(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, _ = run("invalid-key-reaches-a-person", redis_server, tmp_path)
    assert figures["outcomes"] == {"wrong-key": "completed"}
    heard = heard_by(lines, "wrong-key")
    after_key = heard[heard.index("presses 9") + 1 :]
    assert not any("讲海南话" in h for h in after_key)  # the menu is not played again


def test_dialect_choice_reaches_a_dialect_seat(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, _ = run("dialect-choice", redis_server, tmp_path)
    heard = heard_by(lines, "dialect-caller")
    assert any(h.startswith("talks with seat 2001") for h in heard)
    assert not any("seat 1001" in h for h in heard)  # free earlier, but Mandarin only


def test_registered_vulnerable_caller_skips_prompts_and_goes_first(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, _ = run("vulnerable-caller-priority", redis_server, tmp_path)
    heard = heard_by(lines, "elderly")
    assert not any(h.startswith("hears") for h in heard)
    talks = [line for line in lines if "talks with seat" in line]
    assert "elderly" in talks[0] and "ordinary" in talks[1]


def test_repeat_caller_hears_status_and_reaches_own_operator(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, lines, _ = run("repeat-caller-sticky", redis_server, tmp_path)
    heard = heard_by(lines, "repeat-caller")
    assert "已转交承办单位" in heard[1]  # status sentence with the case number
    assert any(h.startswith("talks with seat 1002") for h in heard)


def test_repeat_caller_falls_back_to_anyone(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, lines, _ = run("repeat-caller-fallback", redis_server, tmp_path)
    heard = heard_by(lines, "repeat-caller")
    assert any(h.startswith("talks with seat 1001") for h in heard)


def test_merged_hotline_number_sets_the_case_category(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    _, _, sessions = run("merged-hotline", redis_server, tmp_path)
    with sessions() as session:
        case = session.scalar(select(Case).where(Case.call_id == "old-power-line"))
        assert case.category.code == "power-outage"
        assert case.department.code == "power-supply" and case.status == "dispatched"
        assert "供电" in case.source_hotline and case.caller_phone == "+8613800000008"


def test_hang_up_anywhere_loses_nothing(redis_server, tmp_path, redis) -> None:  # type: ignore[no-untyped-def]
    figures, _, _ = run("hangup-everywhere", redis_server, tmp_path)
    assert figures["outcomes"] == {
        "hangs-up-in-menu": "abandoned",
        "hangs-up-while-ringing": "abandoned",
        "hangs-up-while-talking": "completed",
        "hangs-up-while-waiting": "abandoned",
    }


def test_long_wait_offers_a_callback(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, sessions = run("long-wait-callback", redis_server, tmp_path)
    assert figures["outcomes"]["wants-callback"] == "callback"
    assert figures["outcomes"]["keeps-waiting"] == "completed"
    with sessions() as session:
        request = session.scalar(select(CallbackRequest))
        assert (request.caller_phone, request.reason) == ("+8613800000102", "long_wait")


def test_no_seat_logged_in_says_so_and_records_a_callback(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, sessions = run("no-seat-logged-in", redis_server, tmp_path)
    assert any("没有话务员在线" in line for line in lines)
    with sessions() as session:
        assert session.scalar(select(CallbackRequest.reason)) == "closed"


def test_ring_no_answer_moves_on_with_only_music(redis_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    figures, lines, _ = run("ring-no-answer", redis_server, tmp_path)
    assert figures["ring_no_answer"] == 1
    heard = heard_by(lines, "patient")
    between = heard[heard.index("rings seat 1001") + 1 : heard.index("rings seat 1002")]
    assert between == []  # nothing new but hold music


def test_scenario_on_postgresql(redis_server, tmp_path, postgres_server) -> None:  # type: ignore[no-untyped-def]
    url = postgres_server.create_database("simulator_run")
    figures, _, _ = run("merged-hotline", redis_server, tmp_path, url)
    assert figures["cases_created"] == 1


def test_a_broken_scenario_is_a_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.toml"
    bad.write_text("[[operator]]\nseat = 1\n")
    with pytest.raises(ScenarioError, match="at least one"):
        load_scenario(bad)
    bad.write_text("not = [toml")
    with pytest.raises(ScenarioError):
        load_scenario(bad)


OUTBOUND = {
    "visit-satisfied": {"case_status": "closed", "satisfaction": "satisfied", "attempts": 1},
    "visit-unsatisfied": {
        "case_status": "dispatched",
        "satisfaction": "unsatisfied",
        "attempts": 1,
    },
    "visit-silence": {"case_status": "closed", "satisfaction": "no_response", "attempts": 1},
    "visit-answering-machine": {
        "case_status": "closed",
        "satisfaction": "satisfied",
        "attempts": 2,
    },
    "visit-busy-then-answered": {
        "case_status": "closed",
        "satisfaction": "satisfied",
        "attempts": 2,
    },
    "visit-unreachable": {"case_status": "closed", "satisfaction": "unreachable", "attempts": 3},
    "visit-opt-out": {"case_status": "resolved", "status": "opted-out", "attempts": 0},
    "visit-outside-hours": {"case_status": "closed", "satisfaction": "satisfied", "attempts": 1},
    "callback-reaches-an-operator": {"status": "done", "reached_seat": "1001", "attempts": 1},
}


@pytest.mark.parametrize("name", sorted(OUTBOUND))
def test_outbound_scenarios(name: str, redis_server: RedisServer, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from simulator.outbound import simulate_outbound

    lines: list[str] = []
    db_url = f"sqlite:///{tmp_path / 'sim.db'}"
    figures = simulate_outbound(SCENARIOS / f"{name}.toml", redis_server.url, db_url, lines.append)
    (result,) = figures["results"].values()
    for key, expected in OUTBOUND[name].items():
        assert result.get(key) == expected, (key, result, lines)
    transcript = "\n".join(lines)
    if name == "visit-outside-hours":
        assert "[12-01 08:00]" in transcript and "[11-30" not in transcript.split("answers")[0]
    if name == "visit-silence":
        assert transcript.count("满意请按1") == 2 and "感谢您接听" in transcript
    if name == "visit-opt-out":
        assert figures["calls_placed"] == 0
