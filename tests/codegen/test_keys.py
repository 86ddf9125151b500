"""Sealing brand keys under rotatable master keys, and Ed25519 key pairs and JWKs."""

import base64
import os

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from codegen import keys
from codegen.errors import InvalidKey, UnsealError

AAD = b"brand:7f1c:key:0"


def new_master() -> bytes:
    return os.urandom(32)


class TestSeal:
    """AES-GCM envelope: round trip, tamper detection, context binding."""

    def test_round_trip(self) -> None:
        """What is sealed unseals to the same bytes, and the blob does not contain the plaintext."""
        master = new_master()
        secret = keys.new_mac_key()
        sealed = keys.seal(master, secret, aad=AAD)
        assert secret not in sealed
        assert keys.unseal([master], sealed, aad=AAD) == secret

    def test_layout(self) -> None:
        """Version byte, 4-byte fingerprint, 12-byte nonce, ciphertext and 16-byte tag."""
        master = new_master()
        sealed = keys.seal(master, b"x" * 32, aad=AAD)
        assert sealed[0] == 1
        assert sealed[1:5] == keys.master_key_fingerprint(master)
        assert len(sealed) == 1 + 4 + 12 + 32 + 16

    def test_nonces_are_fresh(self) -> None:
        """Sealing the same secret twice gives different blobs."""
        master = new_master()
        assert keys.seal(master, b"same", aad=AAD) != keys.seal(master, b"same", aad=AAD)

    def test_every_flipped_byte_is_detected(self) -> None:
        """Changing any byte of the blob makes unseal fail with UnsealError."""
        master = new_master()
        sealed = keys.seal(master, keys.new_mac_key(), aad=AAD)
        for position in range(len(sealed)):
            tampered = bytearray(sealed)
            tampered[position] ^= 0x01
            with pytest.raises(UnsealError):
                keys.unseal([master], bytes(tampered), aad=AAD)

    def test_truncated_blobs_fail(self) -> None:
        """Short blobs fail with UnsealError, never another exception."""
        master = new_master()
        sealed = keys.seal(master, b"secret", aad=AAD)
        for length in range(len(sealed)):
            with pytest.raises(UnsealError):
                keys.unseal([master], sealed[:length], aad=AAD)

    def test_wrong_context_fails(self) -> None:
        """A blob sealed for one brand key slot does not unseal for another."""
        master = new_master()
        sealed = keys.seal(master, b"secret", aad=AAD)
        with pytest.raises(UnsealError, match="authentication failed"):
            keys.unseal([master], sealed, aad=b"brand:7f1c:key:1")

    def test_wrong_master_key_fails(self) -> None:
        """An unknown master key is reported as such."""
        sealed = keys.seal(new_master(), b"secret", aad=AAD)
        with pytest.raises(UnsealError, match="not configured"):
            keys.unseal([new_master()], sealed, aad=AAD)

    def test_master_keys_must_be_32_bytes(self) -> None:
        """A 16-byte master key is refused with InvalidKey."""
        with pytest.raises(InvalidKey):
            keys.seal(b"k" * 16, b"secret", aad=AAD)


class TestMasterKeyRotation:
    """A list of current and old master keys keeps old blobs readable."""

    def test_old_blobs_unseal_with_current_and_old_keys(self) -> None:
        """After rotation, a blob sealed under the old key unseals given [new, old]."""
        old, new = new_master(), new_master()
        sealed_old = keys.seal(old, b"brand key", aad=AAD)
        sealed_new = keys.seal(new, b"other key", aad=AAD)
        assert keys.unseal([new, old], sealed_old, aad=AAD) == b"brand key"
        assert keys.unseal([new, old], sealed_new, aad=AAD) == b"other key"
        with pytest.raises(UnsealError):
            keys.unseal([new], sealed_old, aad=AAD)

    def test_reseal_moves_a_blob_to_the_current_key(self) -> None:
        """reseal re-encrypts under master_keys[0]; then the old key can be retired."""
        old, new = new_master(), new_master()
        sealed = keys.seal(old, b"brand key", aad=AAD)
        assert keys.is_sealed_with(old, sealed)
        moved = keys.reseal([new, old], sealed, aad=AAD)
        assert keys.is_sealed_with(new, moved)
        assert not keys.is_sealed_with(old, moved)
        assert keys.unseal([new], moved, aad=AAD) == b"brand key"


class TestEd25519:
    """Key pairs and their published JWK."""

    def test_keypair_signs_and_verifies(self) -> None:
        """The raw private and public keys belong together."""
        private_raw, public_raw = keys.new_ed25519_keypair()
        assert len(private_raw) == len(public_raw) == 32
        signature = Ed25519PrivateKey.from_private_bytes(private_raw).sign(b"message")
        Ed25519PublicKey.from_public_bytes(public_raw).verify(signature, b"message")

    def test_public_jwk(self) -> None:
        """An RFC 8037 OKP JWK whose x is the unpadded base64url public key."""
        _, public_raw = keys.new_ed25519_keypair()
        jwk = keys.public_jwk("brand-1:0", public_raw)
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert jwk["kid"] == "brand-1:0"
        assert "=" not in jwk["x"]
        assert base64.urlsafe_b64decode(jwk["x"] + "=") == public_raw

    def test_public_jwk_refuses_wrong_sizes(self) -> None:
        """A 31-byte public key is refused."""
        with pytest.raises(InvalidKey):
            keys.public_jwk("k", b"x" * 31)

    def test_mac_keys_are_random(self) -> None:
        """Each new code key is 32 fresh bytes."""
        assert len({keys.new_mac_key() for _ in range(100)}) == 100
