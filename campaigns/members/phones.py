"""Phone numbers: normalised to E.164, sealed at rest, found again through a keyed blind index."""

from __future__ import annotations

import hashlib
import hmac
import os
import uuid
from collections.abc import Sequence

import phonenumbers

from campaigns.members.errors import InvalidMemberInput
from campaigns.members.tokens import derive_key
from codegen import keys

DEFAULT_REGION = "CN"
DATA_KEY_BYTES = 32


def normalize_phone(raw: str, region: str = DEFAULT_REGION) -> str:
    """E.164 (`+8613800138000`) from what people type: spaces, dashes, +86, 0086 prefixes."""
    if len(raw) > 32:  # noqa: PLR2004 - longer than any phone number with formatting
        raise InvalidMemberInput("phone", "not a phone number")
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        raise InvalidMemberInput("phone", "not a phone number") from None
    if not phonenumbers.is_valid_number(number):
        raise InvalidMemberInput("phone", "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


class MemberVault:
    """Keys for members' personal data: the phone blind index, and per-member data keys.

    Each member's phone, profile and service notes are sealed under a random data key of its own, which
    is itself sealed (wrapped) by the master key. Erasing a member destroys its wrapped data key.
    Fields sealed before data keys existed were sealed under the master key: they still open.
    """

    def __init__(self, master_keys: Sequence[bytes]) -> None:
        self._master_keys = tuple(master_keys)
        # One index key per master key: stored indexes are under the current one, except those written
        # before a master-key rotation, until `onecode keys reseal` has re-indexed them.
        self._index_keys = tuple(derive_key(key, "phone-index") for key in self._master_keys)

    def blind_index(self, brand_id: uuid.UUID, phone_e164: str) -> bytes:
        """The phone's index under the current master key: what is stored."""
        return self._index(self._index_keys[0], brand_id, phone_e164)

    def blind_indexes(self, brand_id: uuid.UUID, phone_e164: str) -> list[bytes]:
        """The phone's index under each configured master key, the current one first: what is looked up."""
        return [self._index(key, brand_id, phone_e164) for key in self._index_keys]

    @staticmethod
    def _index(index_key: bytes, brand_id: uuid.UUID, phone_e164: str) -> bytes:
        return hmac.new(index_key, f"{brand_id}:{phone_e164}".encode(), hashlib.sha256).digest()

    @staticmethod
    def new_data_key() -> bytes:
        return os.urandom(DATA_KEY_BYTES)

    def wrap(self, member_id: uuid.UUID, data_key: bytes) -> bytes:
        return keys.seal(self._master_keys[0], data_key, aad=member_key_aad(member_id))

    def unwrap(self, member_id: uuid.UUID, wrapped: bytes) -> bytes:
        return keys.unseal(self._master_keys, wrapped, aad=member_key_aad(member_id))

    def seal(self, data_key: bytes, brand_id: uuid.UUID, field: str, plaintext: bytes) -> bytes:
        """Seal one personal field (`phone`, `profile`, `note`) of a member under its data key."""
        return keys.seal(data_key, plaintext, aad=field_aad(field, brand_id))

    def unseal(self, data_key: bytes | None, brand_id: uuid.UUID, field: str, sealed: bytes) -> bytes:
        candidates = self._master_keys if data_key is None else (data_key, *self._master_keys)
        return keys.unseal(candidates, sealed, aad=field_aad(field, brand_id))


def member_key_aad(member_id: uuid.UUID) -> bytes:
    """What a member's data key is sealed for: that member, so a key copied onto another row will not open."""
    return f"member-key:{member_id}".encode()


def field_aad(field: str, brand_id: uuid.UUID) -> bytes:
    """What a personal field (`phone`, `profile`, `note`) of a brand's member is sealed for."""
    return f"{field}:{brand_id}".encode()


def mask(phone_e164: str) -> str:
    """`+86138****8000`: enough for a person to recognise their own number."""
    return phone_e164[:-8] + "****" + phone_e164[-4:] if len(phone_e164) > 8 else "****"  # noqa: PLR2004
