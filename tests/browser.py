"""A real browser for tests: Playwright driving Debian's Chromium (``playwright
install`` cannot download here). Tests that need it skip, saying how to enable it, when
either is missing; `bootstrap.sh --test` installs both."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",  # root in CI containers
    "--disable-gpu",
    "--disable-background-networking",  # this machine's network refuses Google's hosts
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "var" / "test-artifacts"


def chromium_path() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("no chromium: apt-get install chromium fonts-noto-cjk (bootstrap.sh --test)")


def launch(playwright):  # type: ignore[no-untyped-def]
    return playwright.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)


def phone_page(browser):  # type: ignore[no-untyped-def]
    """A page as a citizen's or a clerk's phone shows it: 390x844, touch, zh-CN."""
    context = browser.new_context(
        locale="zh-CN",
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
    )
    return context.new_page()


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
