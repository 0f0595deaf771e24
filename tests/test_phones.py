"""Phone numbers as Chinese carriers, Asterisk trunks and Twilio deliver them."""

import pytest

from cases.phones import InvalidPhone, PhoneSettings, normalise, normalise_or_raw


@pytest.mark.parametrize(
    ("raw", "e164"),
    [
        ("13800138000", "+8613800138000"),
        ("8613800138000", "+8613800138000"),
        ("+8613800138000", "+8613800138000"),
        ("+86 138 0013 8000", "+8613800138000"),
        ("008613800138000", "+8613800138000"),
        ("0898-66668888", "+8689866668888"),
        ("089866668888", "+8689866668888"),
        ("66668888", "+8689866668888"),  # a Haikou landline without its area code
        ("8689866668888", "+8689866668888"),
        ("01012345678", "+861012345678"),  # Beijing
        ("sip:13800138000@10.0.0.1", "+8613800138000"),
        ("+14158675309", "+14158675309"),
        ("12345", "12345"),
        ("95598", "95598"),
        ("+8612345", "12345"),
        ("anonymous", ""),
        ("", ""),
        ("unknown", ""),
    ],
)
def test_numbers_normalise_to_e164(raw: str, e164: str) -> None:
    assert normalise(raw) == e164


def test_the_local_area_code_is_configurable() -> None:
    assert normalise("66668888", PhoneSettings(area_code="0571")) == "+8657166668888"


@pytest.mark.parametrize("raw", ["abc", "+", "1380013800012345678999", "13800138000;drop"])
def test_junk_is_refused_clearly(raw: str) -> None:
    with pytest.raises(InvalidPhone):
        normalise(raw)


@pytest.mark.parametrize(
    "raw", ["1380013", "138001380", "1380013800", "+86138001380", "861380013800"]
)
def test_a_mobile_missing_digits_is_refused_not_disguised_as_a_number(raw: str) -> None:
    """A do-not-call entry or a citizen's callback number typed short would otherwise be
    kept as some other number (1380013 as +861380013, shown 01**0013)."""
    with pytest.raises(InvalidPhone, match="11 digits"):
        normalise(raw)


def test_a_junk_caller_id_never_refuses_the_call() -> None:
    assert normalise_or_raw("abc;<x>") == "abcx"
