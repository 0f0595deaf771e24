"""Photos of a case: a grid worker's on site, a citizen's from the web form. The file
is kept in the photos directory beside the case (``<photos dir>/<case number>/``), its
record in ``case_photo``. A photo is refused when it is too large or not a JPEG, PNG or
WebP by its own bytes (what the browser says it is does not count).

A phone's photo carries where it was taken (EXIF GPS) and the device; operators,
leaders and units see the photos, so the metadata is stripped before the file is kept
(``strip_metadata``), without decoding the image: JPEG's APP1 (EXIF, XMP) and other
APPn and COM segments, PNG's text, eXIf and tIME chunks, WebP's EXIF and XMP chunks.
EXIF's orientation alone is kept (a new EXIF segment holding only that tag), so that a
photo the phone saved sideways still shows upright; WebP and PNG photos carry none that
browsers apply. The grid worker's on-site location is the desk's own record, not the
photo's."""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Literal

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from cases.models import Base, Case

MAX_PHOTO_BYTES = 5 * 1024 * 1024  # a phone's photo; larger ones are resized first
MAX_PHOTOS_PER_CASE = 20
PHOTO_TYPES = {"image/jpeg": ".jpg", "image/png": ".png", "image/webp": ".webp"}


class CasePhoto(Base):
    """A photo of a case, stored under the photos directory as ``file_name``."""

    __tablename__ = "case_photo"
    id: Mapped[int] = mapped_column(primary_key=True)
    case_id: Mapped[int] = mapped_column(ForeignKey("case_record.id"), index=True)
    file_name: Mapped[str] = mapped_column(String(128))  # <case number>/<random>.<ext>
    content_type: Mapped[str] = mapped_column(String(32))
    size_bytes: Mapped[int] = mapped_column(Integer)
    added_by: Mapped[str] = mapped_column(String(64))
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    note: Mapped[str] = mapped_column(Text, default="")

    __table_args__ = (Index("ix_case_photo_case_added", "case_id", "added_at"),)


# JPEG APPn segments kept: JFIF (APP0), the colour profile (APP2 ICC_PROFILE), Adobe's
# colour transform (APP14), which decoders need; every other APPn and COM is dropped.
_JPEG_KEPT = {0xE0: b"JFIF\x00", 0xE2: b"ICC_PROFILE\x00", 0xEE: b"Adobe"}
_PNG_METADATA = frozenset({b"tEXt", b"iTXt", b"zTXt", b"eXIf", b"tIME"})
_WEBP_METADATA = frozenset({b"EXIF", b"XMP "})
_VP8X_EXIF_XMP_FLAGS = 0x08 | 0x04


def strip_metadata(data: bytes, kind: str) -> bytes:
    """The photo without its metadata, by walking its segments or chunks (the image
    itself is copied, never decoded). Where the structure breaks off, the rest is kept
    as it is: what was before it has been stripped already."""
    if kind == "image/jpeg":
        return _strip_jpeg(data)
    if kind == "image/png":
        return _strip_png(data)
    if kind == "image/webp":
        return _strip_webp(data)
    return data


