"""Conformance of PII masking (spec/data.py mask_emails, mask_phone_numbers, mask_ips; handout A4 §2.4).

Oracles: the expected masked text written out by hand for every case, and properties (idempotence, counts equal
to the masks added, text around an address untouched). The course level holds the course's own cases (its tests'
sentences and US phone formats) and what the handout defines (IPv4: four numbers up to 255); the strict level adds
the kit's harder cases: international numbers, addresses at the edges and in brackets, look-alikes left alone.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from spec.data import EMAIL_MASK, IP_MASK, PHONE_MASK

PROPERTY = settings(max_examples=60, deadline=None)
SENTENCE = "Feel free to contact me at {} if you have any questions."
MASKS = {"mask_emails": EMAIL_MASK, "mask_phone_numbers": PHONE_MASK, "mask_ips": IP_MASK}
# Words around an address in the property tests: ASCII letters only, so that no course implementation's pattern
# can take them for part of an address.
WORDS = st.lists(st.text("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=1, max_size=8),
                 max_size=6).map(" ".join)


def masked(impl, function: str, text: str) -> tuple[str, int]:
    result = getattr(impl, function)(text)
    assert isinstance(result, tuple) and len(result) == 2, f"{function} must return (text, count), got {result!r}"
    new_text, count = result
    assert isinstance(new_text, str), f"{function}: the text must be a str, got {type(new_text).__name__}"
    assert int(count) == count, f"{function}: the count must be an int, got {count!r}"
    return new_text, int(count)


def assert_masks(impl, function: str, text: str, expected: str, count: int) -> None:
    got_text, got_count = masked(impl, function, text)
    assert (got_text, got_count) == (expected, count), (
        f"{function}({text!r})\n  gave     ({got_text!r}, {got_count})\n  expected ({expected!r}, {count})")


def assert_unmasked(impl, function: str, text: str) -> None:
    assert_masks(impl, function, text, text, 0)


# --------------------------------------------------------------------------------------------- emails


@pytest.mark.component("mask_emails")
def test_mask_one_email(impl):
    """An address in a sentence is replaced by |||EMAIL_ADDRESS|||, count 1 (the course's case)."""
    assert_masks(impl, "mask_emails", SENTENCE.format("test@gmail.com"), SENTENCE.format(EMAIL_MASK), 1)


@pytest.mark.component("mask_emails")
def test_mask_several_emails(impl):
    """Every address is masked and counted; the text between them is unchanged."""
    text = "The instructors are pl@fakedomain.ai and spl@fakedomain.ai, and the TA is ta.person@cs.example.edu"
    expected = f"The instructors are {EMAIL_MASK} and {EMAIL_MASK}, and the TA is {EMAIL_MASK}"
    assert_masks(impl, "mask_emails", text, expected, 3)


@pytest.mark.component("mask_emails")
def test_mask_emails_keeps_an_existing_mask(impl):
    """A |||EMAIL_ADDRESS||| already in the text stays and is not counted."""
    text = f"Some datasets write {EMAIL_MASK} where an address such as test@gmail.com was"
    assert_masks(impl, "mask_emails", text, text.replace("test@gmail.com", EMAIL_MASK), 1)


@pytest.mark.strict
@pytest.mark.component("mask_emails")
@pytest.mark.parametrize("text, expected, count", [
    ("first.last+tag@mail.example.co.uk wrote", f"{EMAIL_MASK} wrote", 1),  # at the start; dots, plus, subdomains
    ("write to <jane-doe@example.org>", f"write to <{EMAIL_MASK}>", 1),  # angle brackets stay
    ("mailto:INFO@EXAMPLE.COM", f"mailto:{EMAIL_MASK}", 1),  # upper case, after a scheme
    ("a@b.org,c@d.net", f"{EMAIL_MASK},{EMAIL_MASK}", 2),  # back to back
    ("write to ta@cs.example.edu.", f"write to {EMAIL_MASK}.", 1),  # the full stop ends the sentence, not the domain
    ("follow @handle and foo@ and @ alone", "follow @handle and foo@ and @ alone", 0),  # no domain: no address
], ids=["edges-and-tags", "angle-brackets", "upper-case", "adjacent", "before-full-stop", "look-alikes"])
def test_mask_emails_harder_cases(impl, text, expected, count):
    """Addresses in their common variants and places are masked as a whole; look-alikes are left alone."""
    assert_masks(impl, "mask_emails", text, expected, count)


# --------------------------------------------------------------------------------------------- phone numbers

US_FORMATS = ["2831823829", "(283)-182-3829", "(283) 182 3829", "283-182-3829", "283.182.3829", "283 182 3829"]


@pytest.mark.component("mask_phone_numbers")
@pytest.mark.parametrize("number", US_FORMATS)
def test_mask_us_phone_number(impl, number):
    """A US number in a common format is masked as a whole, count 1 (the course's formats, and dots or spaces)."""
    assert_masks(impl, "mask_phone_numbers", SENTENCE.format(number), SENTENCE.format(PHONE_MASK), 1)


@pytest.mark.component("mask_phone_numbers")
def test_mask_several_phone_numbers(impl):
    """Every number in a text is masked and counted."""
    text = "Call 283-182-3829 or (415) 555 0199, not 2831823829."
    expected = f"Call {PHONE_MASK} or {PHONE_MASK}, not {PHONE_MASK}."
    assert_masks(impl, "mask_phone_numbers", text, expected, 3)


@pytest.mark.strict
@pytest.mark.component("mask_phone_numbers")
@pytest.mark.parametrize("number", ["+1 283 182 3829", "+1 (283) 182-3829", "1-283-182-3829", "+44 20 7946 0958",
                                    "+33 1 23 45 67 89", "+49 30 1234567", "+81 3-1234-5678"])
def test_mask_phone_numbers_with_country_codes(impl, number):
    """A number with its country code, US or international, is one mask."""
    assert_masks(impl, "mask_phone_numbers", SENTENCE.format(number), SENTENCE.format(PHONE_MASK), 1)


@pytest.mark.strict
@pytest.mark.component("mask_phone_numbers")
@pytest.mark.parametrize("text", ["Born in 1987, hired in 2024.", "Due 2024-01-15 at 10:30.", "It costs $1,234.56.",
                                  "Server 192.168.100.200 is up.", "Room 12345, code 123456.",
                                  "Order 12345678901234 shipped.", "ISBN 978-3-16-148410-0"])
def test_phone_look_alikes_are_not_masked(impl, text):
    """Years, dates, times, prices, IPv4 addresses, short numbers and long digit runs are not phone numbers."""
    assert_unmasked(impl, "mask_phone_numbers", text)


# --------------------------------------------------------------------------------------------- IPv4


@pytest.mark.component("mask_ips")
def test_mask_one_ip(impl):
    """An IPv4 address in a sentence is masked, count 1 (the course's case)."""
    text = "You can access the server at 192.0.2.146, which is our IP."
    assert_masks(impl, "mask_ips", text, text.replace("192.0.2.146", IP_MASK), 1)


@pytest.mark.component("mask_ips")
@pytest.mark.parametrize("text, expected, count", [
    ("10.0.0.1 is the gateway", f"{IP_MASK} is the gateway", 1),  # at the start
    ("the gateway is 10.0.0.1.", f"the gateway is {IP_MASK}.", 1),  # before a full stop at the end
    ("0.0.0.0 and 255.255.255.255", f"{IP_MASK} and {IP_MASK}", 2),  # the extremes
    ("(172.16.254.1)", f"({IP_MASK})", 1),
], ids=["start", "end-before-full-stop", "extremes", "parentheses"])
def test_mask_ips_at_the_edges(impl, text, expected, count):
    """Addresses at the edges of the text, next to punctuation, and with the extreme octets 0 and 255."""
    assert_masks(impl, "mask_ips", text, expected, count)


@pytest.mark.component("mask_ips")
@pytest.mark.parametrize("text", ["999.300.1.1", "256.1.1.1", "1.2.3.256", "host 300.168.1.1 is not valid"])
def test_invalid_octets_are_not_masked(impl, text):
    """Four numbers of which one exceeds 255 are not an address, nor is any part of them (handout: up to 255)."""
    assert_unmasked(impl, "mask_ips", text)


@pytest.mark.strict
@pytest.mark.component("mask_ips")
@pytest.mark.parametrize("text", ["version 1.2.3.4.5", "10.0.0.1234", "pi is 3.14159"])
def test_ip_look_alikes_are_not_masked(impl, text):
    """Dotted runs of five numbers, a fourth number of four digits and decimals are not addresses."""
    assert_unmasked(impl, "mask_ips", text)


# --------------------------------------------------------------------------------------------- properties

ADDRESSES = {
    "mask_emails": st.from_regex(r"\A[a-z][a-z0-9._+-]{0,10}[a-z0-9]@[a-z][a-z0-9-]{0,8}[a-z]\.(com|org|edu|io)\Z"),
    "mask_phone_numbers": st.sampled_from(US_FORMATS),
    "mask_ips": st.tuples(*[st.integers(0, 255)] * 4).map(lambda octets: ".".join(map(str, octets))),
}


@pytest.mark.parametrize("function", [pytest.param(f, marks=pytest.mark.component(f)) for f in MASKS])
def test_masking_properties(impl, function):
    """For any address between any words: masked once, count 1, the words unchanged; masking again is a no-op."""

    @PROPERTY
    @given(before=WORDS, address=ADDRESSES[function], after=WORDS)
    def check(before, address, after):
        text = f"{before} {address} {after}"
        assert_masks(impl, function, text, f"{before} {MASKS[function]} {after}", 1)
        assert_unmasked(impl, function, f"{before} {MASKS[function]} {after}")

    check()
