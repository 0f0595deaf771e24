"""Phone numbers, normalised to E.164 wherever they enter (Twilio's From/To, Asterisk's
caller id and dialed number, the register, the API, cases), so that one citizen is one
number however the carrier wrote it: 13800138000, 8613800138000, +86 138 0013 8000,
008613800138000 are all +8613800138000; a Haikou landline written 66668888 (no area
code) or 0898-66668888 is +8689866668888. Service numbers (12345, 95598) stay short
codes: they are what the merged-hotline table is keyed by."""

from __future__ import annotations

import re
from dataclasses import dataclass

import phonenumbers

WITHHELD = {"", "anonymous", "unknown", "private", "restricted", "unavailable", "withheld"}
_SEPARATORS = re.compile(r"[\s\-().]")


class InvalidPhone(ValueError):
    """Not a phone number we can call or match."""


@dataclass(frozen=True)
class PhoneSettings:
    region: str = "CN"  # where national numbers belong (HOTLINE_PHONE_REGION)
    area_code: str = "898"  # prefixed to local landline numbers: Haikou (HOTLINE_AREA_CODE)


DEFAULT = PhoneSettings()


_CN_MOBILE_LIKE = re.compile(r"1[1-9]")  # a national number so begun is a mobile's


def normalise(raw: str, settings: PhoneSettings = DEFAULT) -> str:
    """E.164 (+8613800138000), a short service code (12345), or "" when withheld.
    Raises InvalidPhone for anything else."""
    text = _SEPARATORS.sub("", (raw or "").strip())
    for prefix in ("sip:", "tel:"):
        text = text.removeprefix(prefix)
    text = text.split("@", 1)[0]
    if text.lower() in WITHHELD:
        return ""
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+?\d{3,20}", text):
        raise InvalidPhone(f"not a phone number: {raw!r}")
    digits = text.lstrip("+")
    if not text.startswith("+"):
        if len(digits) <= 6:
            return digits  # a service number: 12345, 95598, 110
        if settings.region == "CN" and re.fullmatch(r"861[3-9]\d{9}|86[2-9]\d{9,10}", digits):
            text = "+" + digits  # the country code without its plus, as some trunks send
        elif settings.region == "CN" and re.fullmatch(r"[2-9]\d{6,7}", digits):
            text = "0" + settings.area_code.lstrip("0") + digits  # local landline
    try:
        number = phonenumbers.parse(text, settings.region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"not a phone number: {raw!r} ({exc})") from None
    national = str(number.national_number)
    if len(national) <= 6:
        return national  # a short code written with a country code (+8612345)
    if not phonenumbers.is_possible_number(number):
        raise InvalidPhone(f"not a possible number: {raw!r}")
    if number.country_code == 86 and _CN_MOBILE_LIKE.match(national) and len(national) != 11:
        # 1380013 is a mistyped mobile, not a number: a mobile has 11 digits (10 for
        # Beijing's landlines, +86 10 ...).
        raise InvalidPhone(f"a mobile number has 11 digits: {raw!r}")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_or_raw(raw: str, settings: PhoneSettings = DEFAULT) -> str:
    """For caller ids from the telephony: normalised when possible, else the cleaned
    text (at most 32 characters), so a call is never refused for its caller id."""
    try:
        return normalise(raw, settings)
    except InvalidPhone:
        return "".join(c for c in (raw or "") if c.isalnum() or c == "+")[:32]


