"""A writer of small ip2region xdb files (format 3.0) for tests: ip2region's makers are Go and Java
programs, not Python packages, and the region tests need a file the official binding reads.

Layout: a 256-byte header, a 256 x 256 vector index (for an address's first two bytes, the first and
last entry of its segment index block), the region texts, then the segment index: each entry a segment's
first and last address (IPv4 little-endian, IPv6 big-endian), its region's length and offset.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

HEADER_BYTES = 256
VECTOR_CELLS = 256 * 256
VECTOR_ENTRY_BYTES = 8


def write_xdb(path: Path, version: int, segments: list[tuple[str, str, str]]) -> None:
    """Write `segments` (first address, last address, region text; sorted, not overlapping) to `path`
    as an IPv`version` xdb file."""
    width = 4 if version == 4 else 16
    pieces = [
        piece for first, last, region in segments for piece in _by_vector_cell(first, last, region, width)
    ]
    data_start = HEADER_BYTES + VECTOR_CELLS * VECTOR_ENTRY_BYTES
    texts: dict[str, tuple[int, int]] = {}  # region text -> (offset, length); each text stored once
    blob = bytearray()
    for _, _, region in pieces:
        if region not in texts:
            encoded = region.encode()
            texts[region] = (data_start + len(blob), len(encoded))
            blob += encoded
    index_start = data_start + len(blob)
    entry_bytes = 2 * width + 6
    vector = [(0, 0)] * VECTOR_CELLS
    index = bytearray()
    for n, (first, last, region) in enumerate(pieces):
        pointer = index_start + n * entry_bytes
        cell = first[0] * 256 + first[1]
        start = vector[cell][0] or pointer
        vector[cell] = (start, pointer)  # the block's last entry, inclusive (as the searcher reads it)
        ends = (first[::-1] + last[::-1]) if width == 4 else (first + last)
        offset, length = texts[region]
        index += ends + struct.pack("<HI", length, offset)
    header = struct.pack("<HHIIIHH", 3, 1, 0, index_start, index_start + len(index) - entry_bytes, version, 4)
    with path.open("wb") as out:
        out.write(header.ljust(HEADER_BYTES, b"\0"))
        out.write(b"".join(struct.pack("<II", start, end) for start, end in vector))
        out.write(blob)
        out.write(index)


def _by_vector_cell(first: str, last: str, region: str, width: int) -> list[tuple[bytes, bytes, str]]:
    """A segment cut where its addresses' first two bytes change: each piece lies in one vector cell."""
    low, high = int(ipaddress.ip_address(first)), int(ipaddress.ip_address(last))
    cell_span = 1 << (8 * (width - 2))
    pieces = []
    while low <= high:
        end = min(high, (low // cell_span + 1) * cell_span - 1)
        pieces.append((low.to_bytes(width, "big"), end.to_bytes(width, "big"), region))
        low = end + 1
    return pieces
