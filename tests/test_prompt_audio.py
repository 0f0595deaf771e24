"""Prompt audio rendered for Asterisk with the real espeak-ng and sox."""

import json
import subprocess
from pathlib import Path

import pytest

from hotline.prompt_audio import MANIFEST, duration_s, fragments, render_all


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sounds")
    render_all(out, "zh")
    return out / "zh"


def test_greeting_is_under_eight_seconds_of_8khz_mono(rendered: Path) -> None:
    wav = rendered / "greeting.wav"
    info = subprocess.run(["soxi", str(wav)], capture_output=True, text=True, check=True).stdout
    assert "Sample Rate    : 8000" in info and "Channels       : 1" in info
    assert 2.0 < duration_s(wav) < 8.0


def test_templated_prompts_render_as_fragments_and_numbers(rendered: Path) -> None:
    names = fragments("zh")
    assert "queue_position" not in names and "queue_position.0" in names
    assert (rendered / "queue_position.0.wav").exists()
    assert (rendered / "num" / "42.wav").exists() and (rendered / "digit" / "7.wav").exists()


def test_a_human_recording_is_never_overwritten(rendered: Path) -> None:
    human = rendered / "greeting.wav"
    manifest = json.loads((rendered / MANIFEST).read_text())
    del manifest["greeting"]  # as if a person had dropped their own file in
    (rendered / MANIFEST).write_text(json.dumps(manifest))
    human.write_bytes(b"RIFF-recorded-by-a-person")
    counts = render_all(rendered.parent, "zh", force=True)
    assert counts["human"] == 1
    assert human.read_bytes() == b"RIFF-recorded-by-a-person"


def test_second_run_renders_nothing_new(tmp_path: Path) -> None:
    render_all(tmp_path, "en")
    assert render_all(tmp_path, "en")["written"] == 0


def test_hold_clip_is_about_ten_seconds_and_kept_once_written(tmp_path: Path) -> None:
    from hotline.prompt_audio import render_hold_music

    clip = render_hold_music(tmp_path)
    assert 8.0 < duration_s(clip) < 12.0
    clip.write_bytes(b"a person's own music")
    assert render_hold_music(tmp_path).read_bytes() == b"a person's own music"
