"""Key material: brand keys sealed under a rotatable master key (AES-256-GCM), and Ed25519 key pairs.

Sealed blob layout (all of it is authenticated; the header is part of the GCM associated data):

    version (1 byte, 0x01) | master key fingerprint (4 bytes) | nonce (12 bytes) | ciphertext + GCM tag

The fingerprint names the master key that sealed the blob, so `unseal` given the current key and the
old ones picks the right key without trying each, and master-key rotation is: put the new key first,
keep the old ones in the list, re-seal at leisure with `reseal`. The fingerprint is a hash of the key:
it tells nothing that helps recover the key.
"""

import base64
import hashlib
import os
from collections.abc import Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from codegen.errors import InvalidKey, UnsealError

MASTER_KEY_BYTES = 32
MAC_KEY_BYTES = 32
ED25519_KEY_BYTES = 32

_VERSION = b"\x01"
_FINGERPRINT_BYTES = 4
_NONCE_BYTES = 12
_HEADER_BYTES = len(_VERSION) + _FINGERPRINT_BYTES
_GCM_TAG_BYTES = 16


def _check_master_key(master_key: bytes) -> None:
    if len(master_key) != MASTER_KEY_BYTES:
        raise InvalidKey(f"a master key is {MASTER_KEY_BYTES} bytes, got {len(master_key)}")


def master_key_fingerprint(master_key: bytes) -> bytes:
    """A short public name for a master key, stored in each blob it seals."""
    _check_master_key(master_key)
    return hashlib.sha256(b"onecode master key fingerprint v1\x00" + master_key).digest()[:_FINGERPRINT_BYTES]


def seal(master_key: bytes, plaintext: bytes, *, aad: bytes) -> bytes:
    """Encrypt and authenticate `plaintext` under `master_key`, bound to the context `aad`.

    `aad` names what the secret is for (for example brand id and key slot), so a sealed key copied onto
    another row fails to unseal instead of silently serving the wrong brand.
    """
    header = _VERSION + master_key_fingerprint(master_key)
    # A random 96-bit nonce per blob: safe far beyond the number of keys this service will ever seal.
    nonce = os.urandom(_NONCE_BYTES)
    ciphertext = AESGCM(master_key).encrypt(nonce, plaintext, header + aad)
    return header + nonce + ciphertext


def unseal(master_keys: Sequence[bytes], sealed: bytes, *, aad: bytes) -> bytes:
    """The plaintext of a blob sealed by any of `master_keys` (current first, then older ones)."""
    if len(sealed) < _HEADER_BYTES + _NONCE_BYTES + _GCM_TAG_BYTES:
        raise UnsealError("the blob is too short")
    if sealed[:1] != _VERSION:
        raise UnsealError(f"unknown format version {sealed[0]}")
    header = sealed[:_HEADER_BYTES]
    fingerprint = header[len(_VERSION) :]
    nonce = sealed[_HEADER_BYTES : _HEADER_BYTES + _NONCE_BYTES]
    ciphertext = sealed[_HEADER_BYTES + _NONCE_BYTES :]
    candidates = [key for key in master_keys if master_key_fingerprint(key) == fingerprint]
    if not candidates:
        raise UnsealError("sealed under a master key that is not configured")
    # Two keys may share a 4-byte fingerprint by chance: try each one that matches.
    for key in candidates:
        try:
            return AESGCM(key).decrypt(nonce, ciphertext, header + aad)
        except InvalidTag:
            continue
    raise UnsealError("authentication failed: wrong context (aad) or a tampered blob")


def sealed_fingerprint(sealed: bytes) -> bytes:
    """The fingerprint of the key a blob names (empty for what is not a blob of this format)."""
    if len(sealed) < _HEADER_BYTES or sealed[:1] != _VERSION:
        return b""
    return sealed[len(_VERSION) : _HEADER_BYTES]


def is_sealed_with(master_key: bytes, sealed: bytes) -> bool:
    """True when `sealed` names `master_key`: a rotation job re-seals the blobs for which this is False."""
    return sealed[len(_VERSION) : _HEADER_BYTES] == master_key_fingerprint(master_key)


def reseal(master_keys: Sequence[bytes], sealed: bytes, *, aad: bytes) -> bytes:
    """The same secret sealed under the current master key (`master_keys[0]`)."""
    if not master_keys:
        raise InvalidKey("no master key configured")
    return seal(master_keys[0], unseal(master_keys, sealed, aad=aad), aad=aad)


def new_mac_key() -> bytes:
    """A fresh random brand code key (the input of `codeformat.CodeKey`)."""
    return os.urandom(MAC_KEY_BYTES)


def new_ed25519_keypair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (raw 32-byte private key, raw 32-byte public key)."""
    private = Ed25519PrivateKey.generate()
    return private.private_bytes_raw(), private.public_key().public_bytes_raw()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def public_jwk(kid: str, public_raw: bytes) -> dict[str, str]:
    """The public key as an RFC 8037 OKP JWK, for publishing in a JWK set."""
    if len(public_raw) != ED25519_KEY_BYTES:
        raise InvalidKey(f"an Ed25519 public key is {ED25519_KEY_BYTES} bytes, got {len(public_raw)}")
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64url(public_raw),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }
