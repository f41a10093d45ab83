"""PII scrubber for curation: personal data and secrets in chat text -> typed placeholders.

`scrub(text)` returns the text with each detected span replaced by `<TYPE>` and a count per type.
Pure and standard-library only, so it runs inside the curation loop without I/O.

Overlaps are resolved by order, not by span arithmetic: the detectors run one after another, each
on the output of the previous one, in `PII_TYPES` order. The more specific detector runs first:
- SECRET first: tokens and `password=...` values may contain digit runs, dots or '@' that would
  otherwise be half-eaten as a card, phone, IP or email, leaving the rest of the secret behind.
- EMAIL before the digit detectors: "jo.5551234567@example.com" is one email, not a phone.
- IBAN before CARD: an all-digit IBAN body contains 16-digit runs that pass Luhn one time in ten.
- CARD, IBAN and NATIONAL_ID before PHONE: a card in groups of four contains phone-shaped pieces.
- IP before PHONE: so an address is never read as a dotted phone number.
Placeholders contain no digits, '@', ':' or token prefixes, so no detector matches inside an
earlier placeholder and scrubbing twice changes nothing more.

Speed: curation budgets well under 20 us for a 200-character message, and one regex scan of 200
characters costs CPython's `re` about 2 us whatever the pattern. So each detector sits behind a
gate made of substring tests on a "shape" of the text (digits -> '0', capitals -> 'A', built with
one `bytes.translate`): e.g. every card number contains "0000", every IBAN "AA00". Each gate is a
necessary condition of its regex, so it skips work without changing results.

Precision: checksums (Luhn for cards, ISO 13616 mod-97 for IBANs) and range checks (IPv4 octets,
SSN areas) keep order numbers, prices, dates and version numbers out; number-shaped detectors also
refuse to match a piece of a longer digit sequence, which is what protects a 16-digit number that
fails Luhn from being re-read as a phone number.
"""

from __future__ import annotations

import ipaddress
import re

PII_TYPES: tuple[str, ...] = ("SECRET", "EMAIL", "IBAN", "CARD", "NATIONAL_ID", "IP", "PHONE")
"""Detected types, in the order the detectors run (earlier wins an overlap)."""

Counts = dict[str, int]
_A = re.ASCII  # '\d' and '\w' mean ASCII only: Luhn and mod-97 below do ASCII arithmetic


def _shape_table() -> bytes:
    table = bytearray(b"_" * 256)
    for byte in range(256):
        ch = chr(byte)
        if ch.isascii() and ch.isdigit():
            table[byte] = ord("0")
        elif ch.isascii() and ch.isupper():
            table[byte] = ord("A")
        elif ch in " .-()+:":
            table[byte] = byte
    return bytes(table)


_SHAPE = _shape_table()


def _count(counts: Counts, kind: str, n: int = 1) -> None:
    if n:
        counts[kind] = counts.get(kind, 0) + n


# --- SECRET ---------------------------------------------------------------------------------------

_SECRET_TOKEN = re.compile(
    r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*"  # JWT: header and payload both start '{"'
    r"|\b[sr]k-[\w-]{20,}"  # OpenAI / Anthropic style (sk-..., sk-proj-..., sk-ant-...)
    r"|\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|\bgh[pousr]_[A-Za-z0-9]{30,}"  # GitHub classic tokens
    r"|\bgithub_pat_\w{30,}"  # GitHub fine-grained tokens
    r"|\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"  # AWS access key ids
    r"|\bxox[baprs]-[A-Za-z0-9-]{10,}",  # Slack
    _A,
)

# 16+ characters keeps "the bearer of bad news" out; real bearer tokens are far longer.
_BEARER = re.compile(r"(\bbearer\s+)([A-Za-z0-9\-._~+/]{16,}=*)", re.IGNORECASE | _A)

# The key name is matched from its secret-ish word on and kept; only the value is replaced.
# "AWS_SECRET_ACCESS_KEY=..." matches from "SECRET", "my-api-key: ..." from "api".
_SECRET_KEY = (
    r"(?:api[_-]?key|apikey|secret|password|passwd|pwd|private[_-]?key|access[_-]?key"
    r"|(?:access|auth|refresh|api)[_-]?token)(?:[_-][A-Za-z0-9]+)*"
)
_SECRET_ASSIGNMENT = re.compile(
    rf"({_SECRET_KEY}[\"']?\s*([:=])\s*)"  # key name and separator (a JSON key's quote too)
    r"""(?:"([^"\n]+)"|'([^'\n]+)'|([^\s"',;]{4,}))""",  # value: quoted, or 4+ characters
    re.IGNORECASE | _A,
)
_KEY_HINTS = ("key", "secret", "passw", "pwd", "token")
_KEY_TAIL = re.compile(r"[a-z0-9_-]*[\"']?\s*[:=]", _A)
_PLACEHOLDERS = frozenset(f"<{t}>" for t in PII_TYPES)


