"""Password rules fit for 等保 2.0: a length, at least two kinds of character, and no
password that guessing tries first: the common ones (a bundled list, Chinese favourites
included), repeated or sequential patterns, keyboard walks, a name or word followed
by a date or easy digits, and the user's own name.

``weakness(password, username)`` names the first rule a password breaks, or None;
cases.users turns that into a refusal the screens say in the reader's language."""

from __future__ import annotations

import re

MIN_PASSWORD = 10
MAX_PASSWORD = 256  # what the sign-in form accepts

# The passwords tried first: the usual world-wide lists and the Chinese favourites
# (birthdays aside, which the two-kinds rule catches when they are digits only).
# Compared lower-case, with digits and symbols at either end taken off as well.
COMMON = frozenset(
    """
    123456 1234567 12345678 123456789 1234567890 0123456789 987654321 0987654321
    111111 000000 666666 888888 999999 112233 123123 123321 654321 520520 5201314
    1314520 131452 521521 woaini woaini1314 woaini520 iloveyou loveyou aini1314
    password passw0rd p@ssword p@ssw0rd password1 pass pass123 passwd secret
    qwerty qwertyuiop qwerty123 qwe123 qweasd qweasdzxc asdfgh asdfghjkl asd123
    zxcvbn zxcvbnm 1qaz2wsx 1q2w3e4r 1q2w3e4r5t q1w2e3r4 qazwsx qaz123 abc123 abcd1234
    abcdef abcdefg abcdefgh a1b2c3 a1b2c3d4 a123456 aa123456 a12345678 aaa111 abc
    admin admin123 admin888 administrator root toor system manager sysadmin test
    test123 guest user login welcome welcome1 letmein changeme default master
    monkey dragon football baseball sunshine princess shadow superman batman
    michael jennifer jordan hunter trustno1 starwars whatever freedom qwer1234
    iloveu lovely love123 love1314 woaiwojia woaimama woaibaba wodemima mima
    mima123 zhangwei wangwei wangfang liwei lina zhangmin liuyang wangjing
    beijing shanghai hainan haikou sanya zhongguo china chinese huawei xiaomi
    taobao alibaba tencent baidu weixin wechat qq123456 qqqqqq
    hotline hotline12345 12345hotline rexian 12345rexian
    """.split()
)

KEYBOARD_RUNS = (
    "abcdefghijklmnopqrstuvwxyz",
    "01234567890",
    "qwertyuiop",
    "asdfghjkl",
    "zxcvbnm",
    "1qaz2wsx3edc4rfv5tgb6yhn7ujm8ik9ol0p",
    "qazwsxedcrfvtgbyhnujmikolp",
    "1q2w3e4r5t6y7u8i9o0p",
    "q1w2e3r4t5y6u7i8o9p0",
)
_RUNS = KEYBOARD_RUNS + tuple(run[::-1] for run in KEYBOARD_RUNS)
_ENDS = re.compile(r"^[\W\d_]+|[\W\d_]+$")


def weakness(password: str, username: str = "") -> str | None:
    """The first rule ``password`` breaks, as a refusal code, or None."""
    if len(password) < MIN_PASSWORD:
        return "password-short"
    if len(password) > MAX_PASSWORD:
        return "password-long"
    lowered = password.lower()
    name = username.strip().lower()
    if len(name) >= 3 and (name in lowered or name[::-1] in lowered):
        return "password-username"
    if _kinds(password) < 2:
        return "password-kinds"
    bare = "".join(lowered.split())
    core = _ENDS.sub("", bare)  # Password123! -> password
    if bare in COMMON or core in COMMON or _ENDS.sub("", lowered) in COMMON:
        return "password-common"
    if _is_pattern(bare) or _is_pattern(core) or _word_and_date(lowered):
        return "password-pattern"
    return None


_WORD_DIGITS = re.compile(r"([a-z]+)(\d+)")
_DATE = re.compile(r"(19|20)?\d\d((0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])?)?")


def _word_and_date(lowered: str) -> bool:
    """One word followed by a year, a date or easy digits: a name in pinyin and a
    birthday (zhang123456, lixiaoming1990, hello2024) is the next thing guessing tries."""
    match = _WORD_DIGITS.fullmatch(lowered)
    if match is None:
        return False
    digits = match.group(2)
    return (
        len(digits) <= 4
        or _DATE.fullmatch(digits) is not None
        or len(set(digits)) <= 2
        or _is_pattern(digits)
    )


def _kinds(password: str) -> int:
    """Lower case, upper case, digits, anything else (a space counts: passphrases)."""
    return sum(
        (
            any(c.islower() for c in password),
            any(c.isupper() for c in password),
            any(c.isdigit() for c in password),
            any(not c.isalnum() for c in password),
        )
    )


def _is_pattern(text: str) -> bool:
    """Few distinct characters, one short unit repeated (abcabcabc, 5201314520...), a
    run along the alphabet or the keyboard (at most two pieces: qwerty12345), or two
    such runs interleaved (a1b2c3d4e5)."""
    if len(set(text)) < 4:
        return True
    if any(_repeats(text, unit) for unit in range(1, len(text) // 2 + 1)):
        return True
    return _run_pieces(text) <= 2 or (_run_pieces(text[::2]) <= 1 and _run_pieces(text[1::2]) <= 1)


def _repeats(text: str, unit: int) -> bool:
    return all(text[i] == text[i - unit] for i in range(unit, len(text)))


def _run_pieces(text: str) -> int:
    """How few pieces, each a stretch of a keyboard or alphabet run (or one character
    repeated), cover ``text`` (a large number when it cannot be covered)."""
    pieces, i = 0, 0
    while i < len(text):
        longest = 1
        for run in _RUNS:
            start = run.find(text[i])
            while start != -1:
                length = 0
                while (
                    i + length < len(text)
                    and start + length < len(run)
                    and text[i + length] == run[start + length]
                ):
                    length += 1
                longest = max(longest, length)
                start = run.find(text[i], start + 1)
        same = 1
        while i + same < len(text) and text[i + same] == text[i]:
            same += 1
        step = max(longest, same)
        if step < 3:
            return len(text)  # a stretch too short to be a run: not a pattern
        pieces, i = pieces + 1, i + step
    return pieces
