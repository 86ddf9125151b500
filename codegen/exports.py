"""Print files for the factory: streaming CSV and TXT of code URLs, and streaming AES-encrypted ZIP wrapping.

Every writer takes the chunks of `codeformat.iter_codes` and yields `bytes` of roughly `chunk_bytes`,
so memory stays constant whatever the number of codes: an HTTP layer streams the chunks, a CLI writes
them to a file.
"""

from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Final, TypeAlias

import pyzipper  # type: ignore[import-untyped]

from codegen.errors import InvalidFileName, InvalidInput

Codes: TypeAlias = Iterable[list[tuple[int, str, str]]]
Progress: TypeAlias = Callable[[int], None]

DEFAULT_CHUNK_BYTES: Final = 128 * 1024
CSV_HEADER: Final = "index,serial,url"
_NEEDS_QUOTES: Final = frozenset(',"\r\n')


def _csv_field(value: str) -> str:
    # Only the parent column holds text we did not make; quote it the RFC 4180 way when needed.
    if _NEEDS_QUOTES.isdisjoint(value):
        return value
    return '"' + value.replace('"', '""') + '"'


def _buffered(
    pieces: Iterable[tuple[str, int]], chunk_bytes: int, progress: Progress | None
) -> Iterator[bytes]:
    """Join (text, codes in it) pieces into byte chunks of at least `chunk_bytes`, reporting progress."""
    buffer: list[str] = []
    size = 0
    done = 0
    for text, codes in pieces:
        buffer.append(text)
        size += len(text)  # our text is ASCII but for the parent column: close enough for sizing
        done += codes
        if size >= chunk_bytes:
            yield "".join(buffer).encode()
            if progress is not None:
                progress(done)
            buffer.clear()
            size = 0
    if buffer:
        yield "".join(buffer).encode()
    if progress is not None:
        progress(done)


def csv_chunks(
    codes: Codes,
    *,
    parent: Callable[[int], str] | None = None,
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
    progress: Progress | None = None,
) -> Iterator[bytes]:
    """A CSV file `index,serial,url` (plus `parent` when `parent(index)` is given), in byte chunks.

    `progress(n)` is called with the number of codes written so far after each chunk.
    """
    header = CSV_HEADER + (",parent\n" if parent is not None else "\n")

    def pieces() -> Iterator[tuple[str, int]]:
        yield header, 0
        for chunk in codes:
            if parent is None:
                text = "".join([f"{index},{serial},{url}\n" for index, serial, url in chunk])
            else:
                text = "".join(
                    [f"{index},{serial},{url},{_csv_field(parent(index))}\n" for index, serial, url in chunk]
                )
            yield text, len(chunk)

    return _buffered(pieces(), chunk_bytes, progress)


def txt_chunks(
    codes: Codes, *, chunk_bytes: int = DEFAULT_CHUNK_BYTES, progress: Progress | None = None
) -> Iterator[bytes]:
    """One URL a line, in byte chunks; `progress` as for `csv_chunks`."""

    def pieces() -> Iterator[tuple[str, int]]:
        for chunk in codes:
            yield "".join([f"{url}\n" for _, _, url in chunk]), len(chunk)

    return _buffered(pieces(), chunk_bytes, progress)


def _check_member_name(name: str) -> None:
    # A name with a path in it could write outside the folder the factory unpacks into.
    if not name or "/" in name or "\\" in name or name.startswith(".") or not name.isprintable():
        raise InvalidFileName(name, field="member_name")


def encrypted_zip_chunks(
    chunks: Iterable[bytes], *, member_name: str, password: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES
) -> Iterator[bytes]:
    """`chunks` as one file `member_name` in an AES-256 encrypted ZIP (WinZip AE-2), in byte chunks of
    about `chunk_bytes` that leave as the archive is written: the first bytes of a 100-million-code
    export go out at once, not after minutes spent writing all of it.

    7-Zip, WinZip, bsdtar and macOS Archive Utility alternatives open it; Info-ZIP `unzip` 6 does not
    support AES. The name and password are checked here, before the first chunk is asked for.
    """
    _check_member_name(member_name)
    if not password:
        raise InvalidInput("password", "an encrypted export needs a password")
    return _encrypted_zip_stream(chunks, member_name, password, chunk_bytes)


class StreamSink:
    """Collects what a ZIP writer writes, to hand on in chunks. It cannot seek, so the writer puts each
    entry's sizes after its data (a data descriptor) instead of going back to its header: the archive
    can leave while it is being written."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self.size = 0

    def write(self, data: bytes) -> int:
        self._parts.append(bytes(data))
        self.size += len(data)
        return len(data)

    def flush(self) -> None:
        pass

    def take(self) -> bytes:
        taken = b"".join(self._parts)
        self._parts.clear()
        self.size = 0
        return taken


def _encrypted_zip_stream(
    chunks: Iterable[bytes], member_name: str, password: str, chunk_bytes: int
) -> Iterator[bytes]:
    sink = StreamSink()
    with pyzipper.AESZipFile(
        sink, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
    ) as archive:
        archive.setpassword(password.encode())
        # force_zip64: the size is unknown when the entry starts and may pass 4 GiB.
        with archive.open(member_name, "w", force_zip64=True) as member:
            for chunk in chunks:
                member.write(chunk)
                if sink.size >= chunk_bytes:
                    yield sink.take()
    yield sink.take()  # the entry's end, its data descriptor and the central directory


def write_encrypted_zip(path: Path, chunks: Iterable[bytes], *, member_name: str, password: str) -> int:
    """`encrypted_zip_chunks` into a file at `path`; returns the number of uncompressed bytes written."""
    written = 0

    def counted() -> Iterator[bytes]:
        nonlocal written
        for chunk in chunks:
            written += len(chunk)
            yield chunk

    stream = encrypted_zip_chunks(counted(), member_name=member_name, password=password)
    with path.open("wb") as handle:
        handle.writelines(stream)
    return written
