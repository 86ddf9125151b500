"""GS1 identifiers: check digits, GTIN normalisation to GTIN-14, and SSCC-18 for cases and pallets."""

from codegen.errors import InvalidGtin, InvalidSscc

_GTIN_LENGTHS = (8, 12, 13, 14)
_SSCC_LENGTH = 18
# GS1 company prefixes are 4 to 12 digits long (GS1 General Specifications, section 1.4.4).
_MIN_COMPANY_PREFIX = 4
_MAX_COMPANY_PREFIX = 12


def _is_digits(value: str) -> bool:
    # str.isdigit alone accepts non-ASCII digits such as "٣" or "²".
    return value.isascii() and value.isdigit()


def check_digit(payload: str) -> int:
    """The GS1 mod-10 check digit for `payload` (all digits of the key except the check digit).

    Weights alternate 3, 1, 3, ... starting from the rightmost payload digit, which is the same rule for
    GTIN-8/12/13/14, SSCC and GLN.
    """
    if not payload or not _is_digits(payload):
        raise ValueError("check_digit needs a non-empty string of ASCII digits")
    # Slices take every other digit from the right and sum() adds their ASCII codes (48 is "0"):
    # no Python-level loop, as this runs on every scan.
    tripled = payload[::-2].encode("ascii")
    single = payload[-2::-2].encode("ascii")
    total = 3 * (sum(tripled) - 48 * len(tripled)) + sum(single) - 48 * len(single)
    return -total % 10


def has_valid_check_digit(value: str) -> bool:
    """True when `value` is at least two ASCII digits and its last digit is the GS1 check digit."""
    if len(value) < 2 or not _is_digits(value):  # noqa: PLR2004 - a payload digit and a check digit
        return False
    return check_digit(value[:-1]) == int(value[-1])


def normalize_gtin(raw: str) -> str:
    """The GTIN-14 form (left-padded with zeros) of a GTIN-8, -12, -13 or -14; raises InvalidGtin."""
    if not _is_digits(raw):
        raise InvalidGtin(raw, "a GTIN is digits only")
    if len(raw) not in _GTIN_LENGTHS:
        raise InvalidGtin(raw, "a GTIN has 8, 12, 13 or 14 digits")
    if not has_valid_check_digit(raw):
        raise InvalidGtin(raw, "wrong check digit")
    return raw.zfill(14)


def make_sscc(extension_digit: int, company_prefix: str, serial_reference: str) -> str:
    """An SSCC-18: extension digit, GS1 company prefix, serial reference, check digit.

    The company prefix and the serial reference together are 16 digits, so the serial reference is
    `16 - len(company_prefix)` digits (zero-padded by the caller: leading zeros are significant).
    """
    if not 0 <= extension_digit <= 9:  # noqa: PLR2004 - a single decimal digit
        raise InvalidSscc(str(extension_digit), "the extension digit is 0-9", field="extension_digit")
    if not _is_digits(company_prefix) or not (
        _MIN_COMPANY_PREFIX <= len(company_prefix) <= _MAX_COMPANY_PREFIX
    ):
        raise InvalidSscc(company_prefix, "a GS1 company prefix is 4-12 digits", field="gs1_company_prefix")
    if not _is_digits(serial_reference) or len(company_prefix) + len(serial_reference) != 16:  # noqa: PLR2004
        raise InvalidSscc(
            serial_reference,
            f"the serial reference must be {16 - len(company_prefix)} digits for this company prefix",
            field="serial_reference",
        )
    payload = f"{extension_digit}{company_prefix}{serial_reference}"
    return payload + str(check_digit(payload))


def validate_sscc(raw: str) -> str:
    """`raw` if it is an SSCC-18 (18 ASCII digits with a valid check digit); raises InvalidSscc."""
    if not _is_digits(raw) or len(raw) != _SSCC_LENGTH:
        raise InvalidSscc(raw, "an SSCC is 18 digits")
    if not has_valid_check_digit(raw):
        raise InvalidSscc(raw, "wrong check digit")
    return raw
