"""QR images of code URLs: two-segment encoding at error correction M, SVG/PNG, and zips rendered in parallel.

The URL is encoded as a byte-mode segment for ``https://host`` and an alphanumeric-mode segment for the
uppercase path (5.5 bits a character instead of 8): a GS1 URL with a 20-character scan domain then
fits version 4 at M, where one byte-mode segment needs version 5. A signature query (AI 8030) is a
third, byte-mode segment.

Mask choice: ISO/IEC 18004 picks, of the eight data masks, the one whose symbol has the lowest penalty
(long runs, 2x2 blocks, finder-like patterns, dark/light imbalance). segno does this in pure Python,
module by module: 5.5 of its 7 ms per symbol, too slow for print runs. `make_qr` computes the same
penalty rules on whole rows and columns, from one encoding: the symbol under mask k differs from the
symbol under mask 0 by a pattern that depends on the version and error level only (the mask bits over
the data region plus the format information), so that difference is learned once per version from
segno itself and XORed in. The chosen mask is then handed to segno, which builds the final symbol.
Like ZXing, the penalty is taken over the complete symbol, format information included.
"""

import functools
import io
import itertools
import multiprocessing
import zipfile
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any, BinaryIO, Final, Literal, TypeAlias, cast

import segno
from segno import consts

from codegen.errors import InvalidFileName
from codegen.exports import DEFAULT_CHUNK_BYTES, StreamSink

ImageFormat: TypeAlias = Literal["svg", "png"]
Segment: TypeAlias = tuple[str, int]  # (text, segno mode constant)

ERROR_CORRECTION: Final = "m"
QUIET_ZONE: Final = 4  # modules of light margin the QR standard requires around the symbol
DEFAULT_SCALE: Final = 4
DEFAULT_BATCH: Final = 32
_ALPHANUMERIC: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:")
_NAME_CHARS: Final = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-")
_MAX_NAME: Final = 100


def qr_segments(url: str) -> list[Segment]:
    """The URL split into QR segments: byte mode for scheme and host, alphanumeric for the path if it can."""
    scheme_end = url.find("://")
    path_start = url.find("/", scheme_end + 3) if scheme_end != -1 else 0
    if path_start == -1:
        return [(url, consts.MODE_BYTE)]
    query_start = url.find("?", path_start)
    if query_start == -1:
        query_start = len(url)
    head, path, query = url[:path_start], url[path_start:query_start], url[query_start:]
    segments: list[Segment] = []
    if head:
        segments.append((head, consts.MODE_BYTE))
    if path:
        path_mode = consts.MODE_ALPHANUMERIC if _ALPHANUMERIC.issuperset(path) else consts.MODE_BYTE
        segments.append((path, path_mode))
    if query:
        segments.append((query, consts.MODE_BYTE))
    return segments


def make_qr(url: str) -> segno.QRCode:
    """The QR code of `url` at error correction M, with the lowest-penalty mask of ISO/IEC 18004."""
    # segno takes a list of (content, mode) segments; its type hints only name a single content.
    segments: Any = qr_segments(url)
    # boost_error=False keeps M as specified: the print layout is sized for the version M gives.
    first = segno.make_qr(segments, error=ERROR_CORRECTION, boost_error=False, mask=0)
    mask = _best_mask(first, segments)
    if mask == 0:
        return first
    return segno.make_qr(
        segments, error=ERROR_CORRECTION, version=first.version, boost_error=False, mask=mask
    )


_MASKS: Final = 8
_BITS: Final = bytes.maketrans(b"\x00\x01", b"01")
# Per (version, error level): for each mask k, rows of (symbol under mask k) XOR (symbol under mask 0).
_mask_deltas: dict[tuple[int | str, str], list[list[int]]] = {}


def _rows(code: segno.QRCode) -> list[int]:
    return [int(row.translate(_BITS), 2) for row in code.matrix]


def _deltas(first: segno.QRCode, segments: Any) -> list[list[int]]:
    key = (first.version, first.error)
    deltas = _mask_deltas.get(key)
    if deltas is None:
        base = _rows(first)
        deltas = []
        for mask in range(_MASKS):
            other = segno.make_qr(
                segments, error=ERROR_CORRECTION, version=first.version, boost_error=False, mask=mask
            )
            deltas.append([a ^ b for a, b in zip(_rows(other), base, strict=True)])
        _mask_deltas[key] = deltas
    return deltas


def _best_mask(first: segno.QRCode, segments: Any) -> int:
    base = _rows(first)
    size = len(base)
    scores = []
    for delta in _deltas(first, segments):
        rows = [a ^ b for a, b in zip(base, delta, strict=True)]
        scores.append(_penalty(rows, size))
    return scores.index(min(scores))


