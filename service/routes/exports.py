"""Print-file exports of a batch: streamed CSV/TXT, QR image ZIPs, PDF label sheets, optional AES ZIP."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import HeaderParameter, Parameter
from litestar.response import Stream
from psycopg import AsyncConnection

from codegen import batches
from codegen.errors import InvalidInput
from codegen.models import BatchStatus
from codegen.printing import (
    SIZE_LIMITS,
    STREAM_CHUNK_BYTES,
    ExportFormat,
    encrypted_export_chunks,
    export_chunks,
    load_printing,
    qr_zip_export_chunks,
    write_export,
)
from service import audit
from service.guards import brand_of, principal_from, roles
from service.models import Role
from service.settings import Settings


def _file_chunks(path: Path) -> Iterator[bytes]:
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(STREAM_CHUNK_BYTES):
                yield chunk
    finally:
        path.unlink(missing_ok=True)


EXPORTERS = (Role.BRAND_ADMIN, Role.OPERATIONS)


@get(
    "/batches/{batch_id:uuid}/codes",
    opt=roles(*EXPORTERS),
    tags=["batches"],
)
async def export_codes(
    request: Request[Any, Any, Any],
    db: AsyncConnection[Any],
    settings: Settings,
    batch_id: uuid.UUID,
    format: ExportFormat = ExportFormat.CSV,  # noqa: A002 - the public query parameter's name
    start: Annotated[int | None, Parameter(ge=0)] = None,
    stop: Annotated[int | None, Parameter(ge=1)] = None,
    password: Annotated[
        str | None, HeaderParameter(name="X-Export-Password", min_length=8, max_length=128)
    ] = None,
) -> Response[Any]:
    """Stream the batch's codes at positions [start, stop) for the printer; every export is audited.

    `csv` (`index,serial,url`, plus `parent` when packed) and `txt` stream any size and resume by range;
    `zip-svg`/`zip-png` (QR images, up to 50,000 a request) and `pdf` (A4 label sheet, up to 2,000) suit
    small runs. With `X-Export-Password`, CSV/TXT arrive inside an AES-256 encrypted ZIP.
    """
    principal = principal_from(request)
    brand_id = brand_of(principal)
    printing = await load_printing(db, brand_id, batch_id, settings.all_master_keys)
    first, last = batches.check_range(printing.batch, start, stop)
    count = last - first
    limit = SIZE_LIMITS.get(format)
    if limit is not None and count > limit:
        raise InvalidInput("stop", f"{format} exports hold at most {limit} codes; export by range")
    if password is not None and format not in {ExportFormat.CSV, ExportFormat.TXT}:
        raise InvalidInput("X-Export-Password", "encryption applies to csv and txt exports")
    await audit.record(
        db,
        actor=principal.actor,
        brand_id=brand_id,
        action="batch.export",
        object_type="batch",
        object_id=batch_id,
        after={"format": format.value, "start": first, "stop": last, "encrypted": bool(password)},
    )
    if printing.batch.status is BatchStatus.ISSUED:
        await batches.set_status(
            db, actor=principal.actor, brand_id=brand_id, batch_id=batch_id, status=BatchStatus.EXPORTED
        )
    # The audit entry must be durable before a single code leaves: commit now, not after the stream.
    await db.commit()
    name = f"batch-{batch_id}-{first}-{last}"
    domain = settings.scan_domain
    chunks: Iterator[bytes]
    if format is ExportFormat.PDF:
        # A label sheet (2,000 labels at most) is laid out whole before it leaves.
        path = await asyncio.to_thread(write_export, printing, format, domain, first, last, None)
        chunks, media, suffix = _file_chunks(path), "application/pdf", "pdf"
    elif password is not None:  # CSV or TXT, checked above
        chunks = encrypted_export_chunks(printing, format, domain, first, last, password)
        media, suffix = "application/zip", "zip"
    elif format in {ExportFormat.ZIP_SVG, ExportFormat.ZIP_PNG}:
        chunks = qr_zip_export_chunks(printing, format, domain, first, last)
        media, suffix = "application/zip", "zip"
    else:
        chunks = export_chunks(printing, format, domain, first, last)
        media = "text/csv" if format is ExportFormat.CSV else "text/plain"
        suffix = format.value
    # Every format but the PDF streams as it is made: the first bytes leave at once, whatever the size.
    return Stream(
        chunks, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}.{suffix}"'}
    )
