"""QR encoding of code URLs (size, mask choice, decodability), image zips and PDF label sheets."""

import io
import itertools
import re
import zipfile
import zlib
from collections.abc import Iterator
from xml.etree import ElementTree as ET

import pytest
import segno
import zxingcpp
from PIL import Image
from segno import consts

from codegen import codeformat as cf
from codegen import keys, pdf, qr
from codegen.errors import InvalidFileName, InvalidInput, InvalidRange, MalformedCode

DOMAIN = "qr.brand-example.com"  # 20 characters
GTIN = "00614141123452"
KEY = cf.CodeKey(9, bytes(range(32)))


def urls(count: int, *, gtin: str | None = GTIN, brand_code: str | None = None) -> list[str]:
    chunks = cf.iter_codes(
        KEY, scan_domain=DOMAIN, gtin=gtin, brand_code=brand_code, start=1000, stop=1000 + count
    )
    return [url for chunk in chunks for _, _, url in chunk]


def decode_png(png: bytes) -> zxingcpp.Barcode:
    found = zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
    assert len(found) == 1
    return found[0]


def naive_penalty(matrix: list[list[int]]) -> int:
    """ISO/IEC 18004 section 7.8.3.1, module by module, as a reference for the fast version."""
    size = len(matrix)
    score = 0
    lines = matrix + [[matrix[y][x] for y in range(size)] for x in range(size)]
    for line in lines:
        run = 1
        for before, after in itertools.pairwise(line):
            if before == after:
                run += 1
                continue
            score += run - 2 if run >= 5 else 0
            run = 1
        score += run - 2 if run >= 5 else 0
        padded = [0] * 4 + line + [0] * 4
        for at in range(len(padded) - 10):
            window = padded[at : at + 11]
            score += 40 * (window == [0, 0, 0, 0, 1, 0, 1, 1, 1, 0, 1]) + 40 * (
                window == [1, 0, 1, 1, 1, 0, 1, 0, 0, 0, 0]
            )
    for y in range(size - 1):
        for x in range(size - 1):
            score += 3 * (matrix[y][x] == matrix[y + 1][x] == matrix[y][x + 1] == matrix[y + 1][x + 1])
    dark = sum(map(sum, matrix))
    return score + 10 * abs(dark * 20 // (size * size) - 10)


class TestEncoding:
    """Two segments keep every code at version 4 or less at error correction M."""

    def test_segments(self) -> None:
        """Byte mode for https://host, alphanumeric for the path, byte for a query."""
        url = urls(1)[0]
        path = url[len(f"https://{DOMAIN}") :]
        assert qr.qr_segments(url) == [
            (f"https://{DOMAIN}", consts.MODE_BYTE),
            (path, consts.MODE_ALPHANUMERIC),
        ]
        assert qr.qr_segments(url + "?8030=abc")[-1] == ("?8030=abc", consts.MODE_BYTE)
        assert qr.qr_segments(url.lower())[1][1] == consts.MODE_BYTE

    @pytest.mark.parametrize(("gtin", "brand_code"), [(GTIN, None), (None, "ABCDEFGH")])
    def test_version_4_at_m_for_a_20_character_domain(self, gtin: str | None, brand_code: str | None) -> None:
        """Both URL forms fit version 4-M; a single byte-mode segment would need version 5."""
        assert len(DOMAIN) == 20
        for url in urls(50, gtin=gtin, brand_code=brand_code):
            code = qr.make_qr(url)
            assert code.error == "M"
            assert code.version <= 4
        assert segno.make_qr(urls(1)[0], error="m", boost_error=False).version == 5

    def test_signed_urls_need_version_8(self) -> None:
        """The documented cost of the Ed25519 option: version 8 at M (so print larger)."""
        private, _ = keys.new_ed25519_keypair()
        for url in urls(5):
            assert qr.make_qr(cf.sign_code(private, url)).version == 8

    def test_png_decodes_to_the_exact_url(self) -> None:
        """An independent reader (zxing-cpp) reads back each URL, version 4, level M."""
        for url in urls(20) + urls(5, gtin=None, brand_code="ACME"):
            barcode = decode_png(qr.render_png(url))
            assert barcode.text == url
            assert barcode.format == zxingcpp.BarcodeFormat.QRCode
            assert int(barcode.extra["Version"]) <= 4
            assert barcode.extra["ECLevel"] == "M"

    def test_svg_is_a_standalone_image(self) -> None:
        """The SVG parses as XML and draws the same modules as the PNG's code."""
        svg = qr.render_svg(urls(1)[0])
        root = ET.fromstring(svg)
        assert root.tag == "{http://www.w3.org/2000/svg}svg"
        assert root.find("{http://www.w3.org/2000/svg}path") is not None


class TestMaskChoice:
    """The fast mask choice equals the ISO rule computed the slow way."""

    def test_fast_penalty_equals_the_reference(self) -> None:
        """For each mask of several codes, the whole-row penalty equals the module-by-module one."""
        for url in urls(6):
            for mask in range(8):
                code = segno.make_qr(qr.qr_segments(url), error="m", boost_error=False, mask=mask)
                matrix = [list(row) for row in code.matrix]
                rows = [int("".join(map(str, row)), 2) for row in matrix]
                assert qr._penalty(rows, len(matrix)) == naive_penalty(matrix)

    def test_make_qr_picks_the_lowest_penalty_mask(self) -> None:
        """make_qr's mask has the lowest reference penalty of the eight segno builds."""
        for url in urls(10):
            penalties = []
            for mask in range(8):
                code = segno.make_qr(qr.qr_segments(url), error="m", boost_error=False, mask=mask)
                penalties.append(naive_penalty([list(row) for row in code.matrix]))
            assert penalties[qr.make_qr(url).mask] == min(penalties)


class TestImageZip:
    """Zips of QR images, rendered in worker processes."""

    @pytest.mark.parametrize("processes", [1, 2])
    def test_png_zip_decodes(self, processes: int) -> None:
        """Each zipped PNG, named after its serial, decodes to its URL, with 1 or 2 processes."""
        given = urls(40)
        out = io.BytesIO()
        items = [(url.rsplit("/", 1)[1], url) for url in given]
        assert qr.write_qr_zip(items, "png", out, processes=processes, batch=7) == 40
        with zipfile.ZipFile(io.BytesIO(out.getvalue())) as archive:
            assert archive.namelist() == [f"{name}.png" for name, _ in items]
            for name, url in items:
                assert decode_png(archive.read(f"{name}.png")).text == url

    def test_svg_zip_to_an_unseekable_stream(self) -> None:
        """The zip streams to a write-only, unseekable sink (as an HTTP body would be)."""

        class Sink(io.RawIOBase):
            def __init__(self) -> None:
                self.data = bytearray()

            def writable(self) -> bool:
                return True

            def write(self, chunk: bytes) -> int:  # type: ignore[override]
                self.data += chunk
                return len(chunk)

        sink = Sink()
        given = urls(10)
        qr.write_qr_zip([(f"code-{n}", url) for n, url in enumerate(given)], "svg", sink, processes=1)
        with zipfile.ZipFile(io.BytesIO(bytes(sink.data))) as archive:
            assert archive.read("code-3.svg") == qr.render_svg(given[3])

    def test_the_zip_leaves_as_its_images_are_rendered(self) -> None:
        """The first chunk comes long before the last image is rendered, and the chunks make one zip."""
        given = urls(200)
        read = 0

        def counted() -> Iterator[tuple[str, str]]:
            nonlocal read
            for n, url in enumerate(given):
                read += 1
                yield f"code-{n}", url

        stream = qr.qr_zip_chunks(counted(), "svg", processes=1, batch=10, chunk_bytes=4096)
        first = next(stream)
        assert read < len(given) / 4
        with zipfile.ZipFile(io.BytesIO(first + b"".join(stream))) as archive:
            assert len(archive.namelist()) == len(given)
            assert archive.read("code-199.svg") == qr.render_svg(given[199])

    @pytest.mark.parametrize("name", ["../evil", "a/b", ".hidden", "", "x" * 101, "spa ce"])
    def test_unsafe_names_are_refused(self, name: str) -> None:
        """Names become file names: no paths, no hidden files, nothing odd."""
        with pytest.raises(InvalidFileName):
            qr.write_qr_zip([(name, urls(1)[0])], "svg", io.BytesIO(), processes=1)


class TestLabelSheet:
    """A4 PDF label sheets."""

    def streams(self, document: bytes) -> str:
        found = re.findall(rb"stream\r?\n(.*?)\r?\nendstream", document, re.DOTALL)
        return "".join(zlib.decompress(stream).decode("latin-1") for stream in found if stream[:1] == b"x")

    def test_pages_captions_and_vector_modules(self) -> None:
        """45 labels at 4 x 5 fill 3 pages; every serial is printed; modules are filled rectangles."""
        given = urls(45)
        document = pdf.label_sheet_pdf(given, rows=4, columns=5)
        assert document.startswith(b"%PDF-")
        assert len(re.findall(rb"/Type /Page\b", document)) == 3
        content = self.streams(document)
        for url in given:
            assert f"({url.rsplit('/', 1)[1]})" in content
        assert content.count(" re f") > 45 * 100

    def test_limits(self) -> None:
        """No labels, too many labels, a silly grid or a foreign URL are refused."""
        with pytest.raises(InvalidRange):
            pdf.label_sheet_pdf([])
        with pytest.raises(InvalidRange):
            pdf.label_sheet_pdf(["x"] * (pdf.MAX_LABELS + 1))
        with pytest.raises(InvalidInput):
            pdf.label_sheet_pdf(urls(1), rows=0)
        with pytest.raises(MalformedCode):
            pdf.label_sheet_pdf(["https://example.com/not-a-code"])
