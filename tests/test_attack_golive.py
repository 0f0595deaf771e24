"""Issue 18's go-live pieces attacked as a hostile caller would, or as an unlucky day
would: a signed-in user of the least trusted kind (a department's staff) holding
streams open on the push process until it, and the front proxy's connections in front
of it, are spent; a caller's number searched for and written whole to the proxy's log;
dialers on several hosts whose clocks disagree; compose's secrets one `git add` from
the repository."""

from __future__ import annotations

import subprocess
from pathlib import Path

import requests
from redis import Redis

from hotline.config import load_settings
from hotline.runtime import call_queue, dialer
from push.app import MAX_STREAMS_PER_USER
from tests.conftest import wait_until
from tests.test_front_proxy import get, nginx, web  # noqa: F401
from tests.test_push import Stream, live, signed_in  # noqa: F401


def test_one_user_cannot_hold_more_than_their_share_of_streams(live) -> None:  # type: ignore[no-untyped-def]
    """Each open stream costs the push process a coroutine and a session check every
    15 s, and nginx two connections for an hour at a time; one account (however many
    times it signs in) gets a bounded number, and a stream that closes frees its place."""
    supply = signed_in(live, "supply")
    again = signed_in(live, "supply")  # a second sign-in is the same person
    url = live["push"] + "/portal/events"
    streams = [Stream(supply, url) for _ in range(MAX_STREAMS_PER_USER)]
    try:
        assert all(s.status == 200 for s in streams)
        refused = Stream(again, url)
        assert refused.status == 429
        refused.close()
        # Someone else is not affected by this user's streams.
        li = signed_in(live, "li")
        board = Stream(li, live["push"] + "/console/wallboard/events")
        assert board.status == 200
        board.close()
        streams.pop().close()
        for _ in range(50):  # the closed stream's place comes back once the push sees it
            retry = Stream(again, url)
            if retry.status == 200:
                break
            retry.close()
        assert retry.status == 200
        streams.append(retry)
        health = requests.get(live["push"] + "/healthz", timeout=10).json()
        assert health["inboxes"] == MAX_STREAMS_PER_USER
    finally:
        for s in streams:
            s.close()


def test_the_front_proxy_log_keeps_no_phone_number(nginx: int, tmp_path: Path) -> None:
    """The web masks numbers in gunicorn's access log; nginx's own log (the container's
    output) must not write them whole either: a case searched by the caller's number
    (in the query, and in the next page's Referer), or a sign-in's ``next``."""
    number = "13900139000"
    get(nginx, f"/console/cases?q={number}")
    get(nginx, f"/login?next=%2Fconsole%2Fcases%3Fq%3D{number}")
    get(nginx, "/healthz", Referer=f"https://hotline.test/console/cases?q={number}")
    access_log = tmp_path / "nginx" / "access.log"
    # nginx writes a request's line after its response has gone out.
    wait_until(lambda: "/healthz" in access_log.read_text(), what="nginx logging /healthz")
    log = access_log.read_text()
    assert "/console/cases" in log and "/healthz" in log  # the requests were logged
    assert number not in log, log


def test_the_dialers_on_several_hosts_read_one_clock(redis_server, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    """The dialer that holds the lease may be any host's. Calling hours, the shared
    pacing window and each number's limits are kept in Redis with times in them: read
    from each host's own clock, a host whose clock has drifted (or lost NTP) would dial
    at night after a failover, and trim the other hosts' pacing entries as old. They
    read Redis's clock, as the case clocks do (calls.clocks.sweep)."""
    settings = load_settings({"REDIS_URL": redis_server.url, "HOTLINE_QUEUE": "clocktest"})
    engine = dialer(settings, call_queue(settings, redis))

    def times_asked() -> int:
        stats = redis.info("commandstats").get("cmdstat_time", {})
        return int(stats.get("calls", 0))

    before = times_asked()
    moment, paced = engine.now(), engine.pace_clock()
    assert times_asked() - before == 2
    seconds, micros = redis.time()
    assert abs(moment.timestamp() - (seconds + micros / 1e6)) < 60
    assert abs(paced - (seconds + micros / 1e6)) < 60


def test_the_deployment_secrets_cannot_be_committed_by_mistake() -> None:
    """compose reads its secrets from an .env file beside it (docs/operations.md), and
    the seats' SIP passwords from docker/secrets: git must never pick them up."""
    root = Path(__file__).resolve().parents[1]
    for path in (".env", "docker/.env", "docker/secrets/seat_passwords", "var/secret_key"):
        ignored = subprocess.run(["git", "check-ignore", "-q", path], cwd=root, check=False)
        assert ignored.returncode == 0, f"{path} is not ignored by git"
