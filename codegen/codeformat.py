"""The code format: issue, parse and verify the serials and URLs printed on every item.

URL forms
---------
With a GTIN, a GS1 Digital Link URI (AI 01 then AI 21)::

    https://<scan-domain>/01/<GTIN-14>/21/<SERIAL>

Without a GTIN, a short form under the brand's short code (4-8 characters of the serial alphabet,
assigned per brand elsewhere)::

    https://<scan-domain>/C/<BRAND-CODE>/<SERIAL>

An optional Ed25519 signature rides in the query as GS1 AI 8030: ``?8030=<86 characters base64url>``.

Serial
------
20 characters of the RFC 4648 base32 alphabet ``A-Z 2-7`` (all in GS1 AI 21's character set and in
the QR alphanumeric mode): 100 bits, most significant first::

    bits 99..96   key id        4 bits   in the clear: the brand's key slot 0..15 (first character >> 1)
    bits 95..64   hidden index  32 bits  item index XOR mask(tag): reveals neither sequence nor batch size
    bits 63..0    tag           64 bits  authenticates key id, index and the GTIN or brand code

The serial is the 100-bit number written in base32, 5 bits a character, so the first character is
``key id * 2 + top bit of the hidden index``. Every 20-character string of the alphabet decodes to
exactly one 100-bit number, so there are no alternative spellings of a serial.

Construction (SIV-like, two AES-256 keys k1, k2 derived once from the brand's 32-byte code key by
HKDF-SHA256 with distinct labels)::

    tag    = AES-256_k1(0x01 | form | key id | identifier | index)[0:8]      one 16-byte block
    mask   = AES-256_k2(0x02 | tag | 0x00 * 7)[0:4]                          one 16-byte block
    hidden = index XOR mask

``form`` is 1 for GS1, 2 for short; ``identifier`` is 8 bytes: the GTIN-14 as a big-endian integer,
or the brand code in ASCII padded with zero bytes; ``index`` is 4 bytes big-endian. Binding the
identifier into the tag means a serial copied onto another product does not verify.

Verification reads the key id, recomputes the mask from the tag, recovers the index, recomputes the
tag and compares in constant time (``hmac.compare_digest``); a forger's chance per try is 2^-64.
AES is a pseudorandom permutation, so both outputs are pseudorandom functions of their inputs; two
indices of one product and key never give the same serial (equal tags would mean equal masks, and then
different indices give different hidden indices), so serials are unique by construction. Each code
costs two AES block encryptions, which batch well: a chunk of codes is one ``update()`` call per key.

QR size
-------
Scheme and host are lowercase, the path is uppercase letters, digits and ``/``, so a QR code holds the
URL in two segments: byte mode for ``https://host``, alphanumeric mode for the path (see
``codegen.qr``). For a scan domain of 20 characters the GS1 URL then fits a version 4 symbol at error
correction M (a single byte-mode segment would need version 5). The AI 8030 signature adds 92 bytes
that the alphanumeric mode cannot hold (lowercase base64url): signed URLs need version 8 at M (49x49
modules instead of 33x33), so print them larger.

A CodeKey holds stateful cipher contexts (ECB over whole blocks keeps no state between calls, which is
what makes reuse safe): share one per process or thread, never between threads without the GIL.
"""

import array
import base64
import functools
import hmac
import re
import sys
from collections.abc import Iterator
from typing import Final, Literal

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from codegen.errors import (
    InvalidBrandCode,
    InvalidCodeTarget,
    InvalidKey,
    InvalidRange,
    InvalidScanDomain,
    MalformedCode,
)
from codegen.gtin import has_valid_check_digit, normalize_gtin

ALPHABET: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
SERIAL_LENGTH: Final = 20
KEY_SLOTS: Final = 16
INDEX_LIMIT: Final = 2**32  # item indices are 0 <= index < INDEX_LIMIT
CODE_KEY_BYTES: Final = 32
SIGNATURE_PARAMETER: Final = "8030"  # GS1 AI 8030, digital signature
MAX_SCANNED_LENGTH: Final = 2048
DEFAULT_CHUNK: Final = 2048  # about 200 KB of CSV: a comfortable streaming chunk

Form = Literal["gs1", "short"]

_FORM_BYTE: Final = {"gs1": 1, "short": 2}
_TAG_DOMAIN: Final = 0x01
_MASK_DOMAIN: Final = 0x02
_TAG_BYTES: Final = 8
_MASK_HEAD: Final = bytes((_MASK_DOMAIN,))
_MASK_TAIL: Final = bytes(7)
_MASK_BYTES: Final = 4
_BLOCK: Final = 16
_TAG_BITS: Final = 64
_INDEX_BITS: Final = 32
_SERIAL_BITS: Final = 100
_TAG_FIELD: Final = (1 << _TAG_BITS) - 1
_INDEX_FIELD: Final = (1 << _INDEX_BITS) - 1

_TO_BASE32HEX: Final = str.maketrans(ALPHABET, "0123456789ABCDEFGHIJKLMNOPQRSTUV")
_CHAR_VALUE: Final = {char: value for value, char in enumerate(ALPHABET)}
# Maps a byte holding a 5-bit value to its base32 character (only the low 5 bits are ever set).
_BYTE_TO_CHAR: Final = bytes(ord(ALPHABET[value & 31]) for value in range(256))

# One pattern for both forms, case-insensitive (serial and brand code are uppercased after the match):
# optional scheme and host, the GS1 or the short path, an optional trailing slash, query and fragment.
_SCANNED = re.compile(
    r"(?:https?://([^/?#\s]+))?"
    r"/(?:01/([0-9]{14})/21|C/([A-Z2-7]{4,8}))/([A-Z2-7]{20})/?"
    r"(?:\?([^#]*))?(?:#.*)?",
    re.IGNORECASE | re.DOTALL,
)
_SERIAL = re.compile(r"[A-Z2-7]{20}")
_BRAND_CODE = re.compile(r"[A-Z2-7]{4,8}")
_SIGNATURE = re.compile(r"[A-Za-z0-9_-]{86}")  # 64 bytes of Ed25519 signature, base64url, no padding
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_SCAN_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*(?::[0-9]{{1,5}})?")
_MAX_DOMAIN_LENGTH: Final = 253

# array("I") is 4 bytes on every platform CPython supports; the bulk path relies on it.
assert array.array("I").itemsize == _MASK_BYTES


class ParsedCode(msgspec.Struct, frozen=True, kw_only=True):
    """A scanned code taken apart; `verify` says whether it is genuine."""

    form: Form
    gtin: str | None  # GTIN-14, for the GS1 form
    brand_code: str | None  # for the short form
    serial: str  # 20 characters, uppercase
    key_id: int
    signature: str | None = None  # AI 8030 (or `s`) value, base64url
    host: str | None = None  # lowercase host as scanned, when a full URL was given; not checked here


class CodeKey:
    """A brand key slot ready for use: the AES contexts derived from its code key, built once."""

    __slots__ = ("key_id", "mask_cipher", "tag_cipher")

    def __init__(self, key_id: int, mac_key: bytes) -> None:
        if not 0 <= key_id < KEY_SLOTS:
            raise InvalidKey(f"a key id is 0..{KEY_SLOTS - 1}, got {key_id}", field="key_id")
        if len(mac_key) != CODE_KEY_BYTES:
            raise InvalidKey(f"a code key is {CODE_KEY_BYTES} bytes, got {len(mac_key)}")
        self.key_id = key_id
        # AES-256-ECB contexts under k1 and k2: `update()` takes whole 16-byte blocks, any number.
        self.tag_cipher = _ecb(_derive(mac_key, b"onecode code tag v1"))
        self.mask_cipher = _ecb(_derive(mac_key, b"onecode index mask v1"))


def _derive(mac_key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(mac_key)


def _ecb(key: bytes) -> CipherContext:
    # ECB is the right mode here: each block is a PRF input of its own (never a message to hide).
    return Cipher(algorithms.AES(key), modes.ECB()).encryptor()  # noqa: S305


# --- identities -----------------------------------------------------------------------------------


class _Target(msgspec.Struct, frozen=True):
    """What a code names: its form and GTIN-14 or brand code, and the 8-byte identifier in the tag."""

    form: Form
    gtin: str | None
    brand_code: str | None
    identifier: bytes


def _target(gtin: str | None, brand_code: str | None) -> _Target:
    if gtin is not None and brand_code is not None:
        raise InvalidCodeTarget("a code names a GTIN or a brand code, not both")
    if gtin is not None:
        gtin14 = normalize_gtin(gtin)
        return _Target("gs1", gtin14, None, int(gtin14).to_bytes(8, "big"))
    if brand_code is None:
        raise InvalidCodeTarget("a code needs a GTIN or, for products without one, the brand code")
    if not _BRAND_CODE.fullmatch(brand_code):
        raise InvalidBrandCode(brand_code)
    return _Target("short", None, brand_code, brand_code.encode("ascii").ljust(8, b"\x00"))


def _tag_prefix(target: _Target, key_id: int) -> bytes:
    """The first 11 bytes of a tag block; the 4-byte index and one zero byte complete it."""
    return bytes((_TAG_DOMAIN, _FORM_BYTE[target.form], key_id)) + target.identifier


def _scan_domain(scan_domain: str) -> str:
    domain = scan_domain.lower()
    if len(domain) > _MAX_DOMAIN_LENGTH or not domain.isascii() or not _SCAN_DOMAIN.fullmatch(domain):
        raise InvalidScanDomain(scan_domain)
    return domain


def _url_prefix(domain: str, target: _Target) -> str:
    if target.form == "gs1":
        return f"https://{domain}/01/{target.gtin}/21/"
    return f"https://{domain}/C/{target.brand_code}/"


def _check_index(index: int) -> None:
    if not 0 <= index < INDEX_LIMIT:
        raise InvalidRange(index, index + 1, f"an item index is 0..{INDEX_LIMIT - 1}", field="index")


# --- one code -------------------------------------------------------------------------------------


def _tag(key: CodeKey, prefix: bytes, index: int) -> bytes:
    return key.tag_cipher.update(prefix + index.to_bytes(4, "big") + b"\x00")[:_TAG_BYTES]


def _mask(key: CodeKey, tag: bytes) -> int:
    block = _MASK_HEAD + tag + _MASK_TAIL
    return int.from_bytes(key.mask_cipher.update(block)[:_MASK_BYTES], "big")


def _encode_serial(value: int) -> str:
    # 100 bits shifted to the top of 20 bytes: the first 20 base32 characters are exactly the serial.
    return base64.b32encode((value << 60).to_bytes(20, "big"))[:SERIAL_LENGTH].decode("ascii")


def _decode_serial(serial: str) -> int:
    return int(serial.translate(_TO_BASE32HEX), 32)


def issue_serial(key: CodeKey, *, gtin: str | None, brand_code: str | None, index: int) -> str:
    """The serial of item `index` of a product (by GTIN) or of a brand (short form) under `key`."""
    _check_index(index)
    target = _target(gtin, brand_code)
    tag = _tag(key, _tag_prefix(target, key.key_id), index)
    hidden = index ^ _mask(key, tag)
    value = (key.key_id << (_SERIAL_BITS - 4)) | (hidden << _TAG_BITS) | int.from_bytes(tag, "big")
    return _encode_serial(value)


def code_url(scan_domain: str, *, gtin: str | None, brand_code: str | None, serial: str) -> str:
    """The URL printed in the QR code: lowercase scheme and host, uppercase path."""
    if not _SERIAL.fullmatch(serial):
        raise MalformedCode("a serial is 20 characters of A-Z and 2-7", field="serial")
    return _url_prefix(_scan_domain(scan_domain), _target(gtin, brand_code)) + serial


# Shops scan the same few thousand products all day: remember the check digit verdicts.
_valid_gtin14 = functools.lru_cache(maxsize=4096)(has_valid_check_digit)


def parse(scanned: str) -> ParsedCode:
    """Take apart a scanned URL (or its path); raises MalformedCode, and only that, for anything else.

    Tolerates what phones and printers do: surrounding whitespace, any case of scheme and host, a
    lowercased path (serials decode case-insensitively), a trailing slash, a query string and a
    fragment. The scan domain is not checked here: `host` carries it for the caller.
    """
    if len(scanned) > MAX_SCANNED_LENGTH:
        raise MalformedCode("too long")
    text = scanned.strip()
    # Non-ASCII is never ours, and str.upper() would map some of it onto ASCII (long s -> "S").
    if not text.isascii():
        raise MalformedCode("not ASCII")
    match = _SCANNED.fullmatch(text)
    if match is None:
        raise MalformedCode("not a code URL or path")
    host, gtin, brand_code, serial, query = match.groups()
    if gtin is not None and not _valid_gtin14(gtin):
        raise MalformedCode("wrong GTIN check digit")
    serial = serial.upper()
    return ParsedCode(
        form="gs1" if gtin is not None else "short",
        gtin=gtin,
        brand_code=None if brand_code is None else brand_code.upper(),
        serial=serial,
        key_id=_CHAR_VALUE[serial[0]] >> 1,
        signature=None if query is None else _signature(query),
        host=None if host is None else host.lower(),
    )


def _signature(query: str) -> str | None:
    found: str | None = None
    for parameter in query.split("&"):
        name, _, value = parameter.partition("=")
        if name.lower() not in {SIGNATURE_PARAMETER, "s"}:
            continue  # other parameters (campaign tags and the like) are not ours to judge
        if found is not None:
            raise MalformedCode("more than one signature")
        if not _SIGNATURE.fullmatch(value):
            raise MalformedCode("a signature is 86 characters of base64url")
        found = value
    return found


def verify(parsed: ParsedCode, key: CodeKey) -> int | None:
    """The item index if `parsed` carries a valid tag under `key`, else None."""
    if parsed.key_id != key.key_id or not _SERIAL.fullmatch(parsed.serial):
        return None
    identifier = _identifier(parsed)
    if identifier is None:
        return None
    value = _decode_serial(parsed.serial)
    if value >> (_SERIAL_BITS - 4) != key.key_id:
        return None  # a hand-built ParsedCode whose key_id disagrees with its serial
    tag = (value & _TAG_FIELD).to_bytes(_TAG_BYTES, "big")
    index = ((value >> _TAG_BITS) & _INDEX_FIELD) ^ _mask(key, tag)
    prefix = bytes((_TAG_DOMAIN, _FORM_BYTE[parsed.form], key.key_id)) + identifier
    return index if hmac.compare_digest(_tag(key, prefix, index), tag) else None


def _identifier(parsed: ParsedCode) -> bytes | None:
    """The 8 identifier bytes of a tag block, or None for a ParsedCode that names no valid product.

    No check digit test here (parse did it): a tag is only ever issued for a valid GTIN, so another
    GTIN cannot verify anyway, and this runs on every scan.
    """
    if parsed.form == "gs1":
        gtin = parsed.gtin
        if gtin is None or len(gtin) != 14 or not (gtin.isascii() and gtin.isdigit()):  # noqa: PLR2004
            return None
        return int(gtin).to_bytes(8, "big")
    brand_code = parsed.brand_code
    if brand_code is None or not _BRAND_CODE.fullmatch(brand_code):
        return None
    return brand_code.encode("ascii").ljust(8, b"\x00")


# --- many codes -----------------------------------------------------------------------------------


def iter_codes(
    key: CodeKey,
    *,
    scan_domain: str,
    gtin: str | None,
    brand_code: str | None,
    start: int,
    stop: int,
    chunk: int = DEFAULT_CHUNK,
) -> Iterator[list[tuple[int, str, str]]]:
    """(index, serial, url) for indices start..stop-1, in lists of up to `chunk` codes.

    Built for bulk: each chunk is two AES calls over all its blocks, and the base32 encoding of all its
    serials is done on whole-chunk integers and byte strings, so the per-code Python work is only
    cutting the text and building the tuples. Memory is proportional to `chunk`, not to the range.
    """
    if not 0 <= start <= stop <= INDEX_LIMIT:
        raise InvalidRange(start, stop, f"want 0 <= start <= stop <= {INDEX_LIMIT}")
    if chunk < 1:
        raise InvalidRange(start, stop, "the chunk size must be positive", field="chunk")
    target = _target(gtin, brand_code)
    url_prefix = _url_prefix(_scan_domain(scan_domain), target)
    tag_prefix = _tag_prefix(target, key.key_id)
    for first in range(start, stop, chunk):
        last = min(first + chunk, stop)
        serials = _serials(key, tag_prefix, first, last)
        urls = [url_prefix + serial for serial in serials]
        yield list(zip(range(first, last), serials, urls, strict=True))


def _serials(key: CodeKey, tag_prefix: bytes, first: int, last: int) -> list[str]:
    """The serials of indices first..last-1 (see the module docstring for the layout)."""
    count = last - first
    indices = array.array("I", range(first, last))
    if count % 2:
        # Serials are encoded two at a time (200 bits = 25 bytes); pad with any valid index.
        indices.append(first)
    padded = len(indices)
    if sys.byteorder == "little":
        indices.byteswap()
    index_bytes = indices.tobytes()

    # Tag blocks: the same 11-byte prefix everywhere, then each big-endian index, then a zero byte.
    blocks = bytearray(tag_prefix + bytes(_BLOCK - len(tag_prefix))) * padded
    for byte in range(4):
        blocks[len(tag_prefix) + byte :: _BLOCK] = index_bytes[byte::4]
    tags = key.tag_cipher.update(bytes(blocks))

    # Mask blocks: domain byte, the 8 tag bytes, zeros.
    blocks = bytearray(_BLOCK * padded)
    blocks[0::_BLOCK] = bytes((_MASK_DOMAIN,)) * padded
    for byte in range(_TAG_BYTES):
        blocks[1 + byte :: _BLOCK] = tags[byte::_BLOCK]
    masks_out = key.mask_cipher.update(bytes(blocks))
    masks = bytearray(4 * padded)
    for byte in range(4):
        masks[byte::4] = masks_out[byte::_BLOCK]
    hidden = (int.from_bytes(index_bytes, "big") ^ int.from_bytes(masks, "big")).to_bytes(4 * padded, "big")

    # Each serial in a 13-byte slot: key id byte (its top nibble zero), hidden index, tag.
    slots = bytearray(13 * padded)
    slots[0::13] = bytes((key.key_id,)) * padded
    for byte in range(4):
        slots[1 + byte :: 13] = hidden[byte::4]
    for byte in range(_TAG_BYTES):
        slots[5 + byte :: 13] = tags[byte::_BLOCK]
    return _base32_serials(bytes(slots), padded)[:count]


def _base32_serials(slots: bytes, count: int) -> list[str]:
    """Base32 of `count` (even) 100-bit values, each given in a 13-byte slot whose top nibble is zero."""
    pairs = count // 2
    masks = _bulk_masks(pairs)
    # Squeeze out the 4 spare bits between the two serials of each pair: 26-byte pairs of slots become
    # 200-bit values (still 26 bytes with a leading zero byte, dropped next).
    value = int.from_bytes(slots, "big")
    value = ((value & masks.pair_high) >> 4) | (value & masks.pair_low)
    packed = bytearray(value.to_bytes(26 * pairs, "big"))
    del packed[0::26]
    # 5-byte groups (8 characters each) into 8-byte slots, then spread 40 bits to 8 bytes of 5 bits:
    # 40 -> 2 x 20 bits, 20 -> 2 x 10, 10 -> 2 x 5, each step one shift over the whole chunk.
    groups = 5 * pairs
    spread = bytearray(8 * groups)
    for byte in range(5):
        spread[3 + byte :: 8] = packed[byte::5]
    value = int.from_bytes(spread, "big")
    value = (value & masks.low20) | ((value & masks.high20) << 12)
    value = (value & masks.low10) | ((value & masks.high10) << 6)
    value = (value & masks.low5) | ((value & masks.high5) << 3)
    text = value.to_bytes(8 * groups, "big").translate(_BYTE_TO_CHAR).decode("ascii")
    return [text[at : at + SERIAL_LENGTH] for at in range(0, SERIAL_LENGTH * count, SERIAL_LENGTH)]


class _BulkMasks(msgspec.Struct, frozen=True):
    pair_high: int
    pair_low: int
    low20: int
    high20: int
    low10: int
    high10: int
    low5: int
    high5: int


@functools.lru_cache(maxsize=8)
def _bulk_masks(pairs: int) -> _BulkMasks:
    """Bit masks repeated over a whole chunk; cached because chunks mostly have the same size."""

    def repeat(pattern: int, width: int, times: int) -> int:
        return int.from_bytes(pattern.to_bytes(width, "big") * times, "big")

    groups = 5 * pairs
    low104 = (1 << 104) - 1
    return _BulkMasks(
        pair_high=repeat(low104 << 104, 26, pairs),
        pair_low=repeat(low104, 26, pairs),
        low20=repeat(0xFFFFF, 8, groups),
        high20=repeat(0xFFFFF << 20, 8, groups),
        low10=repeat(0x3FF, 4, 2 * groups),
        high10=repeat(0x3FF << 10, 4, 2 * groups),
        low5=repeat(0x1F, 2, 4 * groups),
        high5=repeat(0x1F << 5, 2, 4 * groups),
    )


# --- Ed25519 signatures (publicly verifiable option) ------------------------------------------------


def _signed_message(parsed: ParsedCode) -> bytes:
    """What a signature covers: the canonical uppercase path, so host case and scan domain do not matter.

    An independent verifier rebuilds it from the URL alone: ``/01/<GTIN-14>/21/<SERIAL>`` or
    ``/C/<BRAND-CODE>/<SERIAL>``, as ASCII bytes.
    """
    if parsed.form == "gs1":
        return f"/01/{parsed.gtin}/21/{parsed.serial}".encode("ascii")
    return f"/C/{parsed.brand_code}/{parsed.serial}".encode("ascii")


# Loading a raw key costs as much as a signature: a batch signs every code with the same key.
@functools.lru_cache(maxsize=16)
def _private_key(private_raw: bytes) -> Ed25519PrivateKey:
    try:
        return Ed25519PrivateKey.from_private_bytes(private_raw)
    except ValueError:
        raise InvalidKey("an Ed25519 private key is 32 bytes") from None


@functools.lru_cache(maxsize=64)
def _public_key(public_raw: bytes) -> Ed25519PublicKey:
    try:
        return Ed25519PublicKey.from_public_bytes(public_raw)
    except ValueError:
        raise InvalidKey("an Ed25519 public key is 32 bytes") from None


def sign_code(private_raw: bytes, url_without_signature: str) -> str:
    """The URL with an Ed25519 signature appended as GS1 AI 8030 (``?8030=`` + 86 base64url characters).

    Signed URLs are 92 characters longer, in byte mode: with a 20-character scan domain they need QR
    version 8 at M instead of 4.
    """
    url = url_without_signature.strip()
    parsed = parse(url)
    if parsed.signature is not None:
        raise MalformedCode("the URL is already signed")
    if "#" in url:
        raise MalformedCode("a URL to sign has no fragment")
    signature = base64.urlsafe_b64encode(_private_key(private_raw).sign(_signed_message(parsed)))
    signature_text = signature.rstrip(b"=").decode("ascii")
    separator = "&" if "?" in url else "?"
    return f"{url}{separator}{SIGNATURE_PARAMETER}={signature_text}"


def verify_signature(public_raw: bytes, code: ParsedCode | str) -> bool:
    """True when the code carries a valid signature by `public_raw`; a URL is parsed first (MalformedCode)."""
    parsed = parse(code) if isinstance(code, str) else code
    if parsed.signature is None or not _SIGNATURE.fullmatch(parsed.signature):
        return False
    signature = base64.urlsafe_b64decode(parsed.signature + "==")
    try:
        _public_key(public_raw).verify(signature, _signed_message(parsed))
    except InvalidSignature:
        return False
    return True
