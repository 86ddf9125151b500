"""Issuing, parsing and verifying codes: authenticity, binding, uniqueness and tolerant parsing."""

import base64
import contextlib
import itertools
import string

import biip
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codegen import codeformat as cf
from codegen import keys
from codegen.errors import (
    CodegenError,
    InvalidBrandCode,
    InvalidCodeTarget,
    InvalidKey,
    InvalidRange,
    MalformedCode,
)
from codegen.gtin import check_digit

DOMAIN = "qr.brand-example.com"  # 20 characters, the longest scan domain the QR size promise covers
GTIN = "00614141123452"
OTHER_GTIN = "06291041500213"
BRAND = "ACME"
KEY = cf.CodeKey(3, bytes(range(32)))
OTHER_KEY = cf.CodeKey(3, bytes(range(1, 33)))

indices = st.integers(0, cf.INDEX_LIMIT - 1)
key_ids = st.integers(0, cf.KEY_SLOTS - 1)
mac_keys = st.binary(min_size=32, max_size=32)
brand_codes = st.text(alphabet=cf.ALPHABET, min_size=4, max_size=8)
gtins = st.text(alphabet=string.digits, min_size=13, max_size=13).map(lambda p: p + str(check_digit(p)))


def gs1_url(index: int, *, key: cf.CodeKey = KEY, gtin: str = GTIN) -> str:
    serial = cf.issue_serial(key, gtin=gtin, brand_code=None, index=index)
    return cf.code_url(DOMAIN, gtin=gtin, brand_code=None, serial=serial)


def short_url(index: int, *, key: cf.CodeKey = KEY, brand: str = BRAND) -> str:
    serial = cf.issue_serial(key, gtin=None, brand_code=brand, index=index)
    return cf.code_url(DOMAIN, gtin=None, brand_code=brand, serial=serial)


def outcome(scanned: str, key: cf.CodeKey = KEY) -> int | None:
    """The verified index, or None for a code that is malformed or not genuine."""
    try:
        return cf.verify(cf.parse(scanned), key)
    except MalformedCode:
        return None


class TestIssueAndVerify:
    """Every issued code verifies to its own index."""

    @given(key_ids, mac_keys, indices, gtins)
    def test_gs1_codes_verify(self, key_id: int, mac_key: bytes, index: int, gtin: str) -> None:
        """A GS1 code verifies under its key to its index, and says which key slot it uses."""
        key = cf.CodeKey(key_id, mac_key)
        parsed = cf.parse(gs1_url(index, key=key, gtin=gtin))
        assert parsed.form == "gs1"
        assert parsed.gtin == gtin
        assert parsed.key_id == key_id
        assert cf.verify(parsed, key) == index

    @given(key_ids, mac_keys, indices, brand_codes)
    def test_short_codes_verify(self, key_id: int, mac_key: bytes, index: int, brand: str) -> None:
        """A short-form code verifies under its key to its index."""
        key = cf.CodeKey(key_id, mac_key)
        parsed = cf.parse(short_url(index, key=key, brand=brand))
        assert (parsed.form, parsed.brand_code, parsed.gtin) == ("short", brand, None)
        assert cf.verify(parsed, key) == index

    def test_url_shapes(self) -> None:
        """The two URL forms: lowercase scheme and host, a 20-character uppercase base32 serial."""
        url = gs1_url(0)
        serial = url.rsplit("/", 1)[1]
        assert url == f"https://{DOMAIN}/01/{GTIN}/21/{serial}"
        assert len(serial) == cf.SERIAL_LENGTH
        assert set(serial) <= set(cf.ALPHABET)
        assert short_url(0).startswith(f"https://{DOMAIN}/C/{BRAND}/")

    def test_short_gtins_are_normalised(self) -> None:
        """Issuing with a GTIN-12 gives the same code as with its GTIN-14."""
        assert cf.issue_serial(KEY, gtin="614141123452", brand_code=None, index=5) == cf.issue_serial(
            KEY, gtin=GTIN, brand_code=None, index=5
        )

    @pytest.mark.parametrize(("start", "stop", "chunk"), [(0, 1, 7), (0, 37, 7), (5, 6, 2), (10, 75, 16)])
    def test_bulk_equals_one_by_one(self, start: int, stop: int, chunk: int) -> None:
        """iter_codes gives exactly issue_serial and code_url for each index, in order, in chunks."""
        chunks = list(
            cf.iter_codes(
                KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=start, stop=stop, chunk=chunk
            )
        )
        assert all(len(c) <= chunk for c in chunks)
        flat = list(itertools.chain.from_iterable(chunks))
        assert [index for index, _, _ in flat] == list(range(start, stop))
        for index, serial, url in flat:
            assert serial == cf.issue_serial(KEY, gtin=GTIN, brand_code=None, index=index)
            assert url == gs1_url(index)

    def test_bulk_at_the_top_of_the_index_space(self) -> None:
        """The last indices of a key's space issue and verify (an odd count needs padding internally)."""
        top = cf.INDEX_LIMIT
        codes = next(
            cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=None, brand_code=BRAND, start=top - 3, stop=top)
        )
        assert [cf.verify(cf.parse(url), KEY) for _, _, url in codes] == [top - 3, top - 2, top - 1]

    def test_empty_range_yields_nothing(self) -> None:
        """start == stop is an empty export, not an error."""
        assert list(cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=9, stop=9)) == []

    @pytest.mark.parametrize(("start", "stop"), [(-1, 5), (5, 4), (0, cf.INDEX_LIMIT + 1)])
    def test_bad_ranges_are_refused(self, start: int, stop: int) -> None:
        """Ranges outside 0..2^32 or backwards raise InvalidRange."""
        with pytest.raises(InvalidRange):
            next(cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=start, stop=stop))

    def test_bad_targets_are_refused(self) -> None:
        """Exactly one of GTIN and brand code; the brand code in the serial alphabet."""
        with pytest.raises(InvalidCodeTarget):
            cf.issue_serial(KEY, gtin=GTIN, brand_code=BRAND, index=0)
        with pytest.raises(InvalidCodeTarget):
            cf.issue_serial(KEY, gtin=None, brand_code=None, index=0)
        for bad in ("ACM", "ACMEACMEA", "acme", "AC1E"):
            with pytest.raises(InvalidBrandCode):
                cf.issue_serial(KEY, gtin=None, brand_code=bad, index=0)
        with pytest.raises(InvalidRange):
            cf.issue_serial(KEY, gtin=GTIN, brand_code=None, index=cf.INDEX_LIMIT)

    def test_bad_scan_domains_are_refused(self) -> None:
        """A scan domain is a plain host name (an uppercase one is lowered)."""
        serial = cf.issue_serial(KEY, gtin=GTIN, brand_code=None, index=0)
        assert cf.code_url("QR.Example.COM", gtin=GTIN, brand_code=None, serial=serial).startswith(
            "https://qr.example.com/"
        )
        for bad in ("", "a/b", "-x.com", "x..com", "exämple.com", "x.com/", "x.com?a"):
            with pytest.raises(CodegenError) as caught:
                cf.code_url(bad, gtin=GTIN, brand_code=None, serial=serial)
            assert caught.value.field == "scan_domain"

    def test_keys_are_checked(self) -> None:
        """Key slots are 0..15 and code keys 32 bytes."""
        with pytest.raises(CodegenError):
            cf.CodeKey(16, bytes(32))
        with pytest.raises(CodegenError):
            cf.CodeKey(0, bytes(31))


class TestForgery:
    """Mutated, moved or foreign codes never verify."""

    PATH_CHARACTERS = string.ascii_uppercase + string.digits + "/-._~%?#&=+ "

    @pytest.mark.parametrize("make", [gs1_url, short_url])
    @pytest.mark.parametrize("index", [0, 1, 4_000_000_000])
    def test_every_single_character_change_of_the_path_fails(self, make: object, index: int) -> None:
        """Replacing any one path character (case aside) gives a malformed or a non-verifying code.

        The host is not covered: parse leaves the scan domain to the caller.
        """
        assert callable(make)
        url = make(index)
        assert outcome(url) == index
        path_start = url.index("/", len("https://"))
        for position in range(path_start, len(url)):
            for char in self.PATH_CHARACTERS:
                if char == url[position].upper():
                    continue
                mutated = url[:position] + char + url[position + 1 :]
                if mutated.rstrip() == url or mutated.rstrip("?#&=") == url:
                    continue  # a trailing blank, empty query or fragment leaves the same code
                assert outcome(mutated) is None, mutated

    @pytest.mark.parametrize("make", [gs1_url, short_url])
    def test_truncation_and_extension_fail(self, make: object) -> None:
        """Cutting the URL short or adding characters to the serial never verifies."""
        assert callable(make)
        url = make(123_456)
        for length in range(len(url)):
            assert outcome(url[:length]) is None
        for extra in ("A", "7", "AA", "/A", "0"):
            assert outcome(url + extra) is None

    def test_a_serial_does_not_move_to_another_gtin(self) -> None:
        """A genuine serial of GTIN A, printed with GTIN B, does not verify."""
        serial = cf.issue_serial(KEY, gtin=GTIN, brand_code=None, index=42)
        moved = cf.code_url(DOMAIN, gtin=OTHER_GTIN, brand_code=None, serial=serial)
        assert outcome(moved) is None
        as_short = cf.code_url(DOMAIN, gtin=None, brand_code=BRAND, serial=serial)
        assert outcome(as_short) is None

    def test_a_serial_does_not_move_to_another_brand(self) -> None:
        """A short-form serial of brand ACME does not verify as brand ACMF, nor under a GTIN."""
        serial = cf.issue_serial(KEY, gtin=None, brand_code=BRAND, index=42)
        assert outcome(cf.code_url(DOMAIN, gtin=None, brand_code="ACMF", serial=serial)) is None
        assert outcome(cf.code_url(DOMAIN, gtin=GTIN, brand_code=None, serial=serial)) is None

    def test_wrong_key_fails(self) -> None:
        """Another brand's key (same slot) or this key's material in another slot does not verify."""
        url = gs1_url(42)
        assert outcome(url, OTHER_KEY) is None
        assert outcome(url, cf.CodeKey(4, bytes(range(32)))) is None

    def test_key_id_comes_from_the_serial(self) -> None:
        """A ParsedCode claiming another key slot than its serial's first character does not verify."""
        genuine = cf.parse(gs1_url(42))
        assert genuine.key_id == KEY.key_id
        for key_id in range(cf.KEY_SLOTS):
            other_key = cf.CodeKey(key_id, bytes(range(32)))
            claimed = cf.ParsedCode(
                form="gs1", gtin=GTIN, brand_code=None, serial=genuine.serial, key_id=key_id
            )
            assert cf.verify(claimed, other_key) == (42 if key_id == KEY.key_id else None)

    @given(st.text(alphabet=cf.ALPHABET, min_size=20, max_size=20))
    def test_random_serials_do_not_verify(self, serial: str) -> None:
        """A made-up serial verifies only by a 2^-64 chance: never in a test run."""
        url = cf.code_url(DOMAIN, gtin=GTIN, brand_code=None, serial=serial)
        assert cf.verify(cf.parse(url), cf.CodeKey(cf.parse(url).key_id, bytes(range(32)))) is None

    def test_hand_built_parsed_codes_fail_closed(self) -> None:
        """verify returns None, not an exception, for a ParsedCode naming no valid product."""
        good = cf.parse(gs1_url(1))
        for bad in (
            cf.ParsedCode(form="gs1", gtin="123", brand_code=None, serial=good.serial, key_id=3),
            cf.ParsedCode(form="gs1", gtin=None, brand_code=None, serial=good.serial, key_id=3),
            cf.ParsedCode(form="gs1", gtin=GTIN, brand_code=None, serial=good.serial.lower(), key_id=3),
            cf.ParsedCode(form="short", gtin=GTIN, brand_code=None, serial=good.serial, key_id=3),
        ):
            assert cf.verify(bad, KEY) is None


