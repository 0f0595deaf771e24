"""The wallboard as a supervisor of a large centre reads it, in Chromium on a 1920×1080
wall screen and a 1366×768 laptop: 64 seats logged in, callers waiting, one seat three
hours into a call. Above the fold, at a glance: how many wait and the longest wait,
the connection, within-15 s and satisfaction rates, seats by state, and which seats
are stuck; zh-CN first, English one click away.

Screenshots go to var/test-artifacts/."""

from __future__ import annotations

import re
import time

import pytest
from redis import Redis

from hotline.config import load_settings
from hotline.runtime import call_queue
from tests.browser import ARTIFACTS, launch, screenshot
from tests.test_browser import sign_in, site  # noqa: F401  (site: the served app)

sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
expect = sync_api.expect

SEATS = [str(1001 + i) for i in range(64)]
STUCK_SEAT = "1003"


def a_busy_centre(site, redis: Redis) -> None:  # type: ignore[no-untyped-def]
    queue = call_queue(load_settings(site["env"]))
    for i, seat in enumerate(SEATS):
        queue.seat_login(seat, ("mandarin", "hainanese") if i % 5 == 0 else ("mandarin",))
    for seat, reason in (("1041", "lunch"), ("1044", "training"), ("1047", "meeting")):
        queue.seat_state(seat, "paused", reason)
    for n in range(75):  # more callers than free seats: some wait
        queue.enqueue(
            f"call-{n}",
            caller=f"+86138001385{n:02d}",
            priority="vulnerable" if n % 7 == 0 else "normal",
            skill="hainanese" if n % 4 == 0 else "mandarin",
        )
    for call_id in queue.live_calls():
        call = queue.call(call_id)
        if call.get("state") == "offered":
            queue.answer(call_id, call["seat"])
    # Hours and minutes cannot be waited for in a test: the queue's own clocks are set
    # back, as if the conversation began three hours ago and a caller came 2 min ago.
    now_ms = int(time.time() * 1000)
    redis.hset(queue.keys.seat_prefix + STUCK_SEAT, "since", str(now_ms - 3 * 3600 * 1000))
    waiting = [c for c in queue.live_calls() if queue.call(c).get("state") == "waiting"]
    assert waiting, "some callers wait"
    redis.hset(queue.keys.call_prefix + waiting[0], "entered", str(now_ms - 133_000))


def in_view(page, selector: str) -> bool:  # type: ignore[no-untyped-def]
    """Whole within the viewport, waited for as Playwright's expect waits: the board's
    live redraw swaps the fragment, and the element is detached for a moment. A miss
    leaves a screenshot of the fold to look at."""
    size = page.viewport_size
    for _ in range(50):
        box = page.locator(selector).bounding_box()
        if box and box["y"] >= 0 and box["y"] + box["height"] <= size["height"]:
            return True
        page.wait_for_timeout(100)
    name = f"not-in-view-{selector.strip('#')}-{size['width']}x{size['height']}.png"
    page.screenshot(path=str(ARTIFACTS / name))
    return False


def test_a_supervisor_sees_the_waits_the_rates_and_the_stuck_seats_at_a_glance(site, redis) -> None:  # type: ignore[no-untyped-def]
    a_busy_centre(site, redis)
    with sync_api.sync_playwright() as p:
        browser = launch(p)
        for width, height in ((1920, 1080), (1366, 768)):
            page = sign_in(browser, site, "li")
            page.set_viewport_size({"width": width, "height": height})
            page.goto(site["url"] + "/console/wallboard")
            glance = page.locator("#glance")
            expect(glance).to_be_visible()
            # The longest wait over all skills, as a duration, flagged past 15 s.
            longest = page.locator("#glance-longest")
            expect(longest).to_contain_text("最长等待")
            expect(longest).to_contain_text(re.compile(r"2分\d+秒"))
            expect(longest).to_have_class(re.compile(r"\blate\b"))
            expect(page.locator("#glance-waiting")).to_contain_text(re.compile(r"排队\s*\d+"))
            for tile, label in (
                ("#glance-connection", "人工接通率"),
                ("#glance-within-15s", "15秒接通率"),
                ("#glance-satisfaction", "满意率"),
            ):
                expect(page.locator(tile)).to_contain_text(label)
            # The stuck seat, named with its state and time, and its row marked.
            stuck = page.locator("#glance-stuck")
            expect(stuck).to_contain_text(STUCK_SEAT)
            expect(stuck).to_contain_text(re.compile(r"通话中\s*3小时"))
            expect(page.locator(f'tr[data-seat="{STUCK_SEAT}"]')).to_have_class(
                re.compile(r"\bstuck\b")
            )
            expect(page.locator('tr[data-seat="1004"]')).not_to_have_class(re.compile(r"\bstuck\b"))
            expect(page.locator("#seat-counts")).to_contain_text("小休")
            for selector in ("#glance", "#seat-counts"):
                assert in_view(page, selector), f"{selector} above the fold at {width}×{height}"
            assert page.evaluate("document.documentElement.scrollWidth <= innerWidth")
            text = page.locator("#board").inner_text()
            assert "on_call" not in text and "UTC" not in text and "+86" not in text
            screenshot(page, f"wallboard-{width}x{height}")  # the whole page
            page.screenshot(path=str(ARTIFACTS / f"wallboard-{width}x{height}-fold.png"))
            if width == 1920:
                page.locator("header button", has_text="English").click()
                expect(page.locator("#glance-longest")).to_contain_text("Longest wait")
                stuck_en = page.locator("#glance-stuck")
                expect(stuck_en).to_contain_text(re.compile(r"On a call\s*3 h"))
                expect(page.locator("#seats thead")).to_contain_text("Time in state")
                screenshot(page, "wallboard-1920x1080-en")
            page.context.close()
        browser.close()