def _penalty(rows: list[int], size: int) -> int:
    """ISO/IEC 18004:2015 section 7.8.3.1 penalty (N1 + N2 + N3 + N4) of a symbol given as row bits.

    Rows and columns are laid end to end in one integer, so each rule is a few whole-integer
    operations instead of a loop over modules.
    """
    lines = [format(row, f"0{size}b") for row in rows]
    lines += ["".join(column) for column in zip(*lines, strict=True)]
    # N1: 3 for a run of 5 modules of one colour, one more for each module beyond. A run of L modules
    # is a run of L - 4 places where 5 modules in a row are equal: count those places, plus 2 a run.
    modules = int("".join(lines), 2)
    equal_next = ~(modules ^ (modules >> 1)) & _within_lines(size)
    five_equal = equal_next & (equal_next >> 1) & (equal_next >> 2) & (equal_next >> 3)
    score = five_equal.bit_count() + 2 * (five_equal & ~(five_equal << 1)).bit_count()
    # N2: 3 for each 2x2 block of one colour.
    pair_mask = (1 << (size - 1)) - 1
    for upper, lower in itertools.pairwise(rows):
        same_vertical = ~(upper ^ lower)
        same_horizontal = ~(upper ^ (upper >> 1))
        score += 3 * (same_vertical & (same_vertical >> 1) & same_horizontal & pair_mask).bit_count()
    # N3: 40 for each 1:1:3:1:1 finder-like pattern with 4 light modules before or after it. Lines are
    # padded with 4 light modules (the quiet zone); a pattern cannot span the 8 between two lines.
    padded = int("0000" + "00000000".join(lines) + "0000", 2)
    score += 40 * (_matches(padded, 0b00001011101) + _matches(padded, 0b10111010000))
    # N4: 10 for each full 5% step away from half the modules dark.
    dark = sum(row.bit_count() for row in rows)
    score += 10 * (abs(dark * 20 // (size * size) - 10))
    return score


_PATTERN_BITS: Final = 11


def _matches(bits: int, pattern: int) -> int:
    """How many places of `bits` hold the 11-bit `pattern`."""
    found = -1
    for shift in range(_PATTERN_BITS):
        shifted = bits >> shift
        found &= shifted if (pattern >> shift) & 1 else ~shifted
    return found.bit_count()


@functools.lru_cache(maxsize=8)
def _within_lines(size: int) -> int:
    """Ones where a module and the next one are in the same row or column, for 2 * size lines."""
    return int(("0" + "1" * (size - 1)) * (2 * size), 2)


def render_svg(url: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """A standalone SVG image of the QR code of `url`, with the required quiet zone."""
    out = io.BytesIO()
    make_qr(url).save(out, kind="svg", scale=scale, border=QUIET_ZONE, xmldecl=False)
    return out.getvalue()


def render_png(url: str, *, scale: int = DEFAULT_SCALE) -> bytes:
    """A black-and-white PNG of the QR code of `url`, `scale` pixels a module, with the quiet zone."""
    out = io.BytesIO()
    make_qr(url).save(out, kind="png", scale=scale, border=QUIET_ZONE)
    return out.getvalue()


def _render_batch(fmt: ImageFormat, scale: int, urls: list[str]) -> list[bytes]:
    render = render_svg if fmt == "svg" else render_png
    return [render(url, scale=scale) for url in urls]


def _check_name(name: str) -> None:
    # Member names become file names on the factory's machine: no paths, nothing hidden.
    if not name or len(name) > _MAX_NAME or name.startswith(".") or not _NAME_CHARS.issuperset(name):
        raise InvalidFileName(name)


def _batches(items: Iterable[tuple[str, str]], size: int) -> Iterator[tuple[list[str], list[str]]]:
    names: list[str] = []
    urls: list[str] = []
    for name, url in items:
        _check_name(name)
        names.append(name)
        urls.append(url)
        if len(names) == size:
            yield names, urls
            names, urls = [], []
    if names:
        yield names, urls


def qr_zip_chunks(
    items: Iterable[tuple[str, str]],
    fmt: ImageFormat,
    *,
    processes: int = 2,
    scale: int = DEFAULT_SCALE,
    batch: int = DEFAULT_BATCH,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> Iterator[bytes]:
    """A zip of one QR image per (name, url) item, `<name>.svg` or `<name>.png`, in byte chunks of about
    `chunk_bytes` that leave as the images are rendered (50,000 PNGs take a minute or more: a client
    or proxy waiting for the whole archive before its first byte would give up).

    Images are rendered by `processes` worker processes (1 renders in this process), a bounded number
    of batches in flight, so memory stays constant however many items there are.
    """
    # PNG is already deflated; SVG text compresses about 5 to 1.
    compression = zipfile.ZIP_STORED if fmt == "png" else zipfile.ZIP_DEFLATED
    sink = StreamSink()
    # zipfile needs only write() and flush() of an unseekable target; its stubs ask for a whole IO.
    with zipfile.ZipFile(cast("BinaryIO", sink), "w", compression=compression) as archive:
        for names, images in _rendered(items, fmt, scale, batch, processes):
            for name, image in zip(names, images, strict=True):
                archive.writestr(f"{name}.{fmt}", image)
            if sink.size >= chunk_bytes:
                yield sink.take()
    yield sink.take()  # the central directory


def _rendered(
    items: Iterable[tuple[str, str]], fmt: ImageFormat, scale: int, batch: int, processes: int
) -> Iterator[tuple[list[str], list[bytes]]]:
    """(names, images) a batch at a time, in the items' order."""
    if processes <= 1:
        for names, urls in _batches(items, batch):
            yield names, _render_batch(fmt, scale, urls)
        return
    # spawn, not fork: forking a threaded server process can deadlock the child.
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=processes, mp_context=context) as pool:
        pending: deque[tuple[list[str], Future[list[bytes]]]] = deque()
        for names, urls in _batches(items, batch):
            pending.append((names, pool.submit(_render_batch, fmt, scale, urls)))
            if len(pending) >= 2 * processes:
                done_names, future = pending.popleft()
                yield done_names, future.result()
        while pending:
            done_names, future = pending.popleft()
            yield done_names, future.result()


def write_qr_zip(
    items: Iterable[tuple[str, str]],
    fmt: ImageFormat,
    out: BinaryIO,
    *,
    processes: int = 2,
    scale: int = DEFAULT_SCALE,
    batch: int = DEFAULT_BATCH,
) -> int:
    """`qr_zip_chunks` written to `out` (a file, or an unseekable stream); returns the number of images."""
    written = 0

    def counted() -> Iterator[tuple[str, str]]:
        nonlocal written
        for item in items:
            written += 1
            yield item

    out.writelines(qr_zip_chunks(counted(), fmt, processes=processes, scale=scale, batch=batch))
    return written