class TestUniqueness:
    """Serials never repeat and do not reveal the index."""

    def test_two_batches_never_collide(self) -> None:
        """Two index ranges of one product give disjoint serials."""
        first = {
            s
            for c in cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=0, stop=20_000)
            for _, s, _ in c
        }
        second = {
            s
            for c in cf.iter_codes(
                KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=20_000, stop=40_000
            )
            for _, s, _ in c
        }
        assert len(first) == len(second) == 20_000
        assert first.isdisjoint(second)

    def test_two_gtins_never_collide(self) -> None:
        """The same indices under two GTINs give disjoint serials (and so disjoint URLs)."""
        serials = [
            {
                s
                for c in cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=g, brand_code=None, start=0, stop=20_000)
                for _, s, _ in c
            }
            for g in (GTIN, OTHER_GTIN)
        ]
        assert serials[0].isdisjoint(serials[1])

    def test_a_million_codes_are_unique(self) -> None:
        """One million consecutive codes of a batch are all different."""
        seen = set()
        for chunk in cf.iter_codes(
            KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=0, stop=1_000_000
        ):
            seen.update(serial for _, serial, _ in chunk)
        assert len(seen) == 1_000_000

    def test_consecutive_serials_look_unrelated(self) -> None:
        """The hidden index of consecutive items differs in about half of its 32 bits."""
        codes = next(
            cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=0, stop=2000, chunk=2000)
        )
        hidden = [(int(s.translate(cf._TO_BASE32HEX), 32) >> 64) & 0xFFFFFFFF for _, s, _ in codes]
        distances = [(a ^ b).bit_count() for a, b in itertools.pairwise(hidden)]
        assert 15 < sum(distances) / len(distances) < 17
        assert sorted(hidden) != hidden


class TestParse:
    """What phones and printers do to a URL is tolerated; anything else is MalformedCode."""

    def test_tolerates_case_slash_query_fragment_and_blanks(self) -> None:
        """The same code comes back from each variant of its URL."""
        url = gs1_url(77)
        path = url[len(f"https://{DOMAIN}") :]
        variants = [
            url,
            url.upper(),
            url.lower(),
            "HTTPS://QR.BRAND-EXAMPLE.COM" + path,
            url + "/",
            url.lower() + "/",
            url + "?utm_source=wechat&x=1",
            url + "#top",
            f"  {url}\n",
            "http://" + url[len("https://") :],
            path,
            path.lower(),
        ]
        for variant in variants:
            parsed = cf.parse(variant)
            assert parsed.serial == path.rsplit("/", 1)[1]
            assert cf.verify(parsed, KEY) == 77, variant

    def test_host_is_reported_lowercase(self) -> None:
        """parse does not check the scan domain, but hands it over for the caller to check."""
        assert cf.parse(gs1_url(1).upper()).host == DOMAIN
        assert cf.parse("/C/ACME/" + "A" * 20).host is None

    def test_keeps_the_signature_parameter(self) -> None:
        """AI 8030 (or `s`) is kept, case-sensitive, among other parameters."""
        signature = "Ab-_" * 21 + "xy"
        assert cf.parse(f"{gs1_url(1)}?8030={signature}").signature == signature
        assert cf.parse(f"{gs1_url(1)}?lang=zh&s={signature}").signature == signature
        assert cf.parse(gs1_url(1)).signature is None

    @pytest.mark.parametrize(
        "scanned",
        [
            "",
            "https://",
            f"https://{DOMAIN}",
            f"https://{DOMAIN}/",
            f"https://{DOMAIN}/01/{GTIN}/21/",
            f"https://{DOMAIN}/01/00614141123453/21/{'A' * 20}",  # wrong check digit
            f"https://{DOMAIN}/01/0614141123452/21/{'A' * 20}",  # GTIN-13 in the path
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 19}",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 21}",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 19}1",  # 1 is not in the alphabet
            f"https://{DOMAIN}/01/{GTIN}/10/{'A' * 20}",
            f"https://{DOMAIN}/C/ACM/{'A' * 20}",
            f"https://{DOMAIN}/C/ACMEACMEA/{'A' * 20}",
            f"https://{DOMAIN}/X/ACME/{'A' * 20}",
            f"https://{DOMAIN}/shop/01/{GTIN}/21/{'A' * 20}",
            f"https://{DOMAIN}//01/{GTIN}/21/{'A' * 20}",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 20}//",
            f"ftp://{DOMAIN}/01/{GTIN}/21/{'A' * 20}",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 19}\u017f",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 20}?8030=short",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 20}?8030={'A' * 86}&s={'A' * 86}",
            f"https://{DOMAIN}/01/{GTIN}/21/{'A' * 20}" + "?x=" + "a" * cf.MAX_SCANNED_LENGTH,
        ],
    )
    def test_rejects_what_is_not_a_code(self, scanned: str) -> None:
        """Anything else raises MalformedCode."""
        with pytest.raises(MalformedCode):
            cf.parse(scanned)

    @given(st.text())
    def test_arbitrary_text_raises_only_malformed_code(self, scanned: str) -> None:
        """For any string, parse returns a ParsedCode or raises MalformedCode, nothing else."""
        with contextlib.suppress(MalformedCode):
            cf.parse(scanned)

    url_like = st.lists(
        st.sampled_from(
            [
                "https://",
                "HTTP://",
                DOMAIN,
                "/",
                "01",
                "21",
                "C",
                GTIN,
                "ACME",
                "A" * 20,
                "AAAA",
                "?",
                "&",
                "=",
                "8030",
                "s",
                "#",
                " ",
                "\u017f",  # long s: str.upper() makes it an ASCII S
                "\x00",
                "é",
                "7",
                "%2F",
                "A" * 86,
            ]
        ),
        max_size=14,
    ).map("".join)

    @given(url_like)
    @settings(max_examples=400)
    def test_url_like_text_raises_only_malformed_code(self, scanned: str) -> None:
        """URL-shaped fragments in any order reach deep into parse, and still only MalformedCode comes out."""
        try:
            parsed = cf.parse(scanned)
        except MalformedCode:
            return
        assert cf.verify(parsed, KEY) is None