# What a phone number looks like here, however it was written: international with + (or
# %2B in a URL) or 00 (+8613800138000, 008613800138000, +86 139 0013 9000, 0044 7700
# 900123), a mobile
# with or without 86 (13800138000, 8613800138000, 138 0013 8000, 139-0013-9000,
# 139.0013.9000), a landline with its area code (0898-66668888, 0898-6666-8888,
# (0898)6666-8888). In a URL a space is '+' or %20 (139+0013+9000, +86+139+0013+9000).
# Standing alone: digits inside ids (ast-1795812065.3, case numbers
# 12345-20261128-000001, stream ids 1795812065123-0, CA13800138000aaaa) are not phone
# numbers. A letter or a percent-escape before a number is only text (tel13900139000,
# %3D13900139000, 来电 as %E6%9D%A5%E7%94%B5), and the edges are ASCII, so a number
# inside Chinese text (来电13900139000) is found too.
_SEP = r"(?:[ .+-]|%20)"
_PHONE = re.compile(
    r"(?:(?<=%[0-9A-Fa-f]{2})|(?<![0-9_.+-]))"
    r"(?:(?:\+|%2[Bb]|00)[1-9]\d{6,14}"
    rf"|(?:\+|%2[Bb]|00)[1-9]\d{{0,2}}(?:{_SEP}(?:\(\d{{1,4}}\)|\d{{1,6}})){{2,5}}"
    rf"|(?:86{_SEP}?)?1[3-9]\d(?:{_SEP}?\d{{4}}){{2}}"
    rf"|0\d{{2,3}}{_SEP}?\d{{7,8}}"
    rf"|0\d{{2,3}}{_SEP}\d{{3,4}}{_SEP}\d{{4}}"
    r"|\(0\d{2,3}\)[ ]?\d{3,4}[ -]?\d{4})"
    r"(?![A-Za-z0-9_-]|\.\d)",
    re.ASCII,
)


def _mask(text: str) -> str:
    encoded_plus = text[:3] if text[:3].upper() == "%2B" else ""  # its 2 is not the number's
    number = text[len(encoded_plus) :].replace("%20", "\x00")  # a space: its 20 is not either
    if sum(c.isdigit() for c in number) < 7:
        return text
    return encoded_plus + _hide_digits(number, 3, 4).replace("\x00", "%20")


def _hide_digits(text: str, head: int, tail: int) -> str:
    """The digits between the first ``head`` and the last ``tail`` as *."""
    digits = sum(c.isdigit() for c in text)
    seen, out = 0, []
    for c in text:
        if c.isdigit():
            seen += 1
            out.append(c if seen <= head or seen > digits - tail else "*")
        else:
            out.append(c)
    return "".join(out)


def mask_phone(text: str) -> str:
    """'13800138000' -> '138****8000': enough to recognise a caller, not to dial them.
    Full-width digits (１３９..., from a Chinese IME) are found as well and keep their form."""
    ascii_digits = text.translate(_FULL_WIDTH_DIGITS)  # one character for one: same spans
    out, done = [], 0
    for match in _PHONE.finditer(ascii_digits):
        out += [text[done : match.start()], _mask(text[match.start() : match.end()])]
        done = match.end()
    return "".join(out) + text[done:]


_FULL_WIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def national_form(phone: str | None, settings: PhoneSettings = DEFAULT) -> str:
    """A stored E.164 number as the operator reads it back to the caller: 139 0013 9000,
    0898 6666 8888; a number that does not parse stays as it was."""
    text = (phone or "").strip()
    try:
        number = phonenumbers.parse(text, settings.region)
    except phonenumbers.NumberParseException:
        return text
    if number.country_code != phonenumbers.country_code_for_region(settings.region):
        return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)


def mask_for_screen(phone: str | None, settings: PhoneSettings = DEFAULT) -> str:
    """A stored number as people read it, its middle hidden: a mainland mobile
    +8613800138501 is 138****8501, a Haikou landline 0898-****8888, another country's
    number its national form masked; short service codes (12345) stay whole. Logs keep
    mask_phone: this is the screen's form."""
    text = (phone or "").strip()
    if not text:
        return ""
    digits = text.lstrip("+")
    if digits.isdigit() and len(digits) <= 6:
        return digits
    try:
        number = phonenumbers.parse(text, settings.region)
    except phonenumbers.NumberParseException:
        return mask_phone(text)
    national = phonenumbers.national_significant_number(number)
    if len(national) <= 6:
        return national  # a short code written with a country code
    if number.country_code == 86:
        if re.fullmatch(r"1[3-9]\d{9}", national):
            return f"{national[:3]}****{national[-4:]}"
        area = phonenumbers.length_of_geographical_area_code(number)
        if area and len(national) - area >= 4:
            return f"0{national[:area]}-****{national[-4:]}"
        return _mask_middle("0" + national)
    return _mask_middle(phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL))


def _mask_middle(text: str) -> str:
    """Keep the first three and last four digits (fewer of a short number)."""
    digits = sum(c.isdigit() for c in text)
    head, tail = (3, 4) if digits >= 9 else (2, 4) if digits >= 7 else (1, 2)
    return _hide_digits(text, head, tail)
