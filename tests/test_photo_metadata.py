"""A citizen's or grid worker's photo loses its EXIF (GPS, device) before it is kept:
JPEG, PNG and WebP, walked by their structure, the image bytes untouched."""

from __future__ import annotations

import io
import zlib

from sqlalchemy import select

from cases.photos import CasePhoto, _exif_orientation, photo_path, strip_metadata
from tests.test_webform import FORM, plain_app, post_form  # noqa: F401  (fixture)

GPS = b"GPSLatitude 20.0444N 110.1999E iPhone 15 Pro"


def segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + (len(payload) + 2).to_bytes(2, "big") + payload


SCAN = b"\x12\xff\x00\x34\xff\xd0\x56"  # coded data with a stuffed 0xFF and a restart
JPEG = (
    b"\xff\xd8"
    + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    + segment(0xE1, b"Exif\x00\x00MM\x00*" + GPS)
    + segment(0xE1, b"http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>" + GPS)
    + segment(0xFE, b"taken at home")
    + segment(0xDB, b"\x00" + bytes(range(64)))
    + segment(0xDA, b"\x01\x01\x00\x00\x3f\x00")
    + SCAN
    + b"\xff\xd9"
    + b"\xff\xd8"
    + segment(0xE1, b"Exif\x00\x00" + GPS)
    + b"\xff\xd9"  # an appended preview
)


def exif(orientation: int) -> bytes:
    """An EXIF APP1 payload as a phone writes it (little-endian): the orientation, the
    camera's make and a pointer to the GPS IFD, then the GPS text."""
    entries = [
        (0x010F, 2, len(GPS), 8 + 2 + 3 * 12 + 4),  # make: a string after the IFD
        (0x0112, 3, 1, orientation),
        (0x8825, 4, 1, 8 + 2 + 3 * 12 + 4),  # GPS IFD
    ]
    ifd = len(entries).to_bytes(2, "little") + b"".join(
        t.to_bytes(2, "little")
        + k.to_bytes(2, "little")
        + c.to_bytes(4, "little")
        + v.to_bytes(4, "little")
        for t, k, c, v in entries
    )
    return b"Exif\x00\x00" + b"II*\x00\x08\x00\x00\x00" + ifd + b"\x00" * 4 + GPS


def test_a_jpeg_keeps_only_its_orientation_of_the_exif() -> None:
    rotated = JPEG.replace(segment(0xE1, b"Exif\x00\x00MM\x00*" + GPS), segment(0xE1, exif(6)))
    kept = strip_metadata(rotated, "image/jpeg")
    assert GPS not in kept
    app1 = kept.index(b"\xff\xe1")
    length = int.from_bytes(kept[app1 + 2 : app1 + 4], "big")
    assert _exif_orientation(kept[app1 + 4 : app1 + 2 + length]) == 6
    assert kept.count(b"Exif") == 1 and length < 40  # the orientation alone
    upright = JPEG.replace(segment(0xE1, b"Exif\x00\x00MM\x00*" + GPS), segment(0xE1, exif(1)))
    assert b"Exif" not in strip_metadata(upright, "image/jpeg")


def chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data).to_bytes(4, "big")
    return len(data).to_bytes(4, "big") + kind + data + crc


def test_a_jpeg_loses_exif_xmp_and_comments_and_keeps_its_image() -> None:
    kept = strip_metadata(JPEG, "image/jpeg")
    assert GPS not in kept and b"Exif" not in kept and b"taken at home" not in kept
    assert kept.startswith(
        b"\xff\xd8" + segment(0xE0, b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00")
    )
    assert segment(0xDB, b"\x00" + bytes(range(64))) in kept
    assert kept.endswith(segment(0xDA, b"\x01\x01\x00\x00\x3f\x00") + SCAN + b"\xff\xd9")


def test_a_png_loses_its_text_and_exif_chunks() -> None:
    ihdr = chunk(b"IHDR", b"\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00")
    idat = chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
    png = (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + chunk(b"tEXt", b"Comment\x00" + GPS)
        + chunk(b"eXIf", b"MM\x00*" + GPS)
        + chunk(b"iTXt", b"XML:com.adobe.xmp\x00\x00\x00\x00\x00" + GPS)
        + idat
        + chunk(b"IEND", b"")
    )
    kept = strip_metadata(png, "image/png")
    assert kept == b"\x89PNG\r\n\x1a\n" + ihdr + idat + chunk(b"IEND", b"")


def test_a_webp_loses_its_exif_and_xmp_chunks_and_flags() -> None:
    def riff(body: bytes) -> bytes:
        return b"RIFF" + (len(body) + 4).to_bytes(4, "little") + b"WEBP" + body

    def part(fourcc: bytes, data: bytes) -> bytes:
        return fourcc + len(data).to_bytes(4, "little") + data + (b"\x00" if len(data) % 2 else b"")

    vp8x = part(b"VP8X", b"\x0c\x00\x00\x00" + b"\x00" * 6)
    image = part(b"VP8 ", b"\x01\x02\x03")
    webp = riff(vp8x + image + part(b"EXIF", b"MM\x00*" + GPS) + part(b"XMP ", GPS))
    assert strip_metadata(webp, "image/webp") == riff(part(b"VP8X", b"\x00" * 10) + image)


def test_the_web_forms_photo_is_kept_without_its_gps(plain_app) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    page = post_form(
        plain_app.test_client(), {**FORM, "photo": (io.BytesIO(JPEG), "a.jpg", "image/jpeg")}
    )
    assert page.status_code == 200
    with plain_app.extensions["hotline"].desk.sessions() as db:
        (photo,) = db.scalars(select(CasePhoto))
        path = photo_path(plain_app.extensions["hotline_photos_dir"], photo)
        assert path is not None
        stored = path.read_bytes()
    assert GPS not in stored and stored == strip_metadata(JPEG, "image/jpeg")
    assert photo.size_bytes == len(stored)
