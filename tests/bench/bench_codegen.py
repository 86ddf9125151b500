"""Benchmark of code issuance: CSV codes/s, export memory, verify latency, QR images/s; exit 1 on a miss.

Run from the repository root: `python tests/bench/bench_codegen.py` (about a minute on 2 cores).
"""

import argparse
import io
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codegen import codeformat, exports, qr

SCAN_DOMAIN = "qr.brand-example.com"  # 20 characters, the longest the QR size promise covers
GTIN = "00614141123452"
KEY_ID = 1
MAC_KEY = bytes(range(32))

CSV_CODES = 2_000_000
RSS_CODES = 10_000_000
VERIFY_CODES = 20_000
SVG_IMAGES = 3_000

MIN_CODES_PER_SECOND = 300_000
MAX_PEAK_RSS_MB = 150
MAX_VERIFY_MICROSECONDS = 10.0
MIN_SVG_PER_SECOND = 300


def codes(count: int) -> exports.Codes:
    key = codeformat.CodeKey(KEY_ID, MAC_KEY)
    return codeformat.iter_codes(
        key, scan_domain=SCAN_DOMAIN, gtin=GTIN, brand_code=None, start=0, stop=count
    )


def export_csv(count: int, path: Path) -> int:
    written = 0
    with path.open("wb") as out:
        for chunk in exports.csv_chunks(codes(count)):
            out.write(chunk)
            written += len(chunk)
    return written


def csv_codes_per_second() -> float:
    # One core: the export is single-threaded; pinning makes that explicit where the OS allows it.
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    started = time.perf_counter()
    export_csv(CSV_CODES, Path(os.devnull))
    elapsed = time.perf_counter() - started
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, range(os.cpu_count() or 1))
    return CSV_CODES / elapsed


def export_peak_rss_mb() -> tuple[float, int]:
    """Peak RSS of a child process that exports RSS_CODES codes to a CSV file, and the file size."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "codes.csv"
        subprocess.run([sys.executable, __file__, "--child-export", str(path)], check=True)
        size = path.stat().st_size
    # ru_maxrss of the children is the largest child so far: this must be the first child we wait for.
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kib / 1024, size


def verify_median_microseconds() -> float:
    """Median time of parse + verify of one URL, after a warm-up pass (a scan server is always warm)."""
    key = codeformat.CodeKey(KEY_ID, MAC_KEY)
    urls = [url for chunk in codes(VERIFY_CODES) for _, _, url in chunk]
    clock = time.perf_counter_ns
    timings = []
    for warm in (True, False):
        for index, url in enumerate(urls):
            started = clock()
            found = codeformat.verify(codeformat.parse(url), key)
            elapsed = clock() - started
            assert found == index
            if not warm:
                timings.append(elapsed)
    return statistics.median(timings) / 1000


class _Discard(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        return len(data)


def svg_images_per_second() -> float:
    """Two worker processes rendering a zip of SVGs, pool start-up included."""
    items = [(serial, url) for chunk in codes(SVG_IMAGES) for _, serial, url in chunk]
    started = time.perf_counter()
    written = qr.write_qr_zip(items, "svg", _Discard(), processes=2)
    elapsed = time.perf_counter() - started
    assert written == SVG_IMAGES
    return SVG_IMAGES / elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--child-export", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_export is not None:
        export_csv(RSS_CODES, args.child_export)
        return 0

    misses = []
    peak_mb, size = export_peak_rss_mb()
    print(f"peak RSS, {RSS_CODES:,}-code CSV export ({size / 1e6:,.0f} MB file): {peak_mb:,.1f} MB")
    if peak_mb >= MAX_PEAK_RSS_MB:
        misses.append(f"peak RSS {peak_mb:.1f} MB >= {MAX_PEAK_RSS_MB} MB")

    rate = csv_codes_per_second()
    print(f"CSV export, one core, {CSV_CODES:,} codes: {rate:,.0f} codes/s")
    if rate < MIN_CODES_PER_SECOND:
        misses.append(f"CSV {rate:,.0f} codes/s < {MIN_CODES_PER_SECOND:,}")

    median = verify_median_microseconds()
    print(f"parse + verify, median of {VERIFY_CODES:,}: {median:.2f} us")
    if median > MAX_VERIFY_MICROSECONDS:
        misses.append(f"verify {median:.2f} us > {MAX_VERIFY_MICROSECONDS} us")

    images = svg_images_per_second()
    print(f"SVG QR zip, 2 processes, {SVG_IMAGES:,} images: {images:,.0f} images/s")
    if images < MIN_SVG_PER_SECOND:
        misses.append(f"SVG {images:,.0f} images/s < {MIN_SVG_PER_SECOND}")

    for miss in misses:
        print(f"MISSED: {miss}")
    print("all targets met" if not misses else f"{len(misses)} target(s) missed")
    return 1 if misses else 0


if __name__ == "__main__":
    sys.exit(main())
