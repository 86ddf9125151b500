"""GS1 check digits, GTIN normalisation and SSCC-18 building and validation."""

import biip
import pytest
from hypothesis import given
from hypothesis import strategies as st

from codegen.errors import InvalidGtin, InvalidSscc
from codegen.gtin import check_digit, has_valid_check_digit, make_sscc, normalize_gtin, validate_sscc

# Published GS1 examples and real product codes, with their check digits.
KNOWN = [
    ("9638507", 4),  # GTIN-8 96385074
    ("03600029145", 2),  # UPC-A 036000291452
    ("629104150021", 3),  # GTIN-13 6291041500213
    ("0061414112345", 2),  # GTIN-14 00614141123452
    ("10614141234567890", 8),  # SSCC 106141412345678908
]

digits = st.text(alphabet="0123456789", min_size=1, max_size=17)


class TestCheckDigit:
    """The GS1 mod-10 check digit."""

    @pytest.mark.parametrize(("payload", "expected"), KNOWN)
    def test_known_check_digits(self, payload: str, expected: int) -> None:
        """Known GS1 keys get their published check digit."""
        assert check_digit(payload) == expected
        assert has_valid_check_digit(payload + str(expected))

    @given(digits, st.data())
    def test_any_single_digit_error_is_detected(self, payload: str, data: st.DataObject) -> None:
        """Changing any one digit of a key makes its check digit wrong (what mod 10 with 3/1 guarantees)."""
        key = payload + str(check_digit(payload))
        position = data.draw(st.integers(0, len(key) - 1))
        replacement = data.draw(st.sampled_from([d for d in "0123456789" if d != key[position]]))
        assert not has_valid_check_digit(key[:position] + replacement + key[position + 1 :])

    def test_non_ascii_digits_are_not_digits(self) -> None:
        """Arabic-Indic digits and superscripts pass str.isdigit but are not GS1 digits."""
        assert not has_valid_check_digit("٣٣")
        with pytest.raises(ValueError, match="ASCII digits"):
            check_digit("²")


class TestNormalizeGtin:
    """GTIN-8/12/13/14 in, GTIN-14 out."""

    @pytest.mark.parametrize(
        ("raw", "gtin14"),
        [
            ("96385074", "00000096385074"),
            ("036000291452", "00036000291452"),
            ("6291041500213", "06291041500213"),
            ("00614141123452", "00614141123452"),
            ("10614141123459", "10614141123459"),
        ],
    )
    def test_each_length_pads_to_14(self, raw: str, gtin14: str) -> None:
        """Every GTIN length normalises to the same 14-digit form biip reports."""
        assert normalize_gtin(raw) == gtin14
        assert biip.parse(raw).gtin.as_gtin_14() == gtin14

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("6291041500214", "check digit"),
            ("629104150021", "check digit"),  # 12 digits, wrong as a UPC-A
            ("1234567", "8, 12, 13 or 14"),
            ("123456789012345", "8, 12, 13 or 14"),
            ("", "digits only"),
            ("62910415OO213", "digits only"),
            (" 6291041500213", "digits only"),
            ("٦٢٩١٠٤١٥٠٠٢١٣", "digits only"),
        ],
    )
    def test_bad_gtins_are_refused_naming_the_field(self, raw: str, reason: str) -> None:
        """A bad GTIN raises InvalidGtin with field `gtin` and a reason."""
        with pytest.raises(InvalidGtin, match=reason) as caught:
            normalize_gtin(raw)
        assert caught.value.field == "gtin"
        assert caught.value.value == raw

    @given(st.sampled_from([7, 11, 12, 13]), st.data())
    def test_any_valid_gtin_normalises(self, payload_length: int, data: st.DataObject) -> None:
        """Any payload with its check digit normalises to 14 digits ending with the original."""
        payload = data.draw(st.text(alphabet="0123456789", min_size=payload_length, max_size=payload_length))
        raw = payload + str(check_digit(payload))
        assert normalize_gtin(raw) == raw.zfill(14)


class TestSscc:
    """SSCC-18 for cases and pallets."""

    def test_make_sscc_matches_the_gs1_example(self) -> None:
        """Extension 1, prefix 0614141, reference 234567890 gives the GS1 example SSCC."""
        sscc = make_sscc(1, "0614141", "234567890")
        assert sscc == "106141412345678908"
        assert biip.parse(sscc).sscc.value == sscc

    def test_validate_accepts_built_ssccs(self) -> None:
        """What make_sscc builds, validate_sscc accepts unchanged."""
        for prefix in ("1234", "0614141", "123456789012"):
            sscc = make_sscc(0, prefix, "7" * (16 - len(prefix)))
            assert validate_sscc(sscc) == sscc

    @pytest.mark.parametrize(
        ("args", "field"),
        [
            ((10, "0614141", "234567890"), "extension_digit"),
            ((-1, "0614141", "234567890"), "extension_digit"),
            ((1, "061", "2345678901234"), "gs1_company_prefix"),
            ((1, "06141411234567", "12"), "gs1_company_prefix"),
            ((1, "0614141", "23456789"), "serial_reference"),
            ((1, "0614141", "23456789A"), "serial_reference"),
        ],
    )
    def test_make_sscc_refuses_bad_parts(self, args: tuple[int, str, str], field: str) -> None:
        """Each bad part is named in the error's field."""
        with pytest.raises(InvalidSscc) as caught:
            make_sscc(*args)
        assert caught.value.field == field

    @pytest.mark.parametrize(
        "raw", ["106141412345678907", "10614141234567890", "1061414123456789080", "x" * 18]
    )
    def test_validate_refuses_bad_ssccs(self, raw: str) -> None:
        """Wrong check digit, length or characters raise InvalidSscc."""
        with pytest.raises(InvalidSscc):
            validate_sscc(raw)
