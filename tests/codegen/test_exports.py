"""Streaming CSV/TXT print files, their GS1 validity, and AES-encrypted ZIP wrapping."""

import csv
import io
import itertools
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import biip
import pytest
import pyzipper

from codegen import codeformat as cf
from codegen import exports
from codegen.errors import InvalidFileName, InvalidInput
from codegen.gtin import has_valid_check_digit

DOMAIN = "qr.brand-example.com"
GTIN = "00614141123452"
KEY = cf.CodeKey(0, bytes(32))


def codes(start: int = 0, stop: int = 1000, *, chunk: int = 256) -> list[list[tuple[int, str, str]]]:
    return list(
        cf.iter_codes(
            KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=start, stop=stop, chunk=chunk
        )
    )


def flat(chunks: list[list[tuple[int, str, str]]]) -> list[tuple[int, str, str]]:
    return list(itertools.chain.from_iterable(chunks))


class TestCsv:
    """CSV with header index,serial,url (and parent)."""

    def test_content_and_header(self) -> None:
        """Header first, then one row a code, exactly the codes given, read back by the csv module."""
        given = codes(10, 1010)
        text = b"".join(exports.csv_chunks(given)).decode()
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["index", "serial", "url"]
        assert [(int(i), s, u) for i, s, u in rows[1:]] == flat(given)

    def test_parent_column(self) -> None:
        """With a parent lookup, each row names its case; awkward values are quoted."""
        given = codes(0, 30)
        text = b"".join(exports.csv_chunks(given, parent=lambda index: f'case {index // 10}, "b"')).decode()
        rows = list(csv.reader(io.StringIO(text)))
        assert rows[0] == ["index", "serial", "url", "parent"]
        assert rows[1][3] == 'case 0, "b"'
        assert rows[30][3] == 'case 2, "b"'

    def test_chunks_have_the_requested_size_and_progress_is_reported(self) -> None:
        """Every chunk but the last is at least chunk_bytes; progress ends at the number of codes."""
        reported: list[int] = []
        chunks = list(exports.csv_chunks(codes(0, 5000), chunk_bytes=16 * 1024, progress=reported.append))
        assert len(chunks) > 3
        assert all(len(chunk) >= 16 * 1024 for chunk in chunks[:-1])
        assert reported == sorted(reported)
        assert reported[-1] == 5000

    def test_exported_urls_are_gs1_digital_links(self) -> None:
        """An independent GS1 parser (biip) reads the GTIN and serial of every exported URL."""
        text = b"".join(exports.csv_chunks(codes(0, 300))).decode()
        for row in list(csv.DictReader(io.StringIO(text))):
            link = biip.parse(row["url"]).gs1_digital_link_uri
            assert link is not None
            gtin, serial = link.element_strings
            assert (gtin.ai.ai, gtin.value) == ("01", GTIN)
            assert has_valid_check_digit(gtin.value)
            assert (serial.ai.ai, serial.value) == ("21", row["serial"])

    def test_memory_stays_flat(self) -> None:
        """Exporting 200,000 codes allocates no more at peak than a few chunks."""
        tracemalloc.start()
        try:
            stream = cf.iter_codes(KEY, scan_domain=DOMAIN, gtin=GTIN, brand_code=None, start=0, stop=200_000)
            total = sum(len(chunk) for chunk in exports.csv_chunks(stream))
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert total > 15_000_000
        assert peak < 8 * 1024 * 1024


class TestTxt:
    """One URL a line."""

    def test_content(self) -> None:
        """Exactly the URLs, in order, each on its own line."""
        given = codes(0, 777)
        text = b"".join(exports.txt_chunks(given)).decode()
        assert text.splitlines() == [url for _, _, url in flat(given)]
        assert text.endswith("\n")

    def test_progress(self) -> None:
        """Progress ends at the number of codes."""
        reported: list[int] = []
        list(exports.txt_chunks(codes(0, 100), progress=reported.append))
        assert reported[-1] == 100


class TestEncryptedZip:
    """WinZip AES encryption of an export."""

    def test_opens_with_the_password(self, tmp_path: Path) -> None:
        """The archive holds the export, AES-encrypted, and opens with the password only."""
        path = tmp_path / "codes.zip"
        payload = b"".join(exports.csv_chunks(codes(0, 2000)))
        written = exports.write_encrypted_zip(
            path, exports.csv_chunks(codes(0, 2000)), member_name="codes.csv", password="correct horse"
        )
        assert written == len(payload)
        assert payload not in path.read_bytes()
        with pyzipper.AESZipFile(path) as archive:
            assert archive.getinfo("codes.csv").flag_bits & 0x1  # encrypted
            archive.setpassword(b"correct horse")
            assert archive.read("codes.csv") == payload
        # The local header's compression method 99 marks WinZip AES (not the weak ZipCrypto).
        assert path.read_bytes()[8:10] == (99).to_bytes(2, "little")
        with pyzipper.AESZipFile(path) as archive:
            archive.setpassword(b"wrong")
            with pytest.raises(RuntimeError, match=r"(?i)bad password"):
                archive.read("codes.csv")

    def test_streams_while_it_is_written(self) -> None:
        """The first bytes leave long before the last code is read, and the archive still opens: the
        entry's sizes follow its data (a data descriptor), as 7-Zip and bsdtar expect of a stream."""
        read = 0

        def counted() -> Iterator[bytes]:
            nonlocal read
            for chunk in exports.csv_chunks(codes(0, 200_000), chunk_bytes=16 * 1024):
                read += 1
                yield chunk

        stream = exports.encrypted_zip_chunks(
            counted(), member_name="codes.csv", password="correct horse", chunk_bytes=64 * 1024
        )
        first = next(stream)
        read_before_first = read
        archive_bytes = first + b"".join(stream)
        assert read_before_first < read / 4
        with pyzipper.AESZipFile(io.BytesIO(archive_bytes)) as archive:
            info = archive.getinfo("codes.csv")
            assert info.flag_bits & 0x1 and info.flag_bits & 0x8  # encrypted, sizes after the data
            archive.setpassword(b"correct horse")
            assert archive.read("codes.csv") == b"".join(exports.csv_chunks(codes(0, 200_000)))

    def test_refuses_unsafe_names_and_empty_passwords(self, tmp_path: Path) -> None:
        """Member names are plain file names; a password is required."""
        for name in ("../codes.csv", "a/b.csv", ".hidden", ""):
            with pytest.raises(InvalidFileName):
                exports.write_encrypted_zip(tmp_path / "x.zip", [], member_name=name, password="p")
        with pytest.raises(InvalidInput):
            exports.write_encrypted_zip(tmp_path / "x.zip", [], member_name="codes.csv", password="")
        with pytest.raises(InvalidFileName):  # when asked for the stream, not at its first chunk
            exports.encrypted_zip_chunks([], member_name="../codes.csv", password="p")
