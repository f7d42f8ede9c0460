"""Masking personal information (A4 §2.4): email addresses, phone numbers, IPv4 addresses.

Each mask is one regular expression applied with ``re.subn``; the patterns refuse to start or end inside a longer
token (a run of digits, a dotted number, a word), which is what keeps years, dates, version strings and invalid
addresses unmasked.
"""

from __future__ import annotations

import re

EMAIL_MASK = "|||EMAIL_ADDRESS|||"
PHONE_MASK = "|||PHONE_NUMBER|||"
IP_MASK = "|||IP_ADDRESS|||"

# local@domain.tld: the local part of RFC 5322's common ("dot-atom") form, a domain of labels and a TLD of letters.
EMAIL = re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
                   r"(?![\w-]|\.[A-Za-z0-9])")

_SEPARATOR = r"[ \t.-]"  # between digit groups: a space, a dot or a hyphen, never a line break
_US = (rf"(?:\+?1{_SEPARATOR}?)?"  # an optional country code, +1 or 1
       rf"(?:\(\d{{3}}\){_SEPARATOR}?|\d{{3}}{_SEPARATOR}?)"  # the area code, bare or in parentheses
       rf"\d{{3}}{_SEPARATOR}?\d{{4}}")
# +<country code> then 2-5 groups of 1-4 digits (a group may be in parentheses): E.164 numbers have at most 15 digits.
_INTERNATIONAL = rf"\+[1-9]\d{{0,2}}(?:{_SEPARATOR}?(?:\(\d{{1,4}}\)|\d{{1,4}})){{2,5}}"
PHONE = re.compile(rf"(?<![\w+.])(?:(?P<us>{_US})|(?P<international>{_INTERNATIONAL}))(?!\w|[.-]\d)")
MIN_INTERNATIONAL_DIGITS, MAX_INTERNATIONAL_DIGITS = 8, 15

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"  # 0-255 without leading zeros
IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")


def mask_emails(text: str) -> tuple[str, int]:
    return EMAIL.subn(EMAIL_MASK, text)


def is_phone_number(match: re.Match) -> bool:
    if match.group("us"):
        return True
    return MIN_INTERNATIONAL_DIGITS <= sum(c.isdigit() for c in match.group()) <= MAX_INTERNATIONAL_DIGITS


def mask_phone_numbers(text: str) -> tuple[str, int]:
    count = 0

    def mask(match: re.Match) -> str:
        nonlocal count
        if not is_phone_number(match):
            return match.group()
        count += 1
        return PHONE_MASK

    return PHONE.sub(mask, text), count


def mask_ips(text: str) -> tuple[str, int]:
    return IPV4.subn(IP_MASK, text)
