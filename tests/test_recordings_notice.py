"""The recording notice: every caller hears that the call is recorded, inside the
greeting's elderly-first limit of 8 s of speech before a person can answer."""

from pathlib import Path

import pytest

from hotline.prompt_audio import duration_s, render_all
from ivr.prompts import render


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sounds")
    render_all(out, "zh")
    return out / "zh"


def test_the_greeting_says_the_call_is_recorded_in_under_eight_seconds(rendered: Path) -> None:
    assert "录音" in render("greeting") and "recorded" in render("greeting", "en")
    assert duration_s(rendered / "greeting.wav") < 8.0


def test_a_return_visit_says_it_is_recorded() -> None:
    assert "录音" in render("visit_intro", month=11, day=27)


def test_a_repeat_caller_who_skips_the_greeting_hears_the_notice_with_their_case() -> None:
    sentence = render("case_status", case_number="12345-20261127-000123", status="dispatched")
    assert "录音" in sentence