def _has_assignment(lowered: str) -> bool:
    """Is some key-ish word directly followed by ':' or '='? Probing each hint occurrence with an
    anchored match costs far less than scanning the whole text with the assignment regex."""
    for hint in _KEY_HINTS:
        i = lowered.find(hint)
        while i >= 0:
            if _KEY_TAIL.match(lowered, i + len(hint)):
                return True
            i = lowered.find(hint, i + 1)
    return False


def _replace_assignment(m: re.Match[str], counts: Counts) -> str:
    quoted = m.group(3) or m.group(4)
    value = quoted or m.group(5)
    if value in _PLACEHOLDERS:
        return m.group(0)
    # In prose "Password: forgotten" is not a value. Pasted config uses '=' or quotes; after ':'
    # an unquoted value must look like a secret (a digit or a symbol in it).
    if not quoted and m.group(2) == ":" and value.isalpha():
        return m.group(0)
    _count(counts, "SECRET")
    quote = m.group(0)[-1] if quoted else ""
    return f"{m.group(1)}{quote}<SECRET>{quote}"


def _scrub_secrets(text: str, shape: bytes, counts: Counts) -> str:
    # '_' covers sk_, rk_, gh?_ and github_pat_; an `or` chain beats any() on the hot path.
    has_token_prefix = "_" in text or "k-" in text or "eyJ" in text or "xox" in text
    if has_token_prefix or "AKIA" in text or "ASIA" in text:
        text, n = _SECRET_TOKEN.subn("<SECRET>", text)
        _count(counts, "SECRET", n)
    lowered = text.lower()
    if "bearer" in lowered:
        text, n = _BEARER.subn(r"\1<SECRET>", text)
        _count(counts, "SECRET", n)
        lowered = text.lower()
    if ("=" in text or ":" in text) and _has_assignment(lowered):
        text = _SECRET_ASSIGNMENT.sub(lambda m: _replace_assignment(m, counts), text)
    return text


# --- EMAIL ----------------------------------------------------------------------------------------

_EMAIL = re.compile(
    r"(?<![\w.%+-])[A-Za-z0-9][\w.%+-]{0,63}"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}\b",
    _A,
)


def _scrub_emails(text: str, shape: bytes, counts: Counts) -> str:
    if "@" not in text:
        return text
    text, n = _EMAIL.subn("<EMAIL>", text)
    _count(counts, "EMAIL", n)
    return text


# --- IBAN -----------------------------------------------------------------------------------------

# Official lengths (ISO 13616 registry) for the countries we expect; they also let us stop a match
# that ran into a following code-like word. Other countries fall back to the 15-34 range.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30,
    "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22,
    "MK": 19, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29,
    "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "TR": 26, "UA": 29,
}  # fmt: skip
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b", _A)


