"""Everything needed to print a batch: its product, key and parents, loaded once, then codes streamed."""

from __future__ import annotations

import bisect
import enum
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codegen import exports, keyring, pdf, qr
from codegen.batches import PrintedCode, get_batch, printed_codes
from codegen.codeformat import CodeKey
from codegen.errors import ObjectNotFound, StateConflict
from codegen.models import Batch, BatchStatus, Product
from codegen.products import get_product
from service.queries import load_queries

if TYPE_CHECKING:
    from psycopg import AsyncConnection

QUERIES = load_queries("codegen.sql", "codegen.sql")


class Parents:
    """Position -> SSCC of the case holding it, by bisect over the batch's packed ranges."""

    def __init__(self, ranges: list[tuple[int, int, str]]) -> None:
        self._starts = [r[0] for r in ranges]
        self._ranges = ranges

    def __bool__(self) -> bool:
        return bool(self._ranges)

    def __call__(self, position: int) -> str:
        at = bisect.bisect_right(self._starts, position) - 1
        if at >= 0 and position < self._ranges[at][1]:
            return self._ranges[at][2]
        return ""


class BatchPrinting:
    def __init__(
        self,
        batch: Batch,
        product: Product,
        *,
        brand_code: str,
        key: CodeKey,
        signing_key: bytes | None,
        parents: Parents,
    ) -> None:
        self.batch = batch
        self.product = product
        self.brand_code = brand_code
        self.key = key
        self.signing_key = signing_key
        self.parents = parents

    def codes(self, scan_domain: str, start: int, stop: int) -> Iterator[list[PrintedCode]]:
        return printed_codes(
            self.batch,
            self.product,
            brand_code=self.brand_code,
            key=self.key,
            scan_domain=scan_domain,
            start=start,
            stop=stop,
            signing_key=self.signing_key,
        )


async def load_printing(
    conn: AsyncConnection[Any], brand_id: uuid.UUID, batch_id: uuid.UUID, master_keys: Sequence[bytes]
) -> BatchPrinting:
    batch = await get_batch(conn, brand_id, batch_id)
    if batch.status is BatchStatus.VOIDED:
        raise StateConflict("the batch is voided: its codes must not be printed", field="batch_id")
    product = await get_product(conn, brand_id, batch.product_id)
    brand_key = await keyring.get_key(conn, brand_id, batch.key_id)
    cur = await conn.execute(QUERIES["brand_short_code"], {"brand_id": brand_id})
    row = await cur.fetchone()
    if row is None:
        raise ObjectNotFound("brand", brand_id)
    cur = await conn.execute(QUERIES["batch_parents"], {"brand_id": brand_id, "batch_id": batch_id})
    parents = Parents([(int(s), int(e), str(sscc)) for s, e, sscc in await cur.fetchall()])
    return BatchPrinting(
        batch,
        product,
        brand_code=str(row[0]),
        key=keyring.code_key(brand_key, master_keys),
        signing_key=keyring.signing_key(brand_key, master_keys) if batch.signed else None,
        parents=parents,
    )


class ExportFormat(enum.StrEnum):
    CSV = "csv"
    TXT = "txt"
    ZIP_SVG = "zip-svg"
    ZIP_PNG = "zip-png"
    PDF = "pdf"


MAX_ZIP_CODES = 50_000
MAX_PDF_CODES = pdf.MAX_LABELS
STREAM_CHUNK_BYTES = 256 * 1024


SIZE_LIMITS = {
    "zip-svg": MAX_ZIP_CODES,
    "zip-png": MAX_ZIP_CODES,
    "pdf": MAX_PDF_CODES,
}


def export_chunks(
    printing: BatchPrinting, fmt: ExportFormat, scan_domain: str, start: int, stop: int
) -> Iterator[bytes]:
    """The CSV/TXT print file of positions [start, stop): constant memory whatever the size."""
    codes = printing.codes(scan_domain, start, stop)
    if fmt is ExportFormat.TXT:
        return exports.txt_chunks(codes, chunk_bytes=STREAM_CHUNK_BYTES)
    return exports.csv_chunks(codes, parent=printing.parents or None, chunk_bytes=STREAM_CHUNK_BYTES)


def encrypted_export_chunks(
    printing: BatchPrinting, fmt: ExportFormat, scan_domain: str, start: int, stop: int, password: str
) -> Iterator[bytes]:
    """The CSV/TXT print file inside an AES-256 encrypted ZIP, streamed as it is written."""
    return exports.encrypted_zip_chunks(
        export_chunks(printing, fmt, scan_domain, start, stop),
        member_name=f"batch-{printing.batch.id}-{start}-{stop}.{fmt.value}",
        password=password,
        chunk_bytes=STREAM_CHUNK_BYTES,
    )


def write_export(
    printing: BatchPrinting, fmt: ExportFormat, scan_domain: str, start: int, stop: int, password: str | None
) -> Path:
    """A print file in a temporary file (for the CLI; the API streams all but the PDF)."""
    with tempfile.NamedTemporaryFile(prefix="onecode-export-", delete=False) as placeholder:
        out = Path(placeholder.name)
    if fmt in {ExportFormat.CSV, ExportFormat.TXT}:
        assert password is not None
        with out.open("wb") as handle:
            handle.writelines(encrypted_export_chunks(printing, fmt, scan_domain, start, stop, password))
    elif fmt is ExportFormat.PDF:
        urls = [url for chunk in printing.codes(scan_domain, start, stop) for _, _, url in chunk]
        out.write_bytes(pdf.label_sheet_pdf(urls))
    else:
        with out.open("wb") as handle:
            handle.writelines(qr_zip_export_chunks(printing, fmt, scan_domain, start, stop))
    return out


def qr_zip_export_chunks(
    printing: BatchPrinting, fmt: ExportFormat, scan_domain: str, start: int, stop: int
) -> Iterator[bytes]:
    """A zip of QR images (`<position>.svg` or `.png`) of positions [start, stop), streamed as rendered."""
    items = (
        (f"{position:09d}", url)
        for chunk in printing.codes(scan_domain, start, stop)
        for position, _, url in chunk
    )
    image_format: qr.ImageFormat = "svg" if fmt is ExportFormat.ZIP_SVG else "png"
    return qr.qr_zip_chunks(items, image_format, processes=2, chunk_bytes=STREAM_CHUNK_BYTES)
