"""Render the prompt catalogue to 8 kHz mono WAV files for Asterisk.

Text-to-speech with espeak-ng at a slow rate (for elderly callers), converted with sox.
Prompts with fields ({position}, ...) are rendered as their fixed fragments
(``queue_position.0``, ``queue_position.1``, ...) and the adapter plays the fragments
with number files (``num/N``) or digit files (``digit/D``) in between.

A recorded human voice replaces a rendering: drop ``<id>.wav`` into the folder. Files
this command did not write (not in its manifest) are never overwritten.
"""

from __future__ import annotations

import json
import shutil
import string
import subprocess
import tempfile
from pathlib import Path

from ivr.prompts import CATALOGUE, MAX_NUMBER, STATUS_WORDS

VOICES = {"zh": "cmn", "en": "en-us"}
# espeak-ng's Mandarin voice at its default 175 wpm already speaks ~3 syllables a second,
# slower than people do (4-5); English is slowed from its default 175.
RATE_WPM = {"zh": 175, "en": 140}


def speech_text(text: str, language: str) -> str:
    """What the synthesiser should say: hotline numbers digit by digit."""
    if language == "zh":
        return text.replace("12345", "幺二三四五")
    return text.replace("12345", "1 2 3 4 5")


MANIFEST = ".rendered.json"


def fragments(language: str) -> dict[str, str]:
    """Every audio file name (without .wav) and the text it speaks."""
    texts: dict[str, str] = {}
    for prompt_id, prompt in CATALOGUE.items():
        template = prompt.zh if language == "zh" else prompt.en
        parts = [literal for literal, *_ in string.Formatter().parse(template)]
        if len(parts) == 1:
            texts[prompt_id] = template
        else:
            for i, literal in enumerate(parts):
                if literal.strip(" ，。,."):
                    texts[f"{prompt_id}.{i}"] = literal
    for status, (zh, en) in STATUS_WORDS.items():
        texts[f"status/{status}"] = zh if language == "zh" else en
    for n in range(MAX_NUMBER + 1):
        texts[f"num/{n}"] = str(n)
    for d in "0123456789":
        texts[f"digit/{d}"] = "幺" if (language == "zh" and d == "1") else d
    return texts


def render_all(out_dir: Path, language: str = "zh", force: bool = False) -> dict[str, int]:
    """Render every missing fragment. Returns counts of written, kept and human files."""
    for tool in ("espeak-ng", "sox"):
        if shutil.which(tool) is None:
            raise RuntimeError(f"{tool} is not installed: run scripts/bootstrap.sh")
    target = out_dir / language
    target.mkdir(parents=True, exist_ok=True)
    manifest_path = target / MANIFEST
    manifest: dict[str, str] = (
        json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    )
    counts = {"written": 0, "unchanged": 0, "human": 0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, text in fragments(language).items():
            wav = target / f"{name}.wav"
            if wav.exists() and name not in manifest:
                counts["human"] += 1  # somebody recorded this one: keep it
                continue
            if wav.exists() and manifest.get(name) == text and not force:
                counts["unchanged"] += 1
                continue
            wav.parent.mkdir(parents=True, exist_ok=True)
            raw = Path(tmp) / "raw.wav"
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    VOICES[language],
                    "-s",
                    str(RATE_WPM[language]),
                    "-w",
                    str(raw),
                    speech_text(text, language),
                ],
                check=True,
                capture_output=True,
            )
            subprocess.run(
                [
                    "sox",
                    str(raw),
                    "-r",
                    "8000",
                    "-c",
                    "1",
                    "-b",
                    "16",
                    "-e",
                    "signed-integer",
                    str(wav),
                ],
                check=True,
                capture_output=True,
            )
            manifest[name] = text
            counts["written"] += 1
    manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
    return counts


def duration_s(wav: Path) -> float:
    result = subprocess.run(["soxi", "-D", str(wav)], check=True, capture_output=True, text=True)
    return float(result.stdout.strip())


# A gentle plucked melody, about ten seconds: the hold clip Twilio plays between polls.
_MELODY = [
    ("C4", 0.6),
    ("E4", 0.6),
    ("G4", 0.6),
    ("E4", 0.6),
    ("C4", 1.2),
    ("D4", 0.6),
    ("F4", 0.6),
    ("A4", 0.6),
    ("G4", 1.2),
    ("E4", 0.6),
    ("G4", 0.6),
    ("C5", 1.2),
]


def render_hold_music(out_dir: Path) -> Path:
    """Write hold.wav (8 kHz mono) once; a file put there by a person is kept."""
    target = out_dir / "hold.wav"
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    effects: list[str] = []
    for i, (note, seconds) in enumerate(_MELODY):
        effects += ([":"] if i else []) + ["synth", str(seconds), "pluck", note]
    effects += [":", "synth", "1.0", "sine", "0", "vol", "0.5"]  # a breath before the loop
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(target), *effects],
        check=True,
        capture_output=True,
    )
    return target