class TestSignatures:
    """The Ed25519 option: anyone with the public key verifies offline."""

    PRIVATE, PUBLIC = keys.new_ed25519_keypair()

    def test_signed_codes_verify(self) -> None:
        """A signed URL carries AI 8030 and verifies by public key, as URL or ParsedCode."""
        signed = cf.sign_code(self.PRIVATE, gs1_url(5))
        assert signed.startswith(gs1_url(5) + "?8030=")
        assert cf.verify_signature(self.PUBLIC, signed)
        parsed = cf.parse(signed)
        assert cf.verify_signature(self.PUBLIC, parsed)
        assert cf.verify(parsed, KEY) == 5  # the MAC tag still verifies too
        assert cf.verify_signature(self.PUBLIC, cf.sign_code(self.PRIVATE, short_url(5)))

    def test_signature_covers_the_item_not_the_host_case(self) -> None:
        """An uppercased host keeps the signature valid; another serial does not."""
        signed = cf.sign_code(self.PRIVATE, gs1_url(5))
        host_upper = signed.replace(DOMAIN, DOMAIN.upper())
        assert cf.verify_signature(self.PUBLIC, host_upper)
        other = cf.parse(gs1_url(6))
        moved = cf.ParsedCode(
            form="gs1",
            gtin=GTIN,
            brand_code=None,
            serial=other.serial,
            key_id=other.key_id,
            signature=cf.parse(signed).signature,
        )
        assert not cf.verify_signature(self.PUBLIC, moved)

    def test_bad_signatures_fail(self) -> None:
        """Another key, a lowercased URL, an unsigned code or a flipped signature bit fail."""
        signed = cf.sign_code(self.PRIVATE, gs1_url(5))
        _, other_public = keys.new_ed25519_keypair()
        assert not cf.verify_signature(other_public, signed)
        assert not cf.verify_signature(self.PUBLIC, signed.lower())
        assert not cf.verify_signature(self.PUBLIC, gs1_url(5))
        signature = cf.parse(signed).signature
        assert signature is not None
        raw = bytearray(base64.urlsafe_b64decode(signature + "=="))
        raw[10] ^= 1
        flipped = base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode()
        assert not cf.verify_signature(self.PUBLIC, gs1_url(5) + "?8030=" + flipped)

    def test_key_sizes_are_checked(self) -> None:
        """Raw Ed25519 keys are 32 bytes."""
        with pytest.raises(InvalidKey):
            cf.sign_code(b"x" * 31, gs1_url(5))
        with pytest.raises(InvalidKey):
            cf.verify_signature(b"x" * 31, cf.sign_code(self.PRIVATE, gs1_url(5)))

    def test_signing_twice_is_refused(self) -> None:
        """A URL that already has a signature is not signed again."""
        with pytest.raises(MalformedCode):
            cf.sign_code(self.PRIVATE, cf.sign_code(self.PRIVATE, gs1_url(5)))

    def test_signed_urls_are_gs1_digital_links(self) -> None:
        """biip reads AI 01, 21 and 8030 from a signed URL."""
        signed = cf.sign_code(self.PRIVATE, gs1_url(5))
        link = biip.parse(signed).gs1_digital_link_uri
        assert link is not None
        assert [element.ai.ai for element in link.element_strings] == ["01", "21", "8030"]
