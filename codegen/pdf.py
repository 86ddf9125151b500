"""Printable A4 label sheets for small runs: a grid of vector QR codes, each with its serial under it."""

from collections.abc import Sequence
from typing import Final

from fpdf import FPDF

from codegen.codeformat import parse
from codegen.errors import InvalidInput, InvalidRange
from codegen.qr import QUIET_ZONE, make_qr

# fpdf2 builds the whole document in memory: big runs go out as CSV or image zips instead.
MAX_LABELS: Final = 2000
PAGE_WIDTH_MM: Final = 210.0
PAGE_HEIGHT_MM: Final = 297.0
CAPTION_MM: Final = 4.0
CAPTION_POINTS: Final = 7.0
_MAX_GRID: Final = 20


def label_sheet_pdf(
    urls: Sequence[str], *, rows: int = 8, columns: int = 5, margin_mm: float = 10.0
) -> bytes:
    """A PDF of A4 pages with `rows` x `columns` labels: the QR code of each URL and its serial.

    QR modules are drawn as filled vector rectangles (one per horizontal run of dark modules), so the
    print stays sharp at any printer resolution. Raises MalformedCode for a URL that is not a code.
    """
    if not urls or len(urls) > MAX_LABELS:
        raise InvalidRange(0, len(urls), f"a label sheet holds 1..{MAX_LABELS} codes", field="urls")
    if not (1 <= rows <= _MAX_GRID and 1 <= columns <= _MAX_GRID):
        raise InvalidInput("grid", f"rows and columns are 1..{_MAX_GRID}")
    if not 0 <= margin_mm <= 40:  # noqa: PLR2004 - leaves at least 130 mm of the page
        raise InvalidInput("margin_mm", "the margin is 0..40 mm")
    cell_width = (PAGE_WIDTH_MM - 2 * margin_mm) / columns
    cell_height = (PAGE_HEIGHT_MM - 2 * margin_mm) / rows
    side = min(cell_width, cell_height - CAPTION_MM)

    pdf = FPDF(unit="mm", format="A4")
    pdf.set_auto_page_break(auto=False)
    pdf.set_font("Helvetica", size=CAPTION_POINTS)
    pdf.set_fill_color(0, 0, 0)
    per_page = rows * columns
    for number, url in enumerate(urls):
        serial = parse(url).serial
        if number % per_page == 0:
            pdf.add_page()
        row, column = divmod(number % per_page, columns)
        left = margin_mm + column * cell_width + (cell_width - side) / 2
        top = margin_mm + row * cell_height
        _draw_qr(pdf, url, left, top, side)
        pdf.set_xy(margin_mm + column * cell_width, top + side)
        pdf.cell(cell_width, CAPTION_MM, text=serial, align="C")
    return bytes(pdf.output())


def _draw_qr(pdf: FPDF, url: str, left: float, top: float, side: float) -> None:
    matrix = make_qr(url).matrix
    module = side / (len(matrix) + 2 * QUIET_ZONE)
    for y, line in enumerate(matrix):
        x = 0
        while x < len(line):
            if not line[x]:
                x += 1
                continue
            start = x
            while x < len(line) and line[x]:
                x += 1
            pdf.rect(
                left + (QUIET_ZONE + start) * module,
                top + (QUIET_ZONE + y) * module,
                (x - start) * module,
                module,
                style="F",
            )