def iban_checksum_ok(iban: str) -> bool:
    """ISO 13616 mod-97: move the first four characters to the end, letters -> 10..35, and the
    number must leave remainder 1. Catches every single-character typo, so a random code of the
    right shape passes only about 1 in 97 times."""
    rearranged = iban[4:] + iban[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def _replace_iban(m: re.Match[str], counts: Counts) -> str:
    raw = m.group(0)
    compact = raw.replace(" ", "")
    length = _IBAN_LENGTHS.get(raw[:2], len(compact))
    if not 15 <= length <= min(len(compact), 34) or not iban_checksum_ok(compact[:length]):
        return raw
    end, seen = 0, 0
    while seen < length:  # position in `raw` just after the length-th IBAN character
        seen += raw[end] != " "
        end += 1
    _count(counts, "IBAN")
    return "<IBAN>" + raw[end:]


def _scrub_ibans(text: str, shape: bytes, counts: Counts) -> str:
    if b"AA00" not in shape:
        return text
    return _IBAN.sub(lambda m: _replace_iban(m, counts), text)


# --- CARD -----------------------------------------------------------------------------------------

# Number patterns start with a plain digit and check the character before it in a lookbehind
# placed after that digit: a pattern that starts with a character class lets `re` skip ahead to
# the next digit, one that starts with a lookbehind is tried at every position (3x slower).
_CARD = re.compile(
    r"\d(?<![\w.,+-]\d)\d{3}(?:"
    r"\d{9,15}"  # 13-19 digits in a row
    r"|([ -])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{1,3})?"  # 4-4-4-4 (Visa, Mastercard, ...), 13-19
    r"|([ -])\d{6}\2\d{4,5}"  # 4-6-5 (Amex) and 4-6-4 (Diners)
    r")(?![\w-]|[.,]\d)",
    _A,
)


def luhn_ok(digits: str) -> bool:
    """Luhn mod-10: every card number carries it, and a random digit string passes only 1 in 10,
    so order, tracking and account numbers of card length are mostly left alone."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _replace_card(m: re.Match[str], counts: Counts) -> str:
    raw = m.group(0)
    candidate = raw
    # A trailing short group may be a following number ("4111 1111 1111 1111 24 hours"): when the
    # whole run fails, retry without its last group while 13+ digits remain.
    while True:
        digits = candidate.replace(" ", "").replace("-", "")
        if len(digits) < 13:
            return raw
        if len(set(digits)) > 1 and luhn_ok(digits):  # "0000 0000 0000 0000" passes Luhn
            break
        cut = max(candidate.rfind(" "), candidate.rfind("-"))
        if cut < 0:
            return raw
        candidate = candidate[:cut]
    _count(counts, "CARD")
    return "<CARD>" + raw[len(candidate) :]


def _scrub_cards(text: str, shape: bytes, counts: Counts) -> str:
    # Each form holds one of these (13 digits in a row, or 4-4-4 / 4-6 groups).
    if b"0000" not in shape or not (
        b"0000 0000 0000" in shape
        or b"0000-0000-0000" in shape
        or b"0000 000000" in shape
        or b"0000-000000" in shape
        or b"0000000000000" in shape
    ):
        return text
    return _CARD.sub(lambda m: _replace_card(m, counts), text)


# --- NATIONAL_ID ----------------------------------------------------------------------------------

# US SSN: area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(
    r"\d(?<![\w-]\d)\d\d(?<!000)(?<!666)(?<!9\d\d)-(?!00)\d\d-(?!0000)\d{4}(?![\w-])", _A
)
# UK National Insurance number; QQ is HMRC's specimen prefix, kept so examples are caught.
_UK_NINO = re.compile(
    r"[A-CEGHJ-TW-Z](?<!\w[A-Z])[A-CEGHJ-NPQR-TW-Z](?<!BG|GB|KN|NK|NT|TN|ZZ)(?<![^Q]Q|Q[^Q])"
    r" ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
    _A,
)


def _scrub_national_ids(text: str, shape: bytes, counts: Counts) -> str:
    # An SSN has this exact shape; an NI number has two capitals before and one after its digits.
    if b"000-00-0000" in shape:
        text, n = _SSN.subn("<NATIONAL_ID>", text)
        _count(counts, "NATIONAL_ID", n)
    if (b"AA00" in shape or b"AA 00" in shape) and (b"00A" in shape or b"00 A" in shape):
        text, n = _UK_NINO.subn("<NATIONAL_ID>", text)
        _count(counts, "NATIONAL_ID", n)
    return text


# --- IP -------------------------------------------------------------------------------------------

_IPV4 = re.compile(r"\d(?<![\w.]\d)\d{0,2}(?:\.\d{1,3}){3}(?!\w|\.\d)", _A)


def _replace_ipv4(m: re.Match[str], counts: Counts) -> str:
    octets = m.group(0).split(".")
    # 0-255 without leading zeros: "256.300.1.1" is not an address, "01.02.03.04" is a date-ish.
    if any(int(o) > 255 or (o[0] == "0" and o != "0") for o in octets):
        return m.group(0)
    _count(counts, "IP")
    return "<IP>"


# A loose candidate; `ipaddress` decides, which keeps times ("10:30:45") and ratios out.
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|\d{1,3}(?:\.\d{1,3}){3})?"
    r"(?![\w:]|\.\d)",
    _A,
)


def _replace_ipv6(m: re.Match[str], counts: Counts) -> str:
    candidate = m.group(0)
    # A digit is required so that C++-ish "add::dec" and a bare "::" stay text.
    if not any(ch.isdigit() for ch in candidate):
        return candidate
    try:
        ipaddress.IPv6Address(candidate)
    except ValueError:
        return candidate
    _count(counts, "IP")
    return "<IP>"


def _scrub_ips(text: str, shape: bytes, counts: Counts) -> str:
    if "::" in text or text.count(":") >= 7:  # every IPv6 form has one or the other
        text = _IPV6.sub(lambda m: _replace_ipv6(m, counts), text)
    if b"0.0" in shape and shape.count(b".0") >= 3:
        text = _IPV4.sub(lambda m: _replace_ipv4(m, counts), text)
    return text


# --- PHONE ----------------------------------------------------------------------------------------

_NOT_AFTER_DIGITS = r"(?<!\d[ .-])"  # refuse to be the tail of a longer digit sequence
_PHONE = re.compile(
    r"(?<![\w+])(?:"
    # International: its length is checked (and trimmed) in _replace_phone.
    r"(\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?\d{1,12}(?:[ .-]\d{1,12}){0,5})(?!\w)"
    # North American (555) 123-4567, 555.123.4567: fixed 3-3-4, so "... 4567 10:30" is fine.
    rf"|(?:{_NOT_AFTER_DIGITS}1[ .-])?\(\d{{3}}\) ?\d{{3}}[ .-]\d{{4}}(?!\w|[.-]\d)"
    rf"|{_NOT_AFTER_DIGITS}(?:1[ .-])?\d{{3}}[ .-]\d{{3}}[ .-]\d{{4}}(?!\w|[.-]\d)"
    # National with trunk prefix 0 (UK, DE, ...): loose groups, so it must not be followed by more.
    rf"|{_NOT_AFTER_DIGITS}0\d{{2,4}}[ .-]?\d{{3,4}}[ .-]?\d{{3,4}}(?!\w|[ .-]\d)"
    r")",
    _A,
)
_DIGIT_GROUP = re.compile(r"\d+", _A)


def _international_end(number: str) -> int | None:
    """End of the longest prefix of whole digit groups holding 8-15 digits (E.164 allows 15;
    fewer than 8 is a score or a delta), or None. Trimming lets "+44 20 7946 0958 2024-03-15"
    lose the phone but keep the date, where rejecting the whole run would leak the phone."""
    digits, end = 0, None
    for group in _DIGIT_GROUP.finditer(number):
        digits += len(group.group())
        if digits > 15:
            break
        if digits >= 8:
            end = group.end()
    return end


def _replace_phone(m: re.Match[str], counts: Counts) -> str:
    raw, end = m.group(0), len(m.group(0))
    if m.group(1):
        end = _international_end(raw)
        if end is None:
            return raw
    _count(counts, "PHONE")
    return "<PHONE>" + raw[end:]


def _scrub_phones(text: str, shape: bytes, counts: Counts) -> str:
    # Each alternative holds one of these: "+digit", "(ddd)", or two groups of 3+ digits with at
    # most one separator between them (nine in a row for the national form without separators).
    if b"000" not in shape and b"+0" not in shape:
        return text
    if not (
        b"+0" in shape
        or b"(000)" in shape
        or b"000 000" in shape
        or b"000-000" in shape
        or b"000.000" in shape
        or b"000000000" in shape
    ):
        return text
    return _PHONE.sub(lambda m: _replace_phone(m, counts), text)


# --- driver ---------------------------------------------------------------------------------------

# (detector, fewest digits a match needs). Most chat messages have a handful of digits at most,
# so this one count skips the number-shaped detectors before any of their gates run.
_DETECTORS = (
    (_scrub_secrets, 0),
    (_scrub_emails, 0),
    (_scrub_ibans, 6),  # an IBAN is 15+ characters and few countries use letters in the body
    (_scrub_cards, 13),
    (_scrub_national_ids, 6),
    (_scrub_ips, 1),  # an IPv6 address needs a digit here (see _replace_ipv6), IPv4 four
    (_scrub_phones, 7),
)


def scrub(text: str) -> tuple[str, dict[str, int]]:
    """Replace every detected PII span with `<TYPE>`; return the new text and counts per type
    (types with no detection are absent). PII-free text comes back byte-identical."""
    counts: Counts = {}
    # The shape of the input gates every detector. Replacements only remove characters (a
    # placeholder's capitals sit between '<' and '>'), so a gate that fails on the input would
    # fail on the text each detector actually sees.
    shape = text.encode("utf-8", "surrogatepass").translate(_SHAPE)
    digits = shape.count(b"0")
    for detector, min_digits in _DETECTORS:
        if digits >= min_digits:
            text = detector(text, shape, counts)
    return text, counts