def _exif_orientation(payload: bytes) -> int | None:
    """EXIF's orientation tag (IFD0, 0x0112) from an APP1 payload, if it has one."""
    if not payload.startswith(b"Exif\x00\x00"):
        return None
    tiff = payload[6:]
    order = {b"II": "little", b"MM": "big"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return None
    endian: Literal["little", "big"] = "little" if order == "little" else "big"
    ifd = int.from_bytes(tiff[4:8], endian)
    count = int.from_bytes(tiff[ifd : ifd + 2], endian)
    for n in range(count):
        entry = tiff[ifd + 2 + 12 * n : ifd + 14 + 12 * n]
        if len(entry) < 12:
            return None
        tag, kind = int.from_bytes(entry[0:2], endian), int.from_bytes(entry[2:4], endian)
        if tag == 0x0112 and kind == 3:  # SHORT, held in the entry itself
            value = int.from_bytes(entry[8:10], endian)
            return value if 1 <= value <= 8 else None
    return None


def _orientation_segment(orientation: int) -> bytes:
    """An APP1 EXIF segment holding the orientation and nothing else."""
    entry = b"\x01\x12\x00\x03\x00\x00\x00\x01" + orientation.to_bytes(2, "big") + b"\x00\x00"
    tiff = b"MM\x00*\x00\x00\x00\x08" + b"\x00\x01" + entry + b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    return b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload


def _strip_jpeg(data: bytes) -> bytes:
    out, i = bytearray(data[:2]), 2
    oriented = False
    while i + 1 < len(data):
        if data[i] != 0xFF:
            break
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0xD9:  # end of image: anything after it (appended images) goes
            return bytes(out + data[i : i + 2])
        if 0xD0 <= marker <= 0xD7 or marker == 0x01:  # markers without a length
            out += data[i : i + 2]
            i += 2
            continue
        length = int.from_bytes(data[i + 2 : i + 4], "big")
        end = i + 2 + length
        if length < 2 or end > len(data):
            break
        payload = data[i + 4 : end]
        metadata = marker == 0xFE or (
            0xE0 <= marker <= 0xEF and not payload.startswith(_JPEG_KEPT.get(marker, b"\xff"))
        )
        if not metadata:
            out += data[i:end]
        elif marker == 0xE1 and not oriented:
            orientation = _exif_orientation(payload)
            if orientation is not None and orientation != 1:
                out += _orientation_segment(orientation)
                oriented = True
        i = end
        if marker == 0xDA:  # the scan's coded data runs to the next real marker
            j = i
            while True:
                j = data.find(b"\xff", j)
                if j < 0 or j + 1 >= len(data):
                    return bytes(out + data[i:])
                follower = data[j + 1]
                if follower == 0x00 or 0xD0 <= follower <= 0xD7:
                    j += 2
                elif follower == 0xFF:
                    j += 1
                else:
                    break
            out += data[i:j]
            i = j
    return bytes(out + data[i:])


def _strip_png(data: bytes) -> bytes:
    out, i = bytearray(data[:8]), 8
    while i + 12 <= len(data):
        length = int.from_bytes(data[i : i + 4], "big")
        chunk_type = data[i + 4 : i + 8]
        end = i + 12 + length
        if end > len(data):
            break
        if chunk_type not in _PNG_METADATA:
            out += data[i:end]
        i = end
        if chunk_type == b"IEND":
            return bytes(out)
    return bytes(out + data[i:])


def _strip_webp(data: bytes) -> bytes:
    body_end = min(len(data), 8 + int.from_bytes(data[4:8], "little"))
    out, i = bytearray(), 12
    while i + 8 <= body_end:
        fourcc = data[i : i + 4]
        length = int.from_bytes(data[i + 4 : i + 8], "little")
        end = i + 8 + length
        if end > body_end:
            break
        if fourcc not in _WEBP_METADATA:
            chunk = bytearray(data[i:end])
            if fourcc == b"VP8X" and length >= 1:
                chunk[8] &= ~_VP8X_EXIF_XMP_FLAGS & 0xFF
            out += chunk + (b"\x00" if length % 2 else b"")
        i = end + length % 2
    out += data[i:body_end]
    return b"RIFF" + (len(out) + 4).to_bytes(4, "little") + b"WEBP" + bytes(out)


class PhotoRefused(ValueError):
    """A photo not taken: a stable ``code`` and words in zh-CN and English."""

    def __init__(self, code: str, zh: str, en: str) -> None:
        super().__init__(zh)
        self.code, self.zh, self.en = code, zh, en

    def words(self, lang: str = "zh") -> str:
        return self.zh if lang == "zh" else self.en


def photos_dir_from_env(env: Mapping[str, str]) -> Path:
    """HOTLINE_PHOTOS_DIR, else ``photos`` under HOTLINE_VAR_DIR (default ./var)."""
    chosen = env.get("HOTLINE_PHOTOS_DIR")
    if chosen:
        return Path(chosen).resolve()
    return (Path(env.get("HOTLINE_VAR_DIR") or "var") / "photos").resolve()


def sniff(data: bytes) -> str | None:
    """The image type by its first bytes, or None."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_photo(data: bytes, max_bytes: int = MAX_PHOTO_BYTES) -> str:
    """The photo's type, or PhotoRefused."""
    if not data:
        raise PhotoRefused("photo-empty", "请选择一张照片", "Choose a photo")
    if len(data) > max_bytes:
        mb = max_bytes / (1024 * 1024)
        raise PhotoRefused(
            "photo-too-large",
            f"照片太大（最大 {mb:g} MB）",
            f"The photo is too large (at most {mb:g} MB)",
        )
    kind = sniff(data)
    if kind is None:
        raise PhotoRefused(
            "photo-type", "只能上传 JPEG、PNG 或 WebP 照片", "Only JPEG, PNG or WebP photos"
        )
    return kind


def store_photo(
    db: Session,
    case: Case,
    data: bytes,
    added_by: str,
    photos_dir: Path,
    *,
    note: str = "",
    max_bytes: int = MAX_PHOTO_BYTES,
) -> CasePhoto:
    """Check the photo, write its file beside the case's others (whole or not at all),
    and record it, with a line in the case's trail. The caller commits; a file whose
    record is never committed is an orphan the directory can bear."""
    from cases.service import _record, utcnow  # cases.service imports the schema

    kind = check_photo(data, max_bytes)
    count = len(list(db.scalars(select(CasePhoto.id).where(CasePhoto.case_id == case.id))))
    if count >= MAX_PHOTOS_PER_CASE:
        raise PhotoRefused(
            "photo-limit",
            f"每件工单最多 {MAX_PHOTOS_PER_CASE} 张照片",
            f"A case has at most {MAX_PHOTOS_PER_CASE} photos",
        )
    data = strip_metadata(data, kind)
    folder = photos_dir / case.number
    folder.mkdir(parents=True, exist_ok=True)
    name = secrets.token_hex(8) + PHOTO_TYPES[kind]
    partial = folder / (name + ".part")
    with open(partial, "wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())
    os.replace(partial, folder / name)
    photo = CasePhoto(
        case_id=case.id,
        file_name=f"{case.number}/{name}",
        content_type=kind,
        size_bytes=len(data),
        added_by=added_by[:64],
        added_at=utcnow(),
        note=note.strip()[:500],
    )
    db.add(photo)
    _record(case, added_by, "photo", case.status, case.status, photo.note)
    case.updated_at = utcnow()
    db.flush()
    return photo


def photos_of(db: Session, case_id: int) -> list[CasePhoto]:
    return list(
        db.scalars(select(CasePhoto).where(CasePhoto.case_id == case_id).order_by(CasePhoto.id))
    )


def photo_path(photos_dir: Path, photo: CasePhoto) -> Path | None:
    """The photo's file, if it is there and inside the photos directory."""
    root = photos_dir.resolve()
    path = (root / photo.file_name).resolve()
    if root not in path.parents or not path.is_file():
        return None
    return path
